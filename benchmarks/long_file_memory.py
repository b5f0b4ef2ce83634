"""Peak memory of one long file streamed through the public API (issue 11; harness: harness.py).

The harness writes a speech-like 48 kHz stereo FLAC of ``--seconds``; a fresh process builds the model and calls
``model.embed_audio(path)`` (streamed decoding and resampling, windows, batches: the engine's defaults), and its peak
RSS is reported. Before the model is built, the same process decodes the file the way the engine does, without the
encoder (whole and normalised; or, past ``stream.STREAM_SECONDS``, the two streamed passes: statistics, then every
window normalised) and measures what that costs; where ``--seconds`` is shorter than the target length, the target's
peak is **estimated** as the measured peak plus that cost's per-second growth times the missing seconds (labelled).

Targets: the paper-size model, a 2-hour file, <= 4 GB; the reference-tiny model, a 5-minute file, <= 2 GB.

    python benchmarks/long_file_memory.py                        # paper size, the full 2 hours (slow on CPU)
    python benchmarks/long_file_memory.py --seconds 600          # paper size, 10 minutes + a 2-hour estimate
    python benchmarks/long_file_memory.py --tiny                 # reference-tiny, the full 5 minutes
    python benchmarks/long_file_memory.py --tiny --quick --inline   # 8 s + estimate, in this process (tests)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H  # noqa: E402

SR = H.SR
TARGETS = {"paper": (7200.0, 4096.0), "small": (7200.0, 4096.0), "tiny": (300.0, 2048.0)}  # seconds, peak MB


def long_file_job(kind: str, precision: str, seed: int, path: str, max_batch_seconds: float | None,
                  threads: int | None, device: str, slope_files: list[str] | None = None) -> dict:
    """Runs in its own process: decode-only cost of the file, then the model and ``embed_audio(path)``."""
    import gc
    import time

    import numpy as np
    import torch

    from paraspeechclap.audio import file_seconds, load_audio, normalize_waveform
    from paraspeechclap.inference import stream
    from paraspeechclap.inference.plan import window_spans
    from paraspeechclap.model import ParaSpeechCLAPConfig

    if threads:
        torch.set_num_threads(threads)
    from paraspeechclap.kernels.malloc import release_freed_memory

    def decode_cost(source: str) -> tuple[float, float, float]:
        """Audio seconds, decode seconds and the peak RSS growth of decoding ``source`` as the engine does, without
        the encoder (the configuration's default 30 s windows)."""
        gc.collect()
        release_freed_memory()
        before = H.current_rss_mb()
        H.reset_peak_rss()
        start = time.perf_counter()
        if file_seconds(source) > stream.STREAM_SECONDS:
            audio = stream.measure(source, SR, source)
            config = ParaSpeechCLAPConfig(speech_config={}, text_config={})
            spans = window_spans(audio.samples, int(config.window_seconds * SR), int(config.window_overlap_seconds * SR))
            samples = audio.samples
            for _ in stream.windows(audio, spans, SR):
                pass
        else:
            wave = load_audio(source, SR)
            samples = len(normalize_waveform(wave))
            del wave
        return samples / SR, time.perf_counter() - start, H.peak_rss_mb() - before

    decoded_seconds, decode_s, buffer_mb = decode_cost(path)
    decode = {"decoded_seconds": decoded_seconds, "decode_s": decode_s, "buffer_mb": buffer_mb,
              "streamed": file_seconds(path) > stream.STREAM_SECONDS}
    if slope_files:  # the per-second cost without the fixed part (decoder blocks, libraries): two lengths
        (s1, _, mb1), (s2, _, mb2) = decode_cost(slope_files[0]), decode_cost(slope_files[1])
        decode.update(slope_seconds=[s1, s2], slope_buffer_mb=[mb1, mb2],
                      buffer_mb_per_second=max(0.0, (mb2 - mb1) / max(s2 - s1, 1e-9)))
    gc.collect()
    release_freed_memory()

    started = time.perf_counter()
    model = H.build_model(kind, precision, seed, device)
    if model.precision != "fp32":
        release_freed_memory()  # the fp32 copies of converted or quantized weights
    build = {"build_s": time.perf_counter() - started, "build_peak_rss_mb": H.peak_rss_mb(),
             "rss_after_build_mb": H.current_rss_mb()}
    gc.collect()
    H.reset_peak_rss()
    start = time.perf_counter()
    embedding = model.embed_audio(path, max_batch_seconds=max_batch_seconds)
    seconds = time.perf_counter() - start
    engine = model.engine
    windows = len(window_spans(int(round(decode["decoded_seconds"] * SR)), engine.window, engine.overlap))
    return {**decode, **build, "seconds": seconds, "inference_peak_rss_mb": H.peak_rss_mb(),
            "process_peak_rss_mb": H.process_peak_rss_mb(), "precision": model.precision,
            "finite": bool(np.isfinite(embedding).all()), "window_seconds": engine.window / SR,
            "window_overlap_seconds": engine.overlap / SR, "windows": windows,
            "max_batch_seconds": max_batch_seconds if max_batch_seconds is not None else engine.default_max_batch_seconds}


def estimate(row: dict, target_seconds: float) -> dict:
    """The target length's peak: measured when the file was that long, else the measured peak plus the decoding's
    per-second cost for the missing seconds (measured between two decode-only files, both longer than the decoder's
    block and, when the file is streamed, than ``STREAM_SECONDS``; for a file decoded whole never below the two
    float32 16 kHz copies that holds, 128 kB per second)."""
    if "error" in row:
        return {}
    peak = max(row["process_peak_rss_mb"], row["inference_peak_rss_mb"])
    if row["file_seconds"] >= target_seconds:
        return {"target_peak_mb": peak, "target_peak_estimated": False}
    floor = 0.0 if row.get("streamed") else 2 * 4 * SR / 2**20
    per_second = max(row.get("buffer_mb_per_second", row["buffer_mb"] / max(row["decoded_seconds"], 1e-9)), floor)
    return {"target_peak_mb": peak + per_second * (target_seconds - row["file_seconds"]),
            "target_peak_estimated": True, "buffer_mb_per_audio_second": per_second}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=None,
                    help="length of the file (default: the target, 7200 paper / 300 tiny); shorter gives an estimate")
    ap.add_argument("--target-seconds", type=float, default=None, help="the length the target is about")
    ap.add_argument("--precision", default="auto", help="comma-separated: auto, fp32, bf16, int8")
    ap.add_argument("--max-batch-seconds", default="default",
                    help="comma-separated embed_audio settings; 'default' = the engine's own")
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--tiny", action="store_true", help="the reference-tiny fixture model")
    ap.add_argument("--model", choices=H.MODEL_KINDS, default=None)
    ap.add_argument("--quick", action="store_true", help="an 8 s file (tiny) / 120 s (paper) and the estimate")
    ap.add_argument("--inline", action="store_true", help="in this process (tests; peaks include the caller)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory-limit-gb", type=float, default=12.0)
    ap.add_argument("--out", type=Path, default=H.RESULTS)
    ap.add_argument("--name", default=None)
    args = ap.parse_args(argv)
    args.model = args.model or ("tiny" if args.tiny else "paper")
    target, limit = TARGETS[args.model]
    args.target_seconds = args.target_seconds or target
    args.target_mb = limit
    if args.seconds is None:
        args.seconds = (8.0 if args.model == "tiny" else 120.0) if args.quick else args.target_seconds
    args.precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    args.batch_seconds = [None if s.strip() == "default" else float(s)
                          for s in args.max_batch_seconds.split(",") if s.strip()]
    return args


