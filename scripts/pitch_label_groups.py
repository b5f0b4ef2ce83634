#!/usr/bin/env python
"""Order groups of *different* synthetic training clips by their gender-relative pitch labels (``loss.order`` data).

    .venv/bin/python scripts/pitch_label_groups.py [--corpus data/synth-v1] [--out data/pitch-label-groups]

Each group is one deep, one medium-pitched and one high-pitched clip of the corpus' training split, each of either
gender (drawn independently, so a group can hold a deep woman and a high-pitched man), and ``shift_cents`` is the
clip's pitch offset from its gender's centre (``pitch_offset_st`` x 100, the value the corpus' labels are cut from).
The order loss then asks, across voices, for what the corpus' words mean: the deep clip scores higher on "deep" minus
"high-pitched" than the medium one, and that one higher than the high-pitched one, whatever their absolute F0.

Why: pitch ladders of recorded voices (``scripts/real_speech.py --ladders``) teach the order of versions of one
voice, and pulled the score towards absolute F0: synthetic high-pitched men came out "deep". These groups put the
gender-relative order into the same loss, on the same direction and scale. Whispered clips (no pitch label) and the
held-out voices never enter. Writes ``<out>/train.jsonl`` only (rows point into the corpus' audio; an existing
``--out`` file is refused).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

LEVELS = ("low", "medium", "high")


def labelled_rows(corpus: Path) -> dict[str, list[dict]]:
    """The corpus' training rows with a pitch label, by label; a line that is not JSON is reported and skipped."""
    from paraspeechclap.fileio import read_jsonl

    by_level: dict[str, list[dict]] = {level: [] for level in LEVELS}
    for row in read_jsonl(corpus / "train.jsonl"):
        if row.get("held_out_voice") or row.get("pitch_level") not in by_level or row.get("pitch_offset_st") is None:
            continue
        by_level[row["pitch_level"]].append(row)
    return by_level


def groups(by_level: dict[str, list[dict]], n_groups: int, seed: int) -> list[dict]:
    """``n_groups`` groups of one clip per level, no clip twice (fewer when a level runs out); the order rows."""
    rng = np.random.default_rng(seed)
    shuffled = {level: [rows[i] for i in rng.permutation(len(rows))] for level, rows in by_level.items()}
    n = min([n_groups] + [len(rows) for rows in shuffled.values()])
    out = []
    for k in range(n):
        for level in LEVELS:
            row = dict(shuffled[level][k])
            row.update(original=f"pitch-label-group-{k}", shift_cents=round(100 * float(row["pitch_offset_st"]), 1))
            out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/synth-v1"))
    ap.add_argument("--out", type=Path, default=Path("data/pitch-label-groups"))
    ap.add_argument("--groups", type=int, default=880, help="groups to write (one clip per pitch level each)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from paraspeechclap.fileio import atomic_write_text

    target = args.out / "train.jsonl"
    if target.exists():
        print(f"error: {target} exists; choose another --out", file=sys.stderr)
        return 1
    rows = groups(labelled_rows(args.corpus), args.groups, args.seed)
    if not rows:
        print(f"error: no labelled training clips in {args.corpus}/train.jsonl", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, "".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows) // len(LEVELS)} groups ({len(rows)} rows) -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
