#!/usr/bin/env python
"""Why mini's range tags miss: how separable singsong is, by measurement and by the model, on annotated synth corpora.

    .venv/bin/python scripts/diagnose_range_tags.py --corpus DIR --annotations ANN [--train-corpus DIR2
                                                    --train-annotations ANN2] [--out FILE.json]

``ANN`` is an ``annotate`` folder of ``DIR/test.jsonl`` (its probabilities, tags and embeddings are read; the table's
thresholds are not). Over the clips that are not whispered, per range level (neutral split by engine and voice
quality): how many, the median 10-90 % F0 spread the corpus measured, the share inside the neutral band that
``synth`` now checks, and the median of mini's singsong probability. Then the ROC AUC of singsong against the
other clips, by the measured spread and by the model's probability, and the best per-clip share of range that any
pair of monotonous/singsong thresholds reaches on this corpus (chosen on it: a ceiling for calibration). With a
second annotated corpus, a logistic probe on the embeddings (range class or none) fitted there and scored here:
what the embedding holds beyond the zero-shot prompts. Prints and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from paraspeechclap.annotate.engines import annotated_rows, audio_paths
from paraspeechclap.fileio import atomic_write_text
from paraspeechclap.synth.verify import RANGE_MONO_MAX_ST, RANGE_SINGSONG_MIN_ST, gold_labels


def load(corpus: Path, annotations: Path) -> dict:
    """Per clip of the annotation folder: its corpus row's range gold, kind and spread, and the model's outputs."""
    rows = {}
    for line in (corpus / "test.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        rows[str((corpus / "audio" / r["source"] / r["relative_audio_path"]).resolve())] = r
    table = annotated_rows(annotations)
    found = [rows.get(str(Path(p).resolve())) for p in audio_paths(table)]
    if any(r is None for r in found):
        raise SystemExit(f"diagnose_range_tags: {annotations} holds clips that are not in {corpus}/test.jsonl")
    kind = [r["range_level"] if r["range_level"] != "neutral" else
            f"neutral ({'creaky' if r['voice_quality'] == 'creaky' else r['engine']})" for r in found]
    return {"gold": np.array([gold_labels(r)["range"] or "none" for r in found], dtype=object),
            "kind": np.array(kind, dtype=object), "whisper": np.array([r["voice_quality"] == "whispered" for r in found]),
            "spread": np.array([r["measured"].get("f0_range_st") or np.nan for r in found], dtype=float),
            "p": np.column_stack([table.column(f"p_range_{c}").to_numpy() for c in ("monotonous", "singsong")]),
            "tagged_whisper": np.array(["whispered" in t for t in table.column("tags").to_pylist()]),
            "embedding": np.array(table.column("embedding").to_pylist(), dtype=np.float32)}


def per_clip(d: dict, mono: float, sing: float, predicted=None) -> float:
    """Share of clips whose range tag (none where the clip is tagged whispered) is the class the corpus claims."""
    if predicted is None:
        top = d["p"].argmax(axis=1)
        reach = d["p"].max(axis=1) >= np.where(top == 0, mono, sing)
        predicted = np.where(reach, np.where(top == 0, "monotonous", "singsong"), "none")
    return float(np.mean(np.where(d["tagged_whisper"], "none", predicted) == d["gold"]))


def ceiling(d: dict) -> dict:
    grid = np.unique(np.r_[np.linspace(0.5, 0.99, 50), 1 - np.logspace(-2, -6, 41), 1.01])
    best = max((per_clip(d, m, s), m, s) for m in grid for s in grid)
    return {"per_clip": round(best[0], 4), "monotonous": round(float(best[1]), 6), "singsong": round(float(best[2]), 6)}


def summary(d: dict) -> dict:
    from sklearn.metrics import roc_auc_score

    voiced = ~d["whisper"]
    levels = {}
    for k in sorted(set(d["kind"][voiced])):
        m = voiced & (d["kind"] == k)
        s = d["spread"][m]
        levels[k] = {"clips": int(m.sum()), "spread_median_st": round(float(np.nanmedian(s)), 2),
                     "in_neutral_band": round(float(np.mean((s > RANGE_MONO_MAX_ST) & (s < RANGE_SINGSONG_MIN_ST))), 3),
                     "p_singsong_median": round(float(np.median(d["p"][m, 1])), 4)}
    sing = d["gold"][voiced] == "singsong"
    not_mono = voiced & (d["gold"] != "monotonous")
    auc = lambda score, m: round(float(roc_auc_score(d["gold"][m] == "singsong", score[m])), 3)  # noqa: E731
    spread = np.nan_to_num(d["spread"], nan=0.0)
    return {"clips": len(d["gold"]), "levels": levels, "singsong_clips": int(sing.sum()),
            "auc_singsong_vs_rest": {"model": auc(d["p"][:, 1], voiced), "spread": auc(spread, voiced)},
            "auc_singsong_vs_unclaimed": {"model": auc(d["p"][:, 1], not_mono), "spread": auc(spread, not_mono)},
            "ceiling": ceiling(d)}


def probe(train: dict, test: dict) -> dict:
    from sklearn.linear_model import LogisticRegression

    out = {}
    for c in (0.1, 1.0, 10.0):
        fit = LogisticRegression(C=c, max_iter=3000).fit(train["embedding"], train["gold"])
        out[f"C={c:g}"] = {"per_clip": round(per_clip(test, 0, 0, fit.predict(test["embedding"])), 4),
                           "per_clip_train": round(per_clip(train, 0, 0, fit.predict(train["embedding"])), 4)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--annotations", required=True, help="annotate's folder of the corpus' test.jsonl")
    parser.add_argument("--train-corpus", help="a second annotated corpus to fit a linear probe on")
    parser.add_argument("--train-annotations")
    parser.add_argument("--out", help="write the figures here as JSON")
    args = parser.parse_args(argv)
    if bool(args.train_corpus) != bool(args.train_annotations):
        parser.error("--train-corpus and --train-annotations go together")
    test = load(Path(args.corpus), Path(args.annotations))
    result = {"corpus": args.corpus, "annotations": args.annotations, **summary(test),
              "command": "scripts/diagnose_range_tags.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    if args.train_corpus:
        result["probe"] = {"fitted_on": args.train_corpus,
                           **probe(load(Path(args.train_corpus), Path(args.train_annotations)), test)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        atomic_write_text(Path(args.out), text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
