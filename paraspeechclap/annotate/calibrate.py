"""Calibrate tag thresholds on a labelled corpus: ``python -m paraspeechclap.annotate.calibrate``.

For each attribute of the model's table that a suite file labels (the ``suites.json`` that ``paraspeechclap synth``
writes: ``{"audio_root", "suites": {attribute: {"candidates", "manifest"}}}``; gold class in ``classification_tag``),
the clips are embedded and classified as ``annotate`` does; the threshold is the smallest probability ``t`` such that
the top class is right for at least ``--precision`` (default 90 %) of the clips whose top probability is ``>= t``
(and at least ``--min-clips`` of them). The result is an attribute table (JSON) for ``annotate --attributes``,
recording per attribute the threshold, the precision and the share of clips that get a tag at it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def threshold_for(top_prob: np.ndarray, correct: np.ndarray, precision: float, min_clips: int) -> dict | None:
    order = np.argsort(-top_prob)
    hits = np.cumsum(correct[order])
    kept = np.arange(1, len(order) + 1)
    ok = (hits / kept >= precision) & (kept >= min_clips)
    if not ok.any():
        return None
    last = int(np.flatnonzero(ok)[-1])  # the lowest threshold that still meets the precision
    return {"threshold": float(top_prob[order][last]), "precision": float(hits[last] / kept[last]),
            "coverage": float(kept[last] / len(order)), "clips": int(len(order))}


def calibrate(model, suites_path: str | Path, precision: float = 0.9, min_clips: int = 10, table=None) -> dict:
    from ..data.rows import read_rows
    from ..inference import embed_items
    from .attributes import table_for_model

    suites_path = Path(suites_path)
    doc = json.loads(suites_path.read_text(encoding="utf-8"))
    root = suites_path.parent / doc.get("audio_root", ".")
    table = table or table_for_model(model)
    report = {}
    for a in table.attributes:
        suite = doc.get("suites", {}).get(a.name)
        if not suite or sorted(suite.get("candidates", [])) != sorted(a.classes):
            continue
        rows = [r for r in read_rows(suites_path.parent / suite["manifest"], audio_root=str(root)) if r.ok]
        labels, audio = [], []
        for r in rows:
            if r.fields.get("classification_tag") in a.classes:
                labels.append(a.classes.index(r.fields["classification_tag"]))
                audio.append(r.audio)
        results = [res for res in embed_items(model, audio)]
        good = [i for i, res in enumerate(results) if res.ok]
        if not good:
            continue
        emb = np.stack([results[i].embedding for i in good])
        probs = table.probabilities(model, emb)[a.name]
        gold = np.array([labels[i] for i in good])
        found = threshold_for(probs.max(axis=1), probs.argmax(axis=1) == gold, precision, min_clips)
        report[a.name] = found
        if found is not None:
            a.threshold = round(found["threshold"], 4)
    out = table.to_dict()
    out["calibration"] = (f"thresholds calibrated on {suites_path} for top-1 precision >= {precision:.0%} "
                          f"(at least {min_clips} clips); attributes without a suite keep 2x chance")
    out["calibration_report"] = report
    out["match"] = {}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suites", required=True, help="suites.json of a labelled corpus (paraspeechclap synth writes one)")
    parser.add_argument("--model", default="mini")
    parser.add_argument("--precision", type=float, default=0.9, help="wanted top-1 precision (default 0.9)")
    parser.add_argument("--min-clips", type=int, default=10)
    parser.add_argument("--out", required=True, help="attribute table JSON to write (use with annotate --attributes)")
    args = parser.parse_args(argv)
    from ..api import ParaSpeechCLAP
    from ..fileio import atomic_write_json

    model = ParaSpeechCLAP.from_pretrained(args.model)
    table = calibrate(model, args.suites, args.precision, args.min_clips)
    atomic_write_json(args.out, table)
    print(json.dumps(table["calibration_report"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