def run(args: argparse.Namespace) -> dict:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-long-") as folder:
        path = Path(folder) / f"long-{args.seconds:g}s-{args.rate}-{args.channels}ch.flac"
        H.log(f"writing a {args.seconds:g} s {args.rate} Hz {args.channels}-channel FLAC")
        H.write_long_flac(path, args.seconds, args.seed + 7, args.rate, args.channels)
        file_mb = path.stat().st_size / 2**20
        slope_files = None
        if args.seconds < args.target_seconds:  # two decode-only lengths, both past the decoder's block size
            from paraspeechclap.audio import BLOCK_SECONDS
            from paraspeechclap.inference.stream import STREAM_SECONDS

            short = max(2 * BLOCK_SECONDS, args.seconds / 2)
            if args.seconds > STREAM_SECONDS:  # both past the streaming threshold, as the file is
                short = max(short, STREAM_SECONDS + 2 * BLOCK_SECONDS)
            slope_files = [str(H.write_long_flac(Path(folder) / f"slope-{n}.flac", seconds, args.seed + 8 + n,
                                                 args.rate, args.channels))
                           for n, seconds in enumerate((short, 2 * short))]
        for precision in args.precisions:
            for batch_seconds in args.batch_seconds:
                H.log(f"long file: {args.seconds:g} s, {args.model}, {precision}, max_batch_seconds "
                      f"{'default' if batch_seconds is None else f'{batch_seconds:g}'}")
                row = H.run_in_subprocess(long_file_job, args.model, precision, args.seed, str(path), batch_seconds,
                                          args.threads, args.device, slope_files, inline=args.inline,
                                          memory_limit_gb=args.memory_limit_gb)
                row.update(requested_precision=precision, file_seconds=args.seconds, file_mb=file_mb)
                row.update(estimate(row, args.target_seconds))
                rows.append(row)
    return {"date": H.now(), "command": H.command_line("benchmarks/long_file_memory.py", args.argv),
            "git_revision": H.git_revision(), "machine": H.machine_info(args.threads, args.device),
            "model": args.model, "inline": args.inline, "rate": args.rate, "channels": args.channels,
            "target": {"seconds": args.target_seconds, "peak_mb": args.target_mb}, "rows": rows}


