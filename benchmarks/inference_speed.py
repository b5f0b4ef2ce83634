"""Inference speed and agreement of ParaSpeechCLAP paths on one seeded workload (issues 11 and 30; harness: harness.py).

Paths, each model in its own worker process (``--inline``: all in this one):

* (a) reference: fp32, WavLM's stock attention and conv layers, one clip at a time, no mask (the authors' CLI);
* (b) reference batched: fp32, stock WavLM modules, batches of 8 sorted by length, padded, with masks (their eval);
* (c) default: ``ParaSpeechCLAP`` prepared with ``precision="auto"``, ``embed_audio`` with its default batching;
* fp32, bf16 batch 1, bf16 (default batching), bf16-b8 (up to 8 clips within 16 s of padded audio), bf16-lanes
  (one clip per pass, two passes side by side), bf16-b4-lanes (up to 4 clips per pass, two passes side by side),
  int8 (CPU): the explicit precisions through ``embed_audio``;
* ov, ov-tput: the anchor, the stock speech tower and its mean pooling converted by OpenVINO (dynamic batch and
  length) and compiled for CPU, which picks its own precision (bf16 where the CPU has it); one clip per request, with
  the latency hint one after another, with the throughput hint as many in flight as it asks for. Needs the ``bench``
  extra (``pip install -e '.[bench]'``); skipped with a note without it.

Scenarios (``--scenario``): ``standard``, 16 clips of 1-15 s; ``short``, 32 clips of 1-3 s.

Per path: audio-seconds per second, the ratio to the faster of (a) and (b) and to the faster OpenVINO setting, the
speech tower's GFLOP/s (analytic FLOPs, checked against ``torch.utils.flop_counter``), that rate as a share of the
measured 2048x2048 matmul peak of the precision the path uses, centred min cosine and nearest neighbours kept against
(a) (for OpenVINO also its pooled states against (a)'s), peak RSS. Also text captions/s, and classify (1 clip x 21
candidates, text cache warm) against embedding that clip alone. The issue-11 and issue-30 targets are evaluated from
these numbers. The paths take turns on duration-sorted groups of clips and the workload is repeated (``--repeats``;
medians), so that the ratios of one run are fair on a shared machine.

    python benchmarks/inference_speed.py                         # paper size, 16 clips of 1-15 s, 1,000 captions
    python benchmarks/inference_speed.py --scenario short        # paper size, 32 clips of 1-3 s
    python benchmarks/inference_speed.py --quick --tiny --inline # the reference-tiny fixture, seconds (tests)
    python benchmarks/inference_speed.py --device cuda --matmul-size 8192   # on a GPU (see gpu_check.sh)
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H  # noqa: E402

SR = H.SR


# ---------------------------------------------------------------------------------------------- worker commands
def _single(model, waves):
    """The authors' CLI: one clip at a time, no mask; embeddings and pooled states."""
    import torch
    import torch.nn.functional as F

    rows, pooled = [], []
    with torch.inference_mode():
        for wave in waves:  # encode_audio's own operations, with the pooled state kept
            state = model.audio_branch(model.prepare_audio([wave])[0], None)
            rows.append(F.normalize(model.audio_projection(state), dim=-1).float().cpu().numpy()[0])
            pooled.append(state.float().cpu().numpy()[0])
    return np.stack(rows), np.stack(pooled)


def _batched(model, waves, batch_size: int | None):
    """The authors' evaluation loop: sorted by length, batches of 8, padded, masks."""
    import torch

    order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
    rows: dict[int, np.ndarray] = {}
    with torch.inference_mode():
        for start in range(0, len(order), batch_size or 8):
            chunk = order[start:start + (batch_size or 8)]
            values, mask = model.prepare_audio([waves[i] for i in chunk])
            for i, row in zip(chunk, model.encode_audio(values, mask).float().cpu().numpy()):
                rows[i] = row
    return np.stack([rows[i] for i in range(len(waves))]), None


def _openvino(model, waves, hint: str):
    """The OpenVINO-compiled stock tower (``cmd_openvino_compile``), then this model's fp32 projection."""
    import torch
    import torch.nn.functional as F

    inputs = [model.prepare_audio([wave])[0].numpy() for wave in waves]  # the same normalisation as (a)
    pooled = H.openvino_pooled(model.benchmark_openvino[hint], inputs, hint)
    with torch.inference_mode():
        rows = F.normalize(model.audio_projection(torch.from_numpy(pooled)), dim=-1).numpy()
    return rows, pooled


def cmd_audio(model, waves, mode: str, stock: bool = False, batch_size: int | None = None,
              max_batch_seconds: float | None = None, hint: str = "latency", cpu_lanes: int | None = None) -> dict:
    """Embeddings (and, for single and openvino, pooled states) of ``waves`` by one path, timed (wall, CPU, peak RSS);
    ``cpu_lanes`` overrides the engine's for this call."""
    runs = {"single": lambda: _single(model, waves), "batched": lambda: _batched(model, waves, batch_size),
            "embed_audio": lambda: (model.embed_audio([(w, SR) for w in waves], batch_size=batch_size,
                                                      max_batch_seconds=max_batch_seconds), None),
            "openvino": lambda: _openvino(model, waves, hint)}
    if mode not in runs:
        raise ValueError(f"unknown audio mode {mode!r}")
    if mode != "openvino":
        H.set_stock_paths(model, stock)
        lanes, model.engine._cpu_lanes = model.engine._cpu_lanes, cpu_lanes or model.engine._cpu_lanes
    try:
        (embeddings, pooled), stats = H.measure(runs[mode], model.device)
    finally:
        if mode != "openvino":
            H.set_stock_paths(model, False)
            model.engine._cpu_lanes = lanes
    return {"embeddings": np.asarray(embeddings, np.float32), "pooled": pooled, **stats}


