"""Inference speed and agreement of ParaSpeechCLAP paths on one seeded workload (issue 11; harness: harness.py).

Paths, each model in its own worker process (``--inline``: all in this one):

* (a) reference: fp32, WavLM's stock attention and conv layers, one clip at a time, no mask (the authors' CLI);
* (b) reference batched: fp32, stock WavLM modules, batches of 8 sorted by length, padded, with masks (their eval);
* (c) default: ``ParaSpeechCLAP`` prepared with ``precision="auto"``, ``embed_audio`` with its default batching;
* fp32, bf16 batch 1, bf16 (default batching), int8 (CPU): the explicit precisions through ``embed_audio``.

Per path: audio-seconds per second, the ratio to the faster of (a) and (b), the speech tower's GFLOP/s (analytic
FLOPs, checked against ``torch.utils.flop_counter``), that rate as a share of the measured 2048x2048 matmul peak of
the precision the path uses, centred min cosine and nearest neighbours kept against (a), peak RSS. Also text
captions/s, and classify (1 clip x 21 candidates, text cache warm) against embedding that clip alone. The issue-11
targets are evaluated from these numbers. The paths take turns on duration-sorted groups of clips and the workload
is repeated (``--repeats``; medians), so that the ratios of one run are fair on a shared machine.

    python benchmarks/inference_speed.py                         # paper size, 16 clips of 1-15 s, 1,000 captions
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
def cmd_audio(model, waves, mode: str, stock: bool = False, batch_size: int | None = None,
              max_batch_seconds: float | None = None) -> dict:
    """Embeddings of ``waves`` by one path, timed (wall, CPU, peak RSS)."""
    import torch

    H.set_stock_paths(model, stock)
    if mode == "single":  # the authors' CLI: one clip at a time, no mask
        def run():
            with torch.inference_mode():
                return np.stack([model.encode_audio(model.prepare_audio([w])[0], None).float().cpu().numpy()[0]
                                 for w in waves])
    elif mode == "batched":  # the authors' evaluation loop: sorted by length, batches of 8, padded, masks
        def run():
            order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
            rows: dict[int, np.ndarray] = {}
            with torch.inference_mode():
                for start in range(0, len(order), batch_size or 8):
                    chunk = order[start:start + (batch_size or 8)]
                    values, mask = model.prepare_audio([waves[i] for i in chunk])
                    for i, row in zip(chunk, model.encode_audio(values, mask).float().cpu().numpy()):
                        rows[i] = row
            return np.stack([rows[i] for i in range(len(waves))])
    elif mode == "embed_audio":  # this project's API (engine: windows, batches, precision)
        def run():
            return model.embed_audio([(w, SR) for w in waves], batch_size=batch_size,
                                     max_batch_seconds=max_batch_seconds)
    else:
        raise ValueError(f"unknown audio mode {mode!r}")
    try:
        embeddings, stats = H.measure(run, model.device)
    finally:
        H.set_stock_paths(model, False)
    return {"embeddings": np.asarray(embeddings, np.float32), **stats}


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
    times: list = field(default_factory=list)
    cpu_times: list = field(default_factory=list)
    peaks: list = field(default_factory=list)
    device_peaks: list = field(default_factory=list)
    embeddings: Any = None


ALL_PATHS = ("a", "b", "c", "fp32", "bf16-1", "bf16", "int8")


def plan_paths(keys: list[str]) -> list[PathSpec]:
    specs = {
        "a": PathSpec("a", "reference: fp32, stock WavLM modules, 1 clip at a time", "fp32", "single", stock=True),
        "b": PathSpec("b", "reference batched: fp32, stock WavLM modules, batches of 8 by length, masks", "fp32",
                      "batched", stock=True, batch_size=8),
        "c": PathSpec("c", "default: precision auto, embed_audio default batching", "auto", "embed_audio"),
        "fp32": PathSpec("fp32", "fp32, embed_audio default batching", "fp32", "embed_audio"),
        "bf16-1": PathSpec("bf16-1", "bf16, embed_audio batch_size=1", "bf16", "embed_audio", batch_size=1),
        "bf16": PathSpec("bf16", "bf16, embed_audio default batching", "bf16", "embed_audio"),
        "int8": PathSpec("int8", "int8 (speech tower), embed_audio default batching", "int8", "embed_audio"),
    }
    return [specs[k] for k in ALL_PATHS if k in keys]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=16, help="clips in the audio workload (the issue's full size: 64)")
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--max-seconds", type=float, default=15.0)
    ap.add_argument("--captions", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=2, help="round-robin repeats; the median per path is reported")
    ap.add_argument("--group-size", type=int, default=8, help="clips per duration-sorted group (paths take turns)")
    ap.add_argument("--classify-repeats", type=int, default=3)
    ap.add_argument("--paths", default=",".join(ALL_PATHS),
                    help=f"comma-separated subset of {','.join(ALL_PATHS)} ((a) is always run: it is the reference)")
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
    args.keys = ["a"] + [k for k in keys if k != "a"]
    if args.clips < 2:
        ap.error("--clips must be at least 2 (nearest neighbours need more than one clip)")
    return args


# ---------------------------------------------------------------------------------------------- the run
def choose_workers(args: argparse.Namespace, paths: list[PathSpec]) -> tuple[dict[str, str], list[str]]:
    """Worker name -> precision, and notes on skipped paths. ``auto`` shares the worker of the precision it resolves
    to (same model, same memory), so (c) and its explicit twin are timed on one model."""
    import torch

    from paraspeechclap.inference.precision import native_bf16, resolve_precision

    device = torch.device(args.device)
    notes = []
    native = native_bf16(device)
    if device.type != "cpu" and any(p.worker == "int8" for p in paths):
        notes.append("int8 skipped: dynamic quantization runs on CPU only")
        paths[:] = [p for p in paths if p.worker != "int8"]
    if not native and args.model == "paper" and not args.bf16_without_native and any(p.worker == "bf16" for p in paths):
        notes.append("bf16 paths skipped: bf16 is emulated on this machine (--bf16-without-native runs them)")
        paths[:] = [p for p in paths if p.worker != "bf16"]
    auto = resolve_precision("auto", device)
    workers = {name: precision for name, precision in (("fp32", "fp32"), ("bf16", "bf16"), ("int8", "int8"))
               if any(p.worker in (name, "auto" if name == auto else name) for p in paths)}
    for path in paths:
        if path.worker == "auto":
            path.worker = auto
    return workers, notes


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
        for name, precision in worker_precisions.items():  # one at a time: building is the memory peak
            H.log(f"starting worker {name}")
            spec = H.WorkerSpec(name, args.model, precision, args.seed, args.device, args.threads,
                                args.memory_limit_gb)
            workers[name] = H.start_worker(spec, args.inline)
        fingerprints = {n: w.info["fingerprint"] for n, w in workers.items()}
        if len(set(fingerprints.values())) != 1:
            raise RuntimeError(f"workers built different random weights: {fingerprints}")
        for name, worker in workers.items():
            if worker.info["precision"] != worker_precisions[name]:
                raise RuntimeError(f"worker {name} runs {worker.info['precision']}, not {worker_precisions[name]}")
            worker.call(cmd_warmup, wave=waves[0][: 2 * SR])

        native = machine["native_bf16"]
        bf16_size = args.matmul_size if native else min(args.matmul_size, 256)
        matmul: dict[str, list[float]] = {"fp32": [], "bf16": [], "int8": []}
        loads = []
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
        groups = [order[i:i + args.group_size] for i in range(0, len(order), args.group_size)]
        for path in paths:
            path.embeddings = None
        for repeat in range(args.repeats):
            totals = {path.key: [0.0, 0.0, 0.0, 0.0] for path in paths}  # seconds, CPU s, peak RSS, device peak
            for number, group in enumerate(groups):
                shift = (number + repeat) % len(paths)
                for path in paths[shift:] + paths[:shift]:
                    H.log(f"repeat {repeat + 1}/{args.repeats}, group {number + 1}/{len(groups)} "
                          f"({sum(len(waves[i]) for i in group) / SR:.0f} s): ({path.key})")
                    reply = workers[path.worker].call(cmd_audio, waves=[waves[i] for i in group], mode=path.mode,
                                                      stock=path.stock, batch_size=path.batch_size,
                                                      max_batch_seconds=path.max_batch_seconds)
                    total = totals[path.key]
                    total[0] += reply["seconds"]
                    total[1] += reply["cpu_seconds"]
                    total[2] = max(total[2], reply["peak_rss_mb"])
                    total[3] = max(total[3], reply.get("peak_device_mb", 0.0))
                    if repeat == 0:
                        if path.embeddings is None:
                            path.embeddings = np.zeros((len(waves), reply["embeddings"].shape[1]), np.float32)
                        path.embeddings[group] = reply["embeddings"]
            for path in paths:
                seconds, cpu_seconds, peak, device_peak = totals[path.key]
                path.times.append(seconds)
                path.cpu_times.append(cpu_seconds)
                path.peaks.append(peak)
                path.device_peaks.append(device_peak)
            # matmul peaks, interleaved with the model runs (the same machine state)
            H.log("matmul peaks")
            matmul["fp32"].append(workers["fp32"].call(cmd_matmul, dtype="fp32", size=args.matmul_size,
                                                       repeats=args.matmul_repeats)["gflops"])
            matmul["bf16"].append(workers["fp32"].call(cmd_matmul, dtype="bf16", size=bf16_size,
                                                       repeats=args.matmul_repeats if native else 2)["gflops"])
            if "int8" in workers:
                matmul["int8"].append(workers["int8"].call(cmd_matmul, dtype="int8", size=args.matmul_size,
                                                           repeats=args.matmul_repeats)["gflops"])
            loads.append(os.getloadavg()[0])

        default_worker = next(p.worker for p in paths if p.key == "c") if "c" in args.keys else "fp32"
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
        closing = {name: worker.close() for name, worker in workers.items()}
    finally:
        for worker in workers.values():
            worker.kill()

    speech_config = workers["fp32"].info["speech_config"]
    workload_flops = sum(H.speech_tower_flops(len(w), speech_config) for w in waves)
    peaks = {k: max(v) for k, v in matmul.items() if v}
    reference = paths[0].embeddings
    rows = []
    for path in paths:
        med = H.median(path.times)
        precision = workers[path.worker].info["precision"]
        gflops = workload_flops / med / 1e9
        peak = peaks.get(precision)
        row = {"key": path.key, "label": path.label, "worker": path.worker, "precision": precision, "mode": path.mode,
               "stock_attention": path.stock, "batch_size": path.batch_size,
               "max_batch_seconds": path.max_batch_seconds, "times_s": path.times, "median_s": med,
               "audio_seconds_per_s": audio_seconds / med, "clips_per_s": len(waves) / med,
               "audio_seconds_per_cpu_s": audio_seconds / H.median(path.cpu_times),
               "peak_rss_mb": max(path.peaks), "gflops": gflops,
               "peak_of_precision_gflops": peak, "share_of_precision_peak": gflops / peak if peak else None,
               "share_of_bf16_peak": gflops / peaks["bf16"] if peaks.get("bf16") else None,
               **H.agreement(reference, path.embeddings)}
        if any(path.device_peaks):
            row["peak_device_mb"] = max(path.device_peaks)
        rows.append(row)
    by_key = {r["key"]: r for r in rows}
    best_reference = max(by_key[k]["audio_seconds_per_s"] for k in ("a", "b") if k in by_key)
    for row in rows:
        row["speedup_vs_best_reference"] = row["audio_seconds_per_s"] / best_reference

    text_rows = {}
    for precision, seconds in text.items():
        text_rows[precision] = {"seconds": seconds, "captions_per_s": len(captions) / seconds}
        if precision != "fp32":
            text_rows[precision].update(H.agreement(text_embeddings["fp32"], text_embeddings[precision]))
            if "c" in by_key:  # rankings of all captions per clip: (a) x fp32 text against (c) x its own text
                default_audio = next(p.embeddings for p in paths if p.key == "c")
                text_rows[precision]["audio_to_text_ranking"] = H.ranking_agreement(
                    reference @ text_embeddings["fp32"].T, default_audio @ text_embeddings[precision].T)

    return {
        "date": H.now(), "command": H.command_line("benchmarks/inference_speed.py", args.argv),
        "git_revision": H.git_revision(), "machine": machine, "model": args.model, "device": args.device,
        "load_average": {"start": load_start, "per_repeat_1min": loads, "end": os.getloadavg()},
        "workload": {"clips": len(waves), "audio_seconds": audio_seconds, "min_seconds": args.min_seconds,
                     "max_seconds": args.max_seconds, "captions": len(captions), "seed": args.seed,
                     "repeats": args.repeats, "speech_tower_gflop": workload_flops / 1e9},
        "workers": {n: {**{k: v for k, v in w.info.items() if k != "speech_config"}, **closing.get(n, {})}
                    for n, w in workers.items()},
        "default_precision": workers[default_worker].info["precision"],
        "notes": notes, "paths": rows, "best_reference_audio_seconds_per_s": best_reference,
        "matmul_peaks": {"fp32_gflops": peaks.get("fp32"), "bf16_gflops": peaks.get("bf16"),
                         "int8_gops_dynamic_linear": peaks.get("int8"), "size": args.matmul_size,
                         "bf16_size": bf16_size, "repeats": args.matmul_repeats, "samples": matmul},
        "flop_check": {**flop_check, "seconds_of_audio": len(flop_wave) / SR,
                       "relative_difference": abs(flop_check["counted"] - flop_check["analytic"])
                       / max(flop_check["counted"], 1)},
        "text": text_rows,
        "classify": {"clip_seconds": len(classify_clip) / SR, "candidates": len(H.STYLE_TAGS),
                     "precision": workers[default_worker].info["precision"], "cold_ms": classify["cold_s"] * 1000,
                     "warm_ms": classify["warm_s"] * 1000, "alone_ms": classify["alone_s"] * 1000,
                     "ratio_warm_to_alone": classify["warm_s"] / classify["alone_s"],
                     "top1": H.STYLE_TAGS[int(np.argmax(classify["probs"]))]},
    }


# ---------------------------------------------------------------------------------------------- report
def targets(result: dict) -> list[dict]:
    """The issue-11 targets for this machine (CPU with native bf16 or fp32 only; GPUs as native bf16), evaluated
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
             f"Workload: {w['clips']} seeded speech-like clips of {w['min_seconds']:g}-{w['max_seconds']:g} s "
             f"({w['audio_seconds']:.1f} s of audio, {w['speech_tower_gflop']:.1f} GFLOP through the speech tower), "
             f"{w['captions']} template captions; median of {w['repeats']} round-robin repeats. Default precision "
             f"(auto) here: **{result['default_precision']}**.", ""]
    for note in result["notes"]:
        lines.append(f"Note: {note}.")
    headers = ["path", "precision", "audio-s/s", "x best ref", "speech GFLOP/s", "% peak of its precision",
               "% bf16 peak", "centred min cos", "NN kept", "max abs diff", "peak RSS (GB)"]
    if device:
        headers.append("peak device mem (GB)")
    table = []
    for r in result["paths"]:
        row = [f"({r['key']}) {r['label']}", r["precision"], H.fmt(r["audio_seconds_per_s"]),
               H.fmt(r["speedup_vs_best_reference"]), H.fmt(r["gflops"], ".1f"),
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
    lines += H.markdown_table(["issue-11 target", "measured", "met"],
                              [[t["target"], t["measured"], H.met_cell(t["met"])] for t in targets(result)])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    args.argv = raw
    result = run_benchmark(args)
    result["targets"] = targets(result)
    markdown = render_markdown(result)
    stem = H.result_stem("inference", args.name, "quick" if args.quick else "",
                         args.model if args.model != "paper" else "",
                         args.device.replace(":", "") if args.device != "cpu" else "")
    H.write_results(args.out, stem, result, markdown)
    print(markdown)
    H.log(f"wrote {args.out / stem}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