def targets(result: dict) -> list[dict]:
    t = result["target"]
    out = []
    for r in result["rows"]:
        name = f"{t['seconds'] / 60:g}-minute file, {result['model']} model, {r['requested_precision']}"
        if "error" in r:
            out.append({"target": f"{name} <= {t['peak_mb'] / 1024:g} GB", "measured": f"failed: {r['error']}",
                        "met": False})
            continue
        how = "estimated from " + f"{r['file_seconds']:g} s" if r["target_peak_estimated"] else "measured"
        out.append({"target": f"{name}: peak RSS <= {t['peak_mb'] / 1024:g} GB",
                    "measured": f"{r['target_peak_mb'] / 1024:.2f} GB ({how})", "met": r["target_peak_mb"] <= t["peak_mb"]})
    return out


def render(result: dict) -> str:
    t = result["target"]
    lines = [f"### Long-file peak memory, {result['date'][:10]} ({result['model']} model, git {result['git_revision']})",
             "", f"Command: `{result['command']}`", "", H.machine_line(result["machine"]), "",
             f"A speech-like {result['rate']} Hz {result['channels']}-channel FLAC through `model.embed_audio(path)` "
             "in a fresh process" + (" (inline: the peaks include the calling process)" if result["inline"] else "")
             + ". \"decoding (MB)\" is what decoding the file as the engine does costs without the encoder (whole "
             "and normalised, or streamed twice past the streaming threshold: \"streamed\"; measured before the model "
             f"is built); where the file is shorter, the {t['seconds'] / 60:g}-minute column adds that cost's "
             "per-second growth (measured between two decode-only files) for the missing seconds.", ""]
    table = []
    for r in result["rows"]:
        if "error" in r:
            table.append([r["requested_precision"], f"{r['file_seconds']:g} s", "", "", f"failed: {r['error']}",
                          "", "", "", ""])
            continue
        table.append([r["precision"], f"{r['file_seconds']:g} s", f"{r['windows']} x {r['window_seconds']:.2f} s",
                      f"{r['max_batch_seconds']:.4g}", f"{r['seconds']:.0f}",
                      f"{r['buffer_mb']:.0f}" + (" (streamed)" if r.get("streamed") else ""),
                      f"{r['rss_after_build_mb'] / 1024:.2f}",
                      f"{max(r['process_peak_rss_mb'], r['inference_peak_rss_mb']) / 1024:.2f}",
                      f"{r['target_peak_mb'] / 1024:.2f}" + (" (estimated)" if r["target_peak_estimated"] else "")])
    lines += H.markdown_table(["precision", "file", "windows", "max_batch_seconds", "seconds", "decoding (MB)",
                               "RSS after build (GB)", "peak RSS (GB)", f"{t['seconds'] / 60:g}-min file (GB)"],
                              table, [False, False] + [True] * 7)
    lines += [""] + H.markdown_table(["target", "measured", "met"],
                                     [[x["target"], x["measured"], H.met_cell(x["met"])] for x in targets(result)])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    args.argv = raw
    result = run(args)
    result["targets"] = targets(result)
    markdown = render(result)
    stem = H.result_stem("long-file", args.name, args.model if args.model != "paper" else "",
                         f"{args.seconds:g}s", "quick" if args.quick else "")
    H.write_results(args.out, stem, result, markdown)
    print(markdown)
    H.log(f"wrote {args.out / stem}.md and .json")
    return 0 if all("error" not in r for r in result["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
