#!/usr/bin/env python
"""Pitch ladders of the synthetic corpus' male training clips (``loss.order`` data beside the recorded ladders).

    .venv/bin/python scripts/synth_ladders.py [--corpus data/synth-v1] [--out data/synth-male-ladders] [--clips 400]

Each picked clip becomes one order group: the same recording shifted in 200-cent rungs by one method (sox ``pitch``,
formants shifted, or WORLD resynthesis, formants kept), one tempo and one channel per ladder — exactly the ladders
``scripts/real_speech.py --ladders`` writes for recorded speech (``real_speech.write_training(..., "ladder")``).

Why: of the recorded training speakers only one is a man, and the failures of the order loss were men raised by
500 cents heard as deeper. Ladders of many synthetic male voices teach that raising a man's voice makes it higher,
not a deep woman. Whispered clips (no pitch label), female clips and held-out voices never enter. Writes
``<out>/manifest.jsonl`` (the picked clips), ``<out>/train.jsonl`` and ``<out>/audio``; an existing ``--out`` with
either file is refused.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def male_clips(corpus: Path, n: int, seed: int) -> list[dict]:
    """Up to ``n`` of the corpus' male, pitch-labelled, not held-out training clips, drawn at random, as manifest
    rows for ``real_speech.write_training``; a line that is not JSON is reported and skipped."""
    from paraspeechclap.fileio import read_jsonl

    rows = [r for r in read_jsonl(corpus / "train.jsonl")
            if r.get("gender") == "male" and r.get("pitch_level") and not r.get("held_out_voice")]
    pick = [rows[i] for i in np.random.default_rng(seed).permutation(len(rows))[:n]]
    audio = (corpus / "audio").resolve()
    return [{"path": str(audio / r["source"] / r["relative_audio_path"]), "speaker": r["speaker"].replace(":", "_"),
             "gender": "male", "language": "en", "split": "train"} for r in pick]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/synth-v1"))
    ap.add_argument("--out", type=Path, default=Path("data/synth-male-ladders"))
    ap.add_argument("--clips", type=int, default=400, help="male training clips to make ladders of")
    ap.add_argument("--seed", type=int, default=0, help="which clips are picked")
    ap.add_argument("--ladder-seed", type=int, default=7, help="method, tempo and channel of each ladder")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    from paraspeechclap.fileio import atomic_write_text

    if str(Path(__file__).resolve().parent) not in sys.path:  # loaded as a module (tests): find its sibling
        sys.path.insert(0, str(Path(__file__).resolve().parent))
    from real_speech import write_training

    manifest, target = args.out / "manifest.jsonl", args.out / "train.jsonl"
    for path in (manifest, target):
        if path.exists():
            print(f"error: {path} exists; choose another --out", file=sys.stderr)
            return 1
    rows = male_clips(args.corpus, args.clips, args.seed)
    if not rows:
        print(f"error: no male pitch-labelled training clips in {args.corpus}/train.jsonl", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(manifest, "".join(json.dumps(r) + "\n" for r in rows))
    n = write_training(manifest, args.out, "ladder", args.workers, args.ladder_seed)
    print(f"{len(rows)} ladders ({n} rungs) -> {target}")
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