def cmd_openvino_compile(model, hints: list[str], precision: str | None = None, wave=None) -> dict:
    """Compile the stock tower with OpenVINO once per hint (kept on the model), run ``wave`` through each, then let
    the torch towers go (moved to the meta device): this worker runs only OpenVINO, and its memory is OpenVINO's."""
    import torch

    from paraspeechclap.kernels.malloc import release_freed_memory

    compiled, info = H.compile_openvino_tower(model, hints, precision)
    model.benchmark_openvino = compiled
    if wave is not None:
        for hint in hints:
            _openvino(model, [wave], hint)
    model.audio_branch.base.to(torch.device("meta"))
    model.text_branch.base.to(torch.device("meta"))
    release_freed_memory()
    return {**info, "rss_after_compile_mb": H.current_rss_mb()}


def cmd_warmup(model, wave) -> dict:
    import torch

    model.embed_audio([(wave, SR)])
    if model.precision == "fp32":
        with torch.inference_mode():
            model.encode_audio(model.prepare_audio([wave])[0], None)
    model.embed_text(["warm up the text tower"])
    return {}


def cmd_text(model, captions, batch_size: int = 64) -> dict:
    model.engine.text_cache.clear()
    embeddings, stats = H.measure(lambda: model.embed_text(captions, batch_size=batch_size), model.device)
    model.engine.text_cache.clear()
    return {"embeddings": embeddings, **stats}


def cmd_classify(model, wave, candidates, repeats: int = 3) -> dict:
    """Classify one clip against ``candidates`` (cold: text cache empty; warm: prompts cached) and embed the clip
    alone, alternately ``repeats`` times; medians."""
    clip = (wave, SR)
    model.engine.text_cache.clear()
    cold, cold_stats = H.measure(lambda: model.classify(clip, candidates), model.device)
    warm_times, alone_times, probs = [], [], None
    for _ in range(repeats):
        _, alone = H.measure(lambda: model.embed_audio(clip), model.device)
        result, warm = H.measure(lambda: model.classify(clip, candidates), model.device)
        alone_times.append(alone["seconds"])
        warm_times.append(warm["seconds"])
        probs = [result[0][c] for c in candidates]
    return {"cold_s": cold_stats["seconds"], "warm_s": H.median(warm_times), "alone_s": H.median(alone_times),
            "warm_times": warm_times, "alone_times": alone_times, "probs": probs,
            "probs_cold": [cold[0][c] for c in candidates]}


def cmd_flops(model, wave) -> dict:
    return {"counted": H.counted_flops(model, wave),
            "analytic": H.speech_tower_flops(len(wave), model.audio_branch.base.config)}


def cmd_matmul(model, dtype: str, size: int, repeats: int) -> dict:
    return {"gflops": H.matmul_gflops(dtype, size, repeats, device=str(model.device))}


# ---------------------------------------------------------------------------------------------- paths
@dataclass
class PathSpec:
    key: str
    label: str
    worker: str
    mode: str
    stock: bool = False
    batch_size: int | None = None
    max_batch_seconds: float | None = None
    hint: str = "latency"
    cpu_lanes: int | None = None
    times: list = field(default_factory=list)
    group_times: list = field(default_factory=list)  # per repeat, the seconds of each group
    cpu_times: list = field(default_factory=list)
    peaks: list = field(default_factory=list)
    device_peaks: list = field(default_factory=list)
    embeddings: Any = None
    pooled: Any = None


ALL_PATHS = ("a", "b", "c", "c-base", "fp32", "bf16-1", "bf16", "bf16-b8", "bf16-lanes", "bf16-b4-lanes", "int8", "ov",
             "ov-tput")
DEFAULT_PATHS = ("a", "b", "c", "fp32", "bf16-1", "bf16", "int8", "ov", "ov-tput")
SCENARIOS = {"standard": {"clips": 16, "min_seconds": 1.0, "max_seconds": 15.0},
             "short": {"clips": 32, "min_seconds": 1.0, "max_seconds": 3.0}}
