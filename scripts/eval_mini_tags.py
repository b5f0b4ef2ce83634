#!/usr/bin/env python
"""How often annotate's tags are right, per attribute, on a synthetic corpus that calibration did not see.

    .venv/bin/python scripts/eval_mini_tags.py --corpus DIR [--model mini] [--attributes TABLE] [--precision auto]
                                               [--out reports/mini-tags]

Runs ``annotate`` (the real command's Python entry, one worker) over the corpus' test split and compares each clip's
tags with what the corpus claims (:func:`paraspeechclap.synth.verify.gold_labels`; a whisper claims no pitch or
range, a neutral range claims neither monotonous nor singsong, so any such tag on one is wrong). Per attribute:

* per clip (the target: >= 90 % for pitch, rate, gender, range and voice quality, as issue 28 states it): the share
  of clips that are right, a clip being right when the tag it gets for the attribute is its true class and, where the
  corpus claims a neutral class or none (medium pitch, a neutral range, a whisper's pitch), when it gets none; with
  its two-sided 95 % Wilson interval;
* precision: the share of the emitted tags that are right (reported, not the target);
* coverage: the share of clips that get a tag; "taggable" clips are those whose class is not a neutral one (classes
  the table withholds included) and recall the share of them that get the right tag.

Refuses a corpus with fewer than ``--min-clips`` test clips (default 500) or one the table was calibrated on (same
seed in the table's provenance). Writes ``tags.json`` (figures, confusions, provenance: corpus seed and size, table,
model precision, CPU, command) and ``tags.md``; exit 0 when every target is met, 1 when one is not, 2 when refused.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from paraspeechclap import schemas
from paraspeechclap.fileio import atomic_write_text

TARGETS = {"pitch": 0.9, "rate": 0.9, "gender": 0.9, "range": 0.9, "voice_quality": 0.9}


def test_rows(corpus: Path) -> list[dict]:
    """The test split's rows (checked as synth rows), each with its absolute audio path in ``_audio``."""
    from paraspeechclap.data.rows import read_rows

    rows = []
    for row in read_rows(corpus / "test.jsonl", audio_root=str(corpus / "audio")):
        if not row.ok:
            raise SystemExit(f"eval_mini_tags: {row.ref}: {row.error}")
        schemas.check(row.fields, "synth-row", row.ref)
        rows.append(dict(row.fields, _audio=os.path.abspath(row.audio)))  # as annotate's audio column has it
    return rows


def attribute_figures(attribute, truths: list, tags: list) -> dict:
    """Precision, coverage and recall of one attribute's tags (``tags``: the tag per clip or None)."""
    tagged = [(t, g) for t, g in zip(tags, truths) if t is not None]
    right = sum(t == g for t, g in tagged)
    taggable = sum(g is not None and g not in attribute.neutral for g in truths)
    per_class = {c: {"tagged": sum(t == c for t, _ in tagged), "right": sum(t == c == g for t, g in tagged),
                     "true": sum(g == c for g in truths), "withheld": c in attribute.withheld}
                 for c in attribute.classes if c not in attribute.neutral}
    wrong = Counter(f"{g or 'no claim'} -> {t}" for t, g in tagged if t != g)
    clip_right = sum(attribute.clip_right(t, g) for t, g in zip(tags, truths))
    return {"clips": len(truths), "clips_right": clip_right, "per_clip": clip_right / len(truths) if truths else None,
            "per_clip_ci95": wilson_interval(clip_right, len(truths)),
            "tagged": len(tagged), "right": right,
            "precision": right / len(tagged) if tagged else None, "coverage": len(tagged) / len(truths),
            "taggable": taggable, "recall": right / taggable if taggable else None, "per_class": per_class,
            "wrong": dict(wrong.most_common())}


def wilson_interval(hits: int, n: int, confidence: float = 0.95) -> list[float] | None:
    """The two-sided Wilson score interval of ``hits / n`` (calibrate's one-sided bound at each end)."""
    from paraspeechclap.annotate.calibrate import wilson_lower

    if not n:
        return None
    tail = 1 - (1 - confidence) / 2
    lower = float(wilson_lower(np.array(hits), np.array(n), tail))
    return [round(lower, 4), round(1 - float(wilson_lower(np.array(n - hits), np.array(n), tail)), 4)]


def figures(table, rows: list[dict], clip_tags: dict[str, list[str]]) -> dict:
    """{attribute: figures} from the corpus rows and the tags annotate gave each clip (by audio path)."""
    from paraspeechclap.synth.verify import gold_labels

    owner = {}
    for a in table.attributes:
        for c in a.classes:
            if owner.setdefault(c, a.name) != a.name:
                raise SystemExit(f"eval_mini_tags: class {c!r} belongs to two attributes; tags would be ambiguous")
    golds = [gold_labels(r) for r in rows]
    out = {}
    for a in table.attributes:
        truths = [g.get(a.name) for g in golds]
        tags = [next((t for t in clip_tags[r["_audio"]] if t in a.classes), None) for r in rows]
        out[a.name] = attribute_figures(a, truths, tags)
    return out


