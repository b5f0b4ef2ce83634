"""What glibc's trim threshold costs the model: in-process ``reward()`` of N clips per call, in a fresh process per
setting, with the threshold the engine sets (64 MB) and lowered ones (as the service once did, to hold its RSS).

A lowered threshold gives a large forward pass's freed blocks back to the OS after each call, so the next call
faults them in again: system time and minor page faults per call show it. Each setting runs ``--rounds`` times,
interleaved, so that a change in the machine's load falls on all of them.

    python benchmarks/malloc_trim.py                      # 64 (the engine's), 32, 16 and 8 MB
    python benchmarks/malloc_trim.py --thresholds 64,8 --calls 30
"""
from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def one_setting(model_name: str, threshold_mb: int, clips: int, seconds: float, calls: int) -> dict:
    """Per-call wall, user and system time (ms) and minor faults of ``reward()`` with the threshold at
    ``threshold_mb`` (set after loading, as a server would)."""
    import soundfile as sf

    import harness as H
    from paraspeechclap import ParaSpeechCLAP
    from paraspeechclap.rerank import reward
    from paraspeechclap.kernels.malloc import M_TRIM_THRESHOLD, mallopt

    model = ParaSpeechCLAP.from_pretrained(model_name, device="cpu")
    mallopt(M_TRIM_THRESHOLD, threshold_mb << 20)
    rng = np.random.default_rng(0)
    audio = []
    for _ in range(clips):
        buffer = io.BytesIO()
        sf.write(buffer, H.speech_like(seconds, rng), 16000, format="WAV", subtype="PCM_16")
        audio.append(buffer.getvalue())
    captions = [f"A person speaks, take {i}." for i in range(clips)]
    for _ in range(5):
        reward(model, audio, captions)
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(calls):
        reward(model, audio, captions)
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - start
    return {"threshold_mb": threshold_mb, "wall_ms": 1000 * wall / calls,
            "user_ms": 1000 * (after.ru_utime - before.ru_utime) / calls,
            "sys_ms": 1000 * (after.ru_stime - before.ru_stime) / calls,
            "faults": (after.ru_minflt - before.ru_minflt) / calls}


def main(argv=None) -> int:
    import harness as H

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mini")
    parser.add_argument("--thresholds", default="64,32,16,8", help="MB, comma-separated")
    parser.add_argument("--clips", type=int, default=4, help="clips per reward() call")
    parser.add_argument("--clip-seconds", type=float, default=3.0)
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(H.RESULTS))
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one_setting(args.model, args.one, args.clips, args.clip_seconds, args.calls)))
        return 0
    runs = []
    for round_ in range(args.rounds):
        for threshold in (int(t) for t in args.thresholds.split(",")):
            out = subprocess.run([sys.executable, __file__, "--one", str(threshold), "--model", args.model,
                                  "--clips", str(args.clips), "--clip-seconds", str(args.clip_seconds),
                                  "--calls", str(args.calls)], capture_output=True, text=True, check=True)
            runs.append({**json.loads(out.stdout.strip().splitlines()[-1]), "round": round_})
            H.log(f"round {round_}: {runs[-1]}")
    result = {"runs": runs, "command": H.command_line("benchmarks/malloc_trim.py", sys.argv[1:]),
              "revision": H.git_revision(), "machine": H.machine_info(threads=1), "date": H.now(),
              "clips": args.clips, "clip_seconds": args.clip_seconds, "calls": args.calls, "model": args.model}
    rows = [[r["round"], r["threshold_mb"], f"{r['wall_ms']:.1f}", f"{r['user_ms']:.1f}", f"{r['sys_ms']:.1f}",
             f"{r['faults']:.0f}"] for r in runs]
    lines = [f"# reward() per call by glibc trim threshold ({args.model}, {args.clips} x {args.clip_seconds:g} s)", "",
             f"`{result['command']}` · {result['date']} · {result['revision']}", "", H.machine_line(result["machine"]),
             "", *H.markdown_table(["round", "trim threshold MB", "wall ms", "user ms", "system ms", "minor faults"],
                                   rows, [True] * 6), ""]
    stem = Path(args.out) / f"malloc-trim-{result['date'][:10]}-{result['revision']}"
    from paraspeechclap.fileio import atomic_write_text

    atomic_write_text(stem.with_suffix(".json"), json.dumps(result, indent=1))
    atomic_write_text(stem.with_suffix(".md"), "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