STATISTICS = {"median": "median", "best": "each group's fastest"}
PATH_SPECS = {
    "a": dict(label="reference: fp32, stock WavLM modules, 1 clip at a time", worker="fp32", mode="single", stock=True),
    "b": dict(label="reference batched: fp32, stock WavLM modules, batches of 8 by length, masks", worker="fp32",
              mode="batched", stock=True, batch_size=8),
    "c": dict(label="default: precision auto, embed_audio default batching", worker="auto", mode="embed_audio"),
    "c-base": dict(label="default, the baseline tree's code (--baseline-tree)", worker="base", mode="embed_audio"),
    "fp32": dict(label="fp32, embed_audio default batching", worker="fp32", mode="embed_audio"),
    "bf16-1": dict(label="bf16, embed_audio batch_size=1", worker="bf16", mode="embed_audio", batch_size=1),
    "bf16": dict(label="bf16, embed_audio default batching", worker="bf16", mode="embed_audio"),
    "bf16-b8": dict(label="bf16, embed_audio up to 8 clips within 16 s of padded audio", worker="bf16",
                    mode="embed_audio", batch_size=8, max_batch_seconds=16.0),
    "bf16-lanes": dict(label="bf16, embed_audio one clip per pass, two passes side by side (cpu_lanes=2)",
                       worker="bf16", mode="embed_audio", batch_size=1, cpu_lanes=2),
    "bf16-b4-lanes": dict(label="bf16, embed_audio up to 4 clips within 24 s per pass, two passes side by side",
                          worker="bf16", mode="embed_audio", batch_size=4, max_batch_seconds=24.0, cpu_lanes=2),
    "int8": dict(label="int8 (speech tower), embed_audio default batching", worker="int8", mode="embed_audio"),
    "ov": dict(label="OpenVINO: stock tower compiled for CPU, latency hint, 1 clip at a time", worker="openvino",
               mode="openvino", hint="latency"),
    "ov-tput": dict(label="OpenVINO: stock tower compiled for CPU, throughput hint, clips in parallel requests",
                    worker="openvino", mode="openvino", hint="throughput"),
}


def plan_paths(keys: list[str]) -> list[PathSpec]:
    return [PathSpec(k, **PATH_SPECS[k]) for k in ALL_PATHS if k in keys]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), default="standard",
                    help="the workload: " + "; ".join(f"{k}: {v['clips']} clips of {v['min_seconds']:g}-"
                                                      f"{v['max_seconds']:g} s" for k, v in SCENARIOS.items()))
    ap.add_argument("--clips", type=int, default=None, help="clips in the audio workload (default: the scenario's)")
    ap.add_argument("--min-seconds", type=float, default=None)
    ap.add_argument("--max-seconds", type=float, default=None)
    ap.add_argument("--captions", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=2, help="round-robin repeats; the median per path is reported")
    ap.add_argument("--statistic", choices=("median", "best"), default="median",
                    help="a path's time: the median of the repeats' totals, or the sum of each group's fastest repeat "
                         "(on a shared machine the latter leaves out the neighbours' bursts; both are in the JSON)")
    ap.add_argument("--group-size", type=int, default=8, help="clips per duration-sorted group (paths take turns)")
    ap.add_argument("--classify-repeats", type=int, default=3)
    ap.add_argument("--paths", default=",".join(DEFAULT_PATHS),
                    help=f"comma-separated subset of {','.join(ALL_PATHS)} ((a) is always run: it is the reference)")
    ap.add_argument("--baseline-tree", type=Path, default=None,
                    help="a checkout of other code (e.g. before a change): path c-base runs the default path with it, "
                         "in a worker of its own, in the same rounds as the others")
    ap.add_argument("--openvino-precision", default=None,
                    help="INFERENCE_PRECISION_HINT for the OpenVINO paths (default: OpenVINO's own choice; f32, bf16)")
    ap.add_argument("--bf16-without-native", action="store_true",
                    help="run the bf16 paths of the paper-size model even where bf16 is emulated (hours on CPU)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--matmul-size", type=int, default=2048, help="square matmul for the fp32/bf16/int8 peaks")
    ap.add_argument("--matmul-repeats", type=int, default=5)
    ap.add_argument("--memory-limit-gb", type=float, default=None,
                    help="RLIMIT_DATA per worker: a runaway allocation errors instead of invoking the OOM killer "
                         "(default 12 on CPU, none on accelerators, whose drivers map large private areas)")
    ap.add_argument("--inline", action="store_true", help="all models in this process (no per-path peak RSS)")
    ap.add_argument("--quick", action="store_true", help="4 short clips, 50 captions, 1 repeat")
    ap.add_argument("--tiny", action="store_true", help="the reference-tiny fixture model instead of the paper size")
    ap.add_argument("--model", choices=H.MODEL_KINDS, default=None, help="paper (default), small or tiny")
    ap.add_argument("--out", type=Path, default=H.RESULTS)
    ap.add_argument("--name", default=None, help="output file stem (default inference-<date>-<revision>[-...])")
    args = ap.parse_args(argv)
    for key, value in SCENARIOS[args.scenario].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.quick:
        args.clips, args.min_seconds, args.max_seconds = min(args.clips, 4), 1.0, 4.0
        args.captions, args.repeats, args.classify_repeats = min(args.captions, 50), 1, min(args.classify_repeats, 2)
    args.model = args.model or ("tiny" if args.tiny else "paper")
    if args.model == "tiny":  # the fixture keeps 800 frames per second: short clips keep the reference paths small
        args.max_seconds = min(args.max_seconds, 2.0)
        args.min_seconds = min(args.min_seconds, 0.5)
    if args.device != "cpu":
        import torch

        if args.device.startswith("cuda") and not torch.cuda.is_available():
            ap.error(f"--device {args.device}: no CUDA device visible to torch {torch.__version__}")
    if args.memory_limit_gb is None and args.device == "cpu":
        args.memory_limit_gb = 12.0
    keys = [k.strip() for k in args.paths.split(",") if k.strip()]
    unknown = sorted(set(keys) - set(ALL_PATHS))
    if unknown:
        ap.error(f"unknown paths {unknown}; choose from {ALL_PATHS}")
    if args.baseline_tree is not None:
        if not (args.baseline_tree / "paraspeechclap" / "__init__.py").is_file():
            ap.error(f"--baseline-tree {args.baseline_tree}: no paraspeechclap package there")
        if args.inline:
            ap.error("--baseline-tree needs worker processes (not --inline)")
        keys.append("c-base")
    elif "c-base" in keys:
        ap.error("path c-base needs --baseline-tree")
    args.keys = ["a"] + [k for k in dict.fromkeys(keys) if k != "a"]
    if args.clips < 2:
        ap.error("--clips must be at least 2 (nearest neighbours need more than one clip)")
    return args


