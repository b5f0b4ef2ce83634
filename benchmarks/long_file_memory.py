"""Peak memory of one long file through ``embed_audio`` for several precisions and batching settings.

A companion of ``inference_speed.py`` (same model, same fresh-process measurement) for the issue-6 target
"a 30-minute file under 4 GB peak memory": each setting runs in its own process on the shortest file whose
windows fill the largest batch ``embed_audio`` builds three times (``--minutes auto``; the peak of any longer
file, the allocator settles after about three batches) and adds the measured decode/normalise buffers of a real 30-minute file; or on files of the given lengths.

    python benchmarks/long_file_memory.py --precision auto,int8 --max-batch-seconds 240,60,30
    python benchmarks/long_file_memory.py --minutes 30                  # the real thing (slow on CPU)
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import inference_speed as bench  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", default="auto", help="'auto' or comma-separated file lengths in minutes")
    ap.add_argument("--precision", default="auto", help="comma-separated: auto, fp32, int8")
    ap.add_argument("--max-batch-seconds", default="240,30", help="comma-separated embed_audio settings")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--fill-batches", type=int, default=3,
                    help="with --minutes auto: the file fills the largest batch this many times (the peak settles)")
    ap.add_argument("--tiny", action="store_true", help="the reference-tiny fixture (1-s windows), for tests")
    ap.add_argument("--inline", action="store_true", help="in this process (tests; no per-setting peak)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory-limit-gb", type=float, default=12.0)
    ap.add_argument("--out", type=Path, default=bench.REPO / "benchmarks" / "results")
    ap.add_argument("--name", default=None)
    return ap.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    model = "tiny" if args.tiny else "paper"
    window = (1.0, 0.25) if args.tiny else None  # see inference_speed.parse_args
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-long-") as folder:
        buffer_path = None
        if args.minutes == "auto":
            buffer_path = Path(folder) / "buffer-30min.wav"
            bench.write_long_wav(buffer_path, 30 * 60, args.seed, speech=False)
        for precision in [p.strip() for p in args.precision.split(",") if p.strip()]:
            for batch_seconds in [float(s) for s in args.max_batch_seconds.split(",") if s.strip()]:
                if args.minutes == "auto":
                    lengths = [bench.saturating_seconds(args.batch_size, batch_seconds, *(window or (30.0, 5.0)),
                                                        fill=args.fill_batches)[0]]
                else:
                    lengths = [float(m) * 60 for m in args.minutes.split(",") if m.strip()]
                for seconds in lengths:
                    bench.log(f"long file: {seconds:g} s, {precision}, max_batch_seconds {batch_seconds:g}")
                    row = bench.long_file(model, args.seed, seconds, args.batch_size, batch_seconds, args.threads,
                                          Path(folder), inline=args.inline, window=window,
                                          memory_limit_gb=args.memory_limit_gb, buffer_path=buffer_path,
                                          precision=precision)
                    row["requested_precision"] = precision
                    row["peak_mb_at_30min_estimate"] = bench.thirty_minute_estimate(row)
                    rows.append(row)
    return {"date": _dt.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(["python", "benchmarks/long_file_memory.py", *map(shlex.quote, args.argv)]),
            "machine": bench.machine_info(args.threads), "model": model, "rows": rows}


def render(result: dict) -> str:
    lines = [f"### Long-file peak memory, {result['date'][:10]} ({result['model']} model)", "",
             f"Command: `{result['command']}`", "",
             "| precision | file | windows (largest batch) | max_batch_seconds | seconds | peak RSS, process (GB) | "
             "peak RSS, inference (GB) | 30-min file (GB) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        name = f"{r['seconds_of_audio']:g} s"
        if "error" in r:
            lines.append(f"| {r['requested_precision']} | {name} | | {r['max_batch_seconds']:g} | failed: {r['error']} | | | |")
            continue
        at_30 = r["process_peak_rss_mb"] if r["minutes"] >= 30 else r.get("peak_mb_at_30min_estimate")
        label = "measured" if r["minutes"] >= 30 else "estimated"
        lines.append(f"| {r['precision']} | {name} | {bench.long_file_cells(r)} | "
                     + (f"{at_30 / 1024:.2f} ({label}) |" if at_30 else "- |"))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    args.argv = raw
    result = run(args)
    markdown = render(result)
    stem = args.name or f"long-file-{result['date'][:10]}" + ("-tiny" if args.tiny else "")
    bench.write_atomic(args.out / f"{stem}.md", markdown)
    bench.write_atomic(args.out / f"{stem}.json", json.dumps(result, indent=2, default=float) + "\n")
    print(markdown)
    return 0 if all("error" not in r for r in result["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