def annotate_tags(corpus: Path, args) -> tuple[dict[str, list[str]], dict]:
    """{audio path: tags} from a real annotate run over the test split (resumed in ``--annotations`` when that
    folder holds one with the same model and table), and the run's manifest."""
    from paraspeechclap.annotate import annotate
    from paraspeechclap.annotate.engines import annotated_rows, audio_paths

    with tempfile.TemporaryDirectory(prefix="eval-mini-tags-") as tmp:
        folder = Path(args.annotations) if args.annotations else Path(tmp) / "ann"
        annotate(corpus / "test.jsonl", folder, model=args.model, workers=1, precision=args.precision,
                 attributes=args.attributes, audio_root=str(corpus / "audio"), device="cpu")
        table = annotated_rows(folder)
        manifest = schemas.read(folder / "_manifest.json", "annotation-manifest")
    paths = audio_paths(table)
    failed = [a for a, s in zip(paths, table.column("status").to_pylist()) if s != "ok"]
    if failed:
        raise SystemExit(f"eval_mini_tags: {len(failed)} clips could not be annotated, e.g. {failed[0]}")
    return dict(zip(paths, table.column("tags").to_pylist())), manifest


def cpu_name() -> str:
    try:
        names = re.findall(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:
        names = []
    return names[0].strip() if names else platform.processor() or "unknown"


def target_met(figures: dict, target: float | None) -> bool | None:
    """Whether an attribute's per-clip accuracy reaches its target (None: no target)."""
    return None if target is None else figures["per_clip"] is not None and figures["per_clip"] >= target


def to_markdown(result: dict) -> str:
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    lines = ["| attribute | per clip (%) [95 % Wilson] | right / clips | precision (%) | right / tagged | coverage (%) "
             "| recall of taggable (%) | target (per clip) | met |", "|---|---|---|---|---|---|---|---|---|"]
    for name, f in result["attributes"].items():
        target = TARGETS.get(name)
        met = {None: "-", True: "yes", False: "**no**"}[target_met(f, target)]
        ci = f.get("per_clip_ci95")
        interval = f" [{pct(ci[0])}, {pct(ci[1])}]" if ci else ""
        lines.append(f"| {name} | {pct(f['per_clip'])}{interval} | {f['clips_right']} / {f['clips']} | {pct(f['precision'])} | "
                     f"{f['right']} / {f['tagged']} | {pct(f['coverage'])} | {pct(f['recall'])} ({f['taggable']} "
                     f"taggable) | {'-' if target is None else pct(target)} | {met} |")
    return "\n".join(lines) + "\n"


def refuse_reason(corpus: Path, table, rows: list[dict], min_clips: int) -> tuple[str | None, dict]:
    settings = schemas.read(corpus / "verification.json", "synth-verification")["settings"]
    used = (table.calibration.get("corpus") or {})
    if len(rows) < min_clips:
        return f"{corpus}: {len(rows)} test clips, fewer than {min_clips}", settings
    if used.get("seed") is not None and used.get("seed") == settings.get("seed"):
        return f"{corpus}: seed {settings.get('seed')} is the seed the table was calibrated on", settings
    return None, settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="a synth corpus folder the table was not calibrated on")
    parser.add_argument("--model", default="mini")
    parser.add_argument("--attributes", default=None, help="attribute table (default: the model family's own)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "int8"],
                        help="numeric precision of the model (default auto, as annotate)")
    parser.add_argument("--min-clips", type=int, default=500)
    parser.add_argument("--out", default="reports/mini-tags", help="folder for tags.json and tags.md")
    parser.add_argument("--annotations", default=None,
                        help="keep annotate's output here (a rerun with the same table reuses it; default: temporary)")
    args = parser.parse_args(argv)
    from paraspeechclap.annotate.attributes import AttributeTable, table_for_model

    corpus = Path(args.corpus)
    rows = test_rows(corpus)
    if args.attributes:
        table = AttributeTable.from_file(args.attributes)
    else:
        from paraspeechclap import ParaSpeechCLAP
        table = table_for_model(ParaSpeechCLAP.from_pretrained(args.model, precision="fp32"))
    reason, settings = refuse_reason(corpus, table, rows, args.min_clips)
    if reason:
        print(f"eval_mini_tags: {reason}; refused", file=sys.stderr)
        return 2
    clip_tags, manifest = annotate_tags(corpus, args)
    table = AttributeTable.from_dict(manifest["attributes"], source=table.source)  # exactly what annotate used
    result = {"corpus": {"folder": str(corpus), "seed": settings.get("seed"), "num_clips": settings.get("num_clips"),
                         "test_clips": len(rows)},
              "table": {"source": table.source, "calibration": table.calibration},
              "model": manifest["model"], "precision": manifest["precision"], "cpu": cpu_name(),
              "date": time.strftime("%Y-%m-%d", time.gmtime()),
              "command": "scripts/eval_mini_tags.py " + shlex.join(sys.argv[1:] if argv is None else argv),
              "targets": TARGETS, "attributes": figures(table, rows, clip_tags)}
    result["target_reading"] = ("per clip: a clip is right when its tag for the attribute is its true class, or when it "
                                "gets none where the corpus claims a neutral class or none")
    result["all_targets_met"] = all(target_met(result["attributes"][n], t) for n, t in TARGETS.items())
    out = Path(args.out)
    atomic_write_text(out / "tags.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out / "tags.md", to_markdown(result))
    print(to_markdown(result))
    return 0 if result["all_targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