# ---------------------------------------------------------------------------------------------- the run
def choose_workers(args: argparse.Namespace, paths: list[PathSpec]) -> tuple[dict[str, str], list[str]]:
    """Worker name -> precision, and notes on skipped paths. ``auto`` shares the worker of the precision it resolves
    to (same model, same memory), so (c) and its explicit twin are timed on one model. The OpenVINO paths get a
    worker of their own (an fp32 torch model, converted and then let go)."""
    import torch

    from paraspeechclap.inference.precision import native_bf16, resolve_precision

    device = torch.device(args.device)
    notes = []
    native = native_bf16(device)
    skips = [("int8", device.type != "cpu", "int8 skipped: dynamic quantization runs on CPU only"),
             ("bf16", not native and args.model == "paper" and not args.bf16_without_native,
              "bf16 paths skipped: bf16 is emulated on this machine (--bf16-without-native runs them)"),
             ("openvino", device.type != "cpu", "OpenVINO paths skipped: the anchor runs on CPU only"),
             ("openvino", not H.openvino_available(),
              "OpenVINO paths skipped: openvino is not installed (pip install -e '.[bench]')")]
    for worker, skip, note in skips:
        if skip and any(p.worker == worker for p in paths):
            notes.append(note)
            paths[:] = [p for p in paths if p.worker != worker]
    auto = resolve_precision("auto", device)
    workers = {name: precision for name, precision in (("fp32", "fp32"), ("bf16", "bf16"), ("int8", "int8"),
                                                       ("openvino", "fp32"), ("base", auto))
               if any(p.worker in (name, "auto" if name == auto else name) for p in paths)}
    for path in paths:
        if path.worker == "auto":
            path.worker = auto
    return workers, notes


def start_workers(args: argparse.Namespace, precisions: dict[str, str], paths: list[PathSpec], waves,
                  workers: dict[str, Any]) -> dict:
    """Build each worker's model (one at a time: building is the memory peak) into ``workers``, check they hold the
    same weights in the asked precision, warm them up; returns the OpenVINO compile info (empty without it)."""
    for name, precision in precisions.items():
        H.log(f"starting worker {name}")
        spec = H.WorkerSpec(name, args.model, precision, args.seed, args.device, args.threads, args.memory_limit_gb,
                            tree=str(args.baseline_tree) if name == "base" else None)
        workers[name] = H.start_worker(spec, args.inline)
    fingerprints = {n: w.info["fingerprint"] for n, w in workers.items()}
    if len(set(fingerprints.values())) != 1:
        raise RuntimeError(f"workers built different random weights: {fingerprints}")
    openvino = {}
    for name, worker in workers.items():
        if worker.info["precision"] != precisions[name]:
            raise RuntimeError(f"worker {name} runs {worker.info['precision']}, not {precisions[name]}")
        if name == "openvino":
            H.log("converting and compiling the stock speech tower with OpenVINO")
            hints = [p.hint for p in paths if p.worker == "openvino"]
            openvino = worker.call(cmd_openvino_compile, hints=hints, precision=args.openvino_precision,
                                   wave=waves[0][: 2 * SR])
        else:
            worker.call(cmd_warmup, wave=waves[0][: 2 * SR])
    return openvino


def run_rounds(args: argparse.Namespace, paths: list[PathSpec], workers: dict[str, Any], waves,
               native: bool) -> tuple[dict, list, int]:
    """The timed rounds: per repeat, every group of clips through every path (in rotating order), then the matmul
    peaks (the same machine state). Fills the paths' times, peaks, embeddings and pooled states."""
    bf16_size = args.matmul_size if native else min(args.matmul_size, 256)
    matmul: dict[str, list[float]] = {"fp32": [], "bf16": [], "int8": []}
    loads = []
    order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
    groups = [order[i:i + args.group_size] for i in range(0, len(order), args.group_size)]
    for repeat in range(args.repeats):
        totals = {path.key: [0.0, 0.0, 0.0, 0.0] for path in paths}  # seconds, CPU s, peak RSS, device peak
        for path in paths:
            path.group_times.append([])
        for number, group in enumerate(groups):
            shift = (number + repeat) % len(paths)
            for path in paths[shift:] + paths[:shift]:
                H.log(f"repeat {repeat + 1}/{args.repeats}, group {number + 1}/{len(groups)} "
                      f"({sum(len(waves[i]) for i in group) / SR:.0f} s): ({path.key})")
                reply = workers[path.worker].call(cmd_audio, waves=[waves[i] for i in group], mode=path.mode,
                                                  stock=path.stock, batch_size=path.batch_size,
                                                  max_batch_seconds=path.max_batch_seconds, hint=path.hint,
                                                  cpu_lanes=path.cpu_lanes)
                total = totals[path.key]
                path.group_times[-1].append(reply["seconds"])
                total[0] += reply["seconds"]
                total[1] += reply["cpu_seconds"]
                total[2] = max(total[2], reply["peak_rss_mb"])
                total[3] = max(total[3], reply.get("peak_device_mb", 0.0))
                if repeat == 0:
                    _keep_rows(path, group, reply, len(waves))
        for path in paths:
            seconds, cpu_seconds, peak, device_peak = totals[path.key]
            path.times.append(seconds)
            path.cpu_times.append(cpu_seconds)
            path.peaks.append(peak)
            path.device_peaks.append(device_peak)
        H.log("matmul peaks")
        fp32 = workers["fp32"]
        matmul["fp32"].append(fp32.call(cmd_matmul, dtype="fp32", size=args.matmul_size,
                                        repeats=args.matmul_repeats)["gflops"])
        matmul["bf16"].append(fp32.call(cmd_matmul, dtype="bf16", size=bf16_size,
                                        repeats=args.matmul_repeats if native else 2)["gflops"])
        if "int8" in workers:
            matmul["int8"].append(workers["int8"].call(cmd_matmul, dtype="int8", size=args.matmul_size,
                                                       repeats=args.matmul_repeats)["gflops"])
        loads.append(os.getloadavg()[0])
    return matmul, loads, bf16_size


