#!/usr/bin/env python
"""Does a second clone of the repository reproduce a tts-eval report's numbers under the same signature?

    .venv/bin/python scripts/tts_eval_second_clone.py --prompts data/tts-bench/prompts.jsonl \\
        --system adh100=data/tts-bench/systems/adh100/clips ... --results benchmarks/results

Runs ``paraspeechclap tts-eval`` in fp32 with no embedding cache twice: once with this working tree's code and once
from a fresh ``git clone`` of its HEAD in a temporary folder (same interpreter), on the same inputs. Compares the
signatures and every per-clip number (cosine, contrastive, attribute) and writes the largest differences to
``--results/tts-eval-second-clone-<date>-<commit>.json``. Exit 1 when the signatures differ or a difference exceeds
the stated tolerance (docs/tts-eval.md: 1e-5 for cosines, 1e-4 for contrastive scores).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = {"cosine": 1e-5, "contrastive": 1e-4, "attribute": 0.0}


def run_report(tree: Path, args: argparse.Namespace, out: Path) -> dict:
    command = [sys.executable, "-m", "paraspeechclap", "tts-eval", "--prompts", str(args.prompts.resolve()),
               "--out", str(out), "--precision", "fp32", "--device", "cpu", "--no-cache", "--no-plots",
               "--audio", "none", "--quiet"]
    for system in args.system:
        name, _, path = system.partition("=")
        command += ["--system", f"{name}={Path(path).resolve()}"]
    env = dict(os.environ, PYTHONPATH=str(tree), HF_HUB_OFFLINE="1")
    subprocess.run(command, cwd=tree, env=env, check=True)
    return json.loads((out / "report.json").read_text())


def differences(a: dict, b: dict) -> dict[str, float]:
    """The largest absolute difference per score over the clips both reports scored."""
    key = lambda clip: (clip["system"], clip["prompt"])  # noqa: E731
    other = {key(c): c for c in b["clips"]}
    worst = {score: 0.0 for score in TOLERANCE}
    for clip in a["clips"]:
        twin = other.get(key(clip))
        for score in TOLERANCE:
            x, y = clip.get(score), (twin or {}).get(score)
            if x is None or y is None:
                worst[score] = max(worst[score], 0.0 if x is y else float("inf"))
            else:
                worst[score] = max(worst[score], abs(float(x) - float(y)))
    return worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=Path, required=True)
    ap.add_argument("--system", action="append", required=True, metavar="NAME=PATH")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="tts-eval-clone-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        first = run_report(REPO, args, Path(tmp) / "here")
        second = run_report(clone, args, Path(tmp) / "there")
    worst = differences(first, second)
    same_signature = first["signature"] == second["signature"]
    ok = same_signature and all(worst[s] <= TOLERANCE[s] for s in TOLERANCE)
    summary = {"commit": commit, "signature": first["signature"], "second_signature": second["signature"],
               "same_signature": same_signature, "clips": len(first["clips"]), "max_abs_difference": worst,
               "tolerance": TOLERANCE, "reproduced": ok}
    from paraspeechclap.fileio import atomic_write_json

    out = args.results / f"tts-eval-second-clone-{time.strftime('%Y-%m-%d')}-{commit}.json"
    atomic_write_json(out, summary)
    print(json.dumps(summary, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