def _keep_rows(path: PathSpec, group: list[int], reply: dict, count: int) -> None:
    """The first repeat's embeddings (and pooled states) of ``group`` into the path's ``[count, D]`` arrays."""
    for attr in ("embeddings", "pooled"):
        rows = reply.get(attr)
        if rows is None:
            continue
        if getattr(path, attr) is None:
            setattr(path, attr, np.zeros((count, rows.shape[1]), np.float32))
        getattr(path, attr)[group] = rows


def side_measurements(args: argparse.Namespace, workers: dict[str, Any], default_worker: str, waves,
                      captions) -> dict:
    """Text throughput (fp32 and the default precision), classify against the clip alone, the FLOP count check."""
    H.log("text throughput")
    text, text_embeddings = {}, {}
    for name in dict.fromkeys(["fp32", default_worker]):
        reply = workers[name].call(cmd_text, captions=captions, batch_size=64)
        text[workers[name].info["precision"]] = reply["seconds"]
        text_embeddings[workers[name].info["precision"]] = reply["embeddings"]
    H.log("classify vs embedding the clip alone")
    classify_clip = waves[int(np.argsort([len(w) for w in waves])[len(waves) // 2])]
    classify = workers[default_worker].call(cmd_classify, wave=classify_clip, candidates=H.STYLE_TAGS,
                                            repeats=args.classify_repeats)
    H.log("FLOP count check")
    flop_wave = waves[int(np.argmax([len(w) for w in waves]))][: 10 * SR]
    flop_check = workers["fp32"].call(cmd_flops, wave=flop_wave)
    return {"text": text, "text_embeddings": text_embeddings, "classify_clip": classify_clip, "classify": classify,
            "flop_wave": flop_wave, "flop_check": flop_check}


def path_rows(paths: list[PathSpec], workers: dict[str, Any], audio_seconds: float, count: int,
              workload_flops: float, peaks: dict, openvino: dict, statistic: str = "median") -> list[dict]:
    """One result row per path: speed, FLOP rate and its share of the peaks, agreement with (a), ratios; the speed
    from the median of the repeats' totals, or (``best``) the sum of each group's fastest repeat."""
    reference = paths[0]
    rows = []
    for path in paths:
        best = sum(min(times) for times in zip(*path.group_times))  # each group's fastest repeat
        med = H.median(path.times) if statistic == "median" else best
        precision = workers[path.worker].info["precision"]
        if path.mode == "openvino":  # the precision OpenVINO chose, not the torch model's
            precision = openvino["precision"][path.hint]
        gflops = workload_flops / med / 1e9
        peak = peaks.get(precision)
        row = {"key": path.key, "label": path.label, "worker": path.worker, "precision": precision, "mode": path.mode,
               "stock_attention": path.stock, "batch_size": path.batch_size, "cpu_lanes": path.cpu_lanes,
               "max_batch_seconds": path.max_batch_seconds, "times_s": path.times, "group_times_s": path.group_times,
               "statistic": statistic, "median_s": H.median(path.times), "best_s": best, "seconds": med,
               "audio_seconds_per_s": audio_seconds / med, "clips_per_s": count / med,
               "audio_seconds_per_cpu_s": audio_seconds / H.median(path.cpu_times),
               "peak_rss_mb": max(path.peaks), "gflops": gflops,
               "peak_of_precision_gflops": peak, "share_of_precision_peak": gflops / peak if peak else None,
               "share_of_bf16_peak": gflops / peaks["bf16"] if peaks.get("bf16") else None,
               **H.agreement(reference.embeddings, path.embeddings)}
        if path.mode == "openvino":
            row["hint"] = path.hint
            row["pooled_vs_a"] = H.agreement(reference.pooled, path.pooled)
        if any(path.device_peaks):
            row["peak_device_mb"] = max(path.device_peaks)
        rows.append(row)
    by_key = {r["key"]: r for r in rows}
    best_reference = max(by_key[k]["audio_seconds_per_s"] for k in ("a", "b") if k in by_key)
    best_openvino = max((r["audio_seconds_per_s"] for r in rows if r["mode"] == "openvino"), default=None)
    for row in rows:
        row["speedup_vs_best_reference"] = row["audio_seconds_per_s"] / best_reference
        row["ratio_to_best_openvino"] = row["audio_seconds_per_s"] / best_openvino if best_openvino else None
    return rows


def text_rows(text: dict, text_embeddings: dict, count: int, reference: np.ndarray, paths: list[PathSpec]) -> dict:
    """Captions/s per precision and, beyond fp32, agreement with fp32 and the audio->text rankings against (a)'s."""
    out = {}
    for precision, seconds in text.items():
        out[precision] = {"seconds": seconds, "captions_per_s": count / seconds}
        if precision != "fp32":
            out[precision].update(H.agreement(text_embeddings["fp32"], text_embeddings[precision]))
            default_audio = next((p.embeddings for p in paths if p.key == "c"), None)
            if default_audio is not None:  # rankings of all captions per clip: (a) x fp32 text against (c) x its own
                out[precision]["audio_to_text_ranking"] = H.ranking_agreement(
                    reference @ text_embeddings["fp32"].T, default_audio @ text_embeddings[precision].T)
    return out


def run_benchmark(args: argparse.Namespace) -> dict:
    waves = H.make_clips(args.clips, args.min_seconds, args.max_seconds, args.seed)
    captions = H.make_captions(args.captions, args.seed)
    audio_seconds = sum(len(w) for w in waves) / SR
    paths = plan_paths(args.keys)
    worker_precisions, notes = choose_workers(args, paths)
    machine = H.machine_info(args.threads, args.device)
    load_start = os.getloadavg()
    H.log(f"workload: {len(waves)} clips, {audio_seconds:.1f} s of audio, {len(captions)} captions; model "
          f"{args.model} on {args.device}; workers {worker_precisions}")
    workers: dict[str, Any] = {}
    try:
        openvino = start_workers(args, worker_precisions, paths, waves, workers)
        matmul, loads, bf16_size = run_rounds(args, paths, workers, waves, machine["native_bf16"])
        default_worker = next(p.worker for p in paths if p.key == "c") if "c" in args.keys else "fp32"
        side = side_measurements(args, workers, default_worker, waves, captions)
        closing = {name: worker.close() for name, worker in workers.items()}
    finally:
        for worker in workers.values():
            worker.kill()

    workload_flops = sum(H.speech_tower_flops(len(w), workers["fp32"].info["speech_config"]) for w in waves)
    peaks = {k: max(v) for k, v in matmul.items() if v}
    rows = path_rows(paths, workers, audio_seconds, len(waves), workload_flops, peaks, openvino, args.statistic)
    flop_check, classify, classify_clip = side["flop_check"], side["classify"], side["classify_clip"]
    return {
        "date": H.now(), "command": H.command_line("benchmarks/inference_speed.py", args.argv),
        "git_revision": H.git_revision(), "machine": machine, "model": args.model, "device": args.device,
        "load_average": {"start": load_start, "per_repeat_1min": loads, "end": os.getloadavg()},
        "workload": {"scenario": args.scenario, "clips": len(waves), "audio_seconds": audio_seconds,
                     "min_seconds": args.min_seconds, "max_seconds": args.max_seconds, "captions": len(captions),
                     "seed": args.seed, "repeats": args.repeats, "statistic": args.statistic,
                     "speech_tower_gflop": workload_flops / 1e9},
        "baseline_tree": {"path": str(args.baseline_tree), "git_revision": H.git_revision(args.baseline_tree)}
        if args.baseline_tree else None,
        "workers": {n: {**{k: v for k, v in w.info.items() if k != "speech_config"}, **closing.get(n, {})}
                    for n, w in workers.items()},
        "default_precision": workers[default_worker].info["precision"], "openvino": openvino,
        "notes": notes, "paths": rows, "best_reference_audio_seconds_per_s": max(
            r["audio_seconds_per_s"] for r in rows if r["key"] in ("a", "b")),
        "matmul_peaks": {"fp32_gflops": peaks.get("fp32"), "bf16_gflops": peaks.get("bf16"),
                         "int8_gops_dynamic_linear": peaks.get("int8"), "size": args.matmul_size,
                         "bf16_size": bf16_size, "repeats": args.matmul_repeats, "samples": matmul},
        "flop_check": {**flop_check, "seconds_of_audio": len(side["flop_wave"]) / SR,
                       "relative_difference": abs(flop_check["counted"] - flop_check["analytic"])
                       / max(flop_check["counted"], 1)},
        "text": text_rows(side["text"], side["text_embeddings"], len(captions), paths[0].embeddings, paths),
        "classify": {"clip_seconds": len(classify_clip) / SR, "candidates": len(H.STYLE_TAGS),
                     "precision": workers[default_worker].info["precision"], "cold_ms": classify["cold_s"] * 1000,
                     "warm_ms": classify["warm_s"] * 1000, "alone_ms": classify["alone_s"] * 1000,
                     "ratio_warm_to_alone": classify["warm_s"] / classify["alone_s"],
                     "top1": H.STYLE_TAGS[int(np.argmax(classify["probs"]))]},
    }


# ---------------------------------------------------------------------------------------------- report
def targets(result: dict) -> list[dict]:
    """The issue-11 and issue-30 targets for this machine (CPU with native bf16 or fp32 only; GPUs as native bf16), evaluated
    from the measured numbers."""
    by_key = {r["key"]: r for r in result["paths"]}
    out = []
    native = result["machine"]["native_bf16"]
    default = by_key.get("c")
    if default is not None:
        speedup = default["speedup_vs_best_reference"]
        if native:
            share = default["share_of_bf16_peak"]
            size = result["matmul_peaks"]["bf16_size"]
            out += [{"target": f"native bf16: default path's speech-tower FLOP rate >= 60 % of the bf16 {size}x{size} "
                               "matmul peak",
                     "measured": f"{default['gflops']:.1f} GFLOP/s = {100 * share:.0f} % of "
                                 f"{result['matmul_peaks']['bf16_gflops']:.1f} ({default['precision']})",
                     "met": share >= 0.60},
                    {"target": "native bf16: default path >= 2x the faster of (a) and (b)",
                     "measured": f"{speedup:.2f}x", "met": speedup >= 2.0},
                    {"target": "native bf16: default path centred min cos >= 0.99 vs (a), every nearest neighbour kept",
                     "measured": f"{default['centred_min_cos']:.5f}, {default['nn_kept']}/{result['workload']['clips']}",
                     "met": default["centred_min_cos"] >= 0.99 and default["nn_preserved"]}]
        else:
            out += [{"target": "fp32-only machine: default path >= 1.3x the faster of (a) and (b)",
                     "measured": f"{speedup:.2f}x", "met": speedup >= 1.3},
                    {"target": "fp32-only machine: default path within 1e-5 of (a)",
                     "measured": f"max abs diff {default['max_abs_diff']:.2e}", "met": default["max_abs_diff"] <= 1e-5}]
        if default.get("ratio_to_best_openvino") is not None:
            ratio = default["ratio_to_best_openvino"]
            out.append({"target": "issue 30: default path >= 1.5x the OpenVINO-compiled stock speech tower (the faster "
                                  "of its settings, same run)", "measured": f"{ratio:.2f}x", "met": ratio >= 1.5})
    c = result["classify"]
    out.append({"target": "classify 1 clip x 21 candidates (text cache warm) <= 1.2x embedding that clip alone",
                "measured": f"{c['warm_ms']:.0f} vs {c['alone_ms']:.0f} ms = {c['ratio_warm_to_alone']:.2f}x",
                "met": c["ratio_warm_to_alone"] <= 1.2})
    return out


def render_markdown(result: dict) -> str:
    m, w, p = result["machine"], result["workload"], result["matmul_peaks"]
    device = any("peak_device_mb" in r for r in result["paths"])
    lines = [f"### Inference benchmark, {result['date'][:10]} ({result['model']} model, {result['device']}, "
             f"git {result['git_revision']})", "",
             f"Command: `{result['command']}`", "", H.machine_line(m),
             f"Load average at start {', '.join(f'{x:.1f}' for x in result['load_average']['start'])}, after each "
             f"repeat {', '.join(f'{x:.1f}' for x in result['load_average']['per_repeat_1min'])}.", "",
             f"Workload ({w.get('scenario', 'standard')}): {w['clips']} seeded speech-like clips of "
             f"{w['min_seconds']:g}-{w['max_seconds']:g} s "
             f"({w['audio_seconds']:.1f} s of audio, {w['speech_tower_gflop']:.1f} GFLOP through the speech tower), "
             f"{w['captions']} template captions; {STATISTICS[w.get('statistic', 'median')]} of {w['repeats']} round-robin "
             "repeats. Default precision "
             f"(auto) here: **{result['default_precision']}**.", ""]
    if result.get("baseline_tree"):
        tree = result["baseline_tree"]
        lines += [f"Path (c-base) runs the default path with the code of {tree['git_revision'] or 'an unversioned tree'} "
                  f"(`{tree['path']}`), in the same rounds.", ""]
    for note in result["notes"]:
        lines.append(f"Note: {note}.")
    openvino = any(r.get("ratio_to_best_openvino") is not None for r in result["paths"])
    headers = ["path", "precision", "audio-s/s", "x best ref"] + (["x OpenVINO"] if openvino else []) + [
               "speech GFLOP/s", "% peak of its precision",
               "% bf16 peak", "centred min cos", "NN kept", "max abs diff", "peak RSS (GB)"]
    if device:
        headers.append("peak device mem (GB)")
    table = []
    for r in result["paths"]:
        row = [f"({r['key']}) {r['label']}", r["precision"], H.fmt(r["audio_seconds_per_s"]),
               H.fmt(r["speedup_vs_best_reference"])] + ([H.fmt(r["ratio_to_best_openvino"])] if openvino else []) + [
               H.fmt(r["gflops"], ".1f"),
               H.fmt(None if r["share_of_precision_peak"] is None else 100 * r["share_of_precision_peak"], ".0f"),
               H.fmt(None if r["share_of_bf16_peak"] is None else 100 * r["share_of_bf16_peak"], ".0f"),
               f"{r['centred_min_cos']:.5f}", f"{r['nn_kept']}/{w['clips']}", f"{r['max_abs_diff']:.1e}",
               H.fmt(r["peak_rss_mb"] / 1024)]
        if device:
            row.append(H.fmt(r.get("peak_device_mb", 0) / 1024))
        table.append(row)
    lines += [""] + H.markdown_table(headers, table, [False, False] + [True] * (len(headers) - 2))
    bf16_note = "" if m["native_bf16"] else " (bf16 is emulated here, so it is measured small and is no ceiling)"
    lines += ["", f"Matmul peaks (the best of {p['repeats']} runs, highest over the repeats, {m['torch_threads']} threads): "
              f"fp32 {p['size']}x{p['size']} **{H.fmt(p['fp32_gflops'], '.1f')} GFLOP/s**; bf16 "
              f"{p['bf16_size']}x{p['bf16_size']} **{H.fmt(p['bf16_gflops'], '.1f')} GFLOP/s**{bf16_note}"
              + (f"; int8 dynamic-quantized linear {p['size']}x{p['size']} {H.fmt(p['int8_gops_dynamic_linear'], '.1f')}"
                 " GOP/s" if p.get("int8_gops_dynamic_linear") else "") + ". \"% peak of its precision\" divides a "
              "path's speech-tower FLOP rate by the peak of the precision it computes in (int8: the int8 linear "
              "layer's); \"% bf16 peak\" by the bf16 peak (model FLOP utilisation where bf16 is native).", ""]
    lines += openvino_lines(result)
    fc = result["flop_check"]
    lines += [f"FLOPs: analytic count of the speech tower vs `torch.utils.flop_counter.FlopCounterMode` on one "
              f"{fc['seconds_of_audio']:.1f} s clip: {fc['analytic'] / 1e9:.3f} vs {fc['counted'] / 1e9:.3f} GFLOP "
              f"({100 * fc['relative_difference']:.2f} % apart). Accuracy is against (a), both centred on the mean "
              f"(a) embedding (raw cosine between different clips' (a) embeddings: "
              f"{result['paths'][0]['raw_cos_between_clips_mean']:.4f}).", ""]
    text_table = [[k, H.fmt(v["captions_per_s"], ".1f"), H.fmt(v.get("centred_min_cos", 1.0), ".5f"),
                   f"{v.get('nn_kept', w['captions'])}/{w['captions']}",
                   H.fmt(100 * v.get("audio_to_text_ranking", {}).get("top1_same", 1.0), ".0f") + " %",
                   H.fmt(v.get("audio_to_text_ranking", {}).get("spearman_mean", 1.0), ".4f")]
                  for k, v in result["text"].items()]
    lines += H.markdown_table(["text tower", "captions/s", "centred min cos vs fp32", "NN kept",
                               "audio->text top-1 same as (a) x fp32", "Spearman (mean)"], text_table,
                              [False] + [True] * 5)
    between = [v["raw_cos_between_clips_mean"] for v in result["text"].values() if "raw_cos_between_clips_mean" in v]
    if between:
        lines += ["", f"Raw cosine between different captions' fp32 embeddings: {between[0]:.4f} on average. Close to 1 "
                  "(random weights), the centred text comparisons measure rounding more than meaning (see BENCHMARKS.md)."]
    c = result["classify"]
    lines += ["", f"Classify, 1 clip ({c['clip_seconds']:.1f} s) x {c['candidates']} candidates, {c['precision']}: "
              f"text cache cold {c['cold_ms']:.0f} ms, warm {c['warm_ms']:.0f} ms; the clip alone through "
              f"`embed_audio` {c['alone_ms']:.0f} ms (warm / alone = {c['ratio_warm_to_alone']:.2f}x).", ""]
    lines += H.markdown_table(["target (issues 11 and 30)", "measured", "met"],
                              [[t["target"], t["measured"], H.met_cell(t["met"])] for t in targets(result)])
    return "\n".join(lines) + "\n"


def openvino_lines(result: dict) -> list[str]:
    """The OpenVINO anchor's version, conversion and compile times, chosen settings and pooled-state parity."""
    info = result.get("openvino") or {}
    rows = [r for r in result["paths"] if r["mode"] == "openvino"]
    if not info or not rows:
        return []
    settings = "; ".join(f"{hint}: " + ", ".join(f"{k} {v}" for k, v in props.items())
                         for hint, props in info["properties"].items())
    parity = "; ".join(f"({r['key']}) max abs diff {r['pooled_vs_a']['max_abs_diff']:.1e}, raw min cos "
                       f"{r['pooled_vs_a']['raw_min_cos']:.5f}, centred min cos {r['pooled_vs_a']['centred_min_cos']:.5f}"
                       for r in rows)
    return [f"OpenVINO {info['openvino']}: the stock speech tower converted in {info['convert_s']:.1f} s, compiled in "
            + ", ".join(f"{k} {v:.1f} s" for k, v in info["compile_s"].items()) + f" ({settings}). Its pooled states "
            f"against (a)'s fp32 pooled states: {parity}.", ""]


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    args.argv = raw
    result = run_benchmark(args)
    result["targets"] = targets(result)
    markdown = render_markdown(result)
    stem = H.result_stem("inference", args.name, "quick" if args.quick else "",
                         args.scenario if args.scenario != "standard" else "",
                         args.model if args.model != "paper" else "",
                         args.device.replace(":", "") if args.device != "cpu" else "")
    H.write_results(args.out, stem, result, markdown)
    print(markdown)
    H.log(f"wrote {args.out / stem}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
