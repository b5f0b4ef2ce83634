#!/usr/bin/env python
"""Quality table of a model on the synthetic corpus' test split (held-out voices and caption wording).

    .venv/bin/python scripts/eval_mini.py [--corpus data/synth-v1] [--model mini] [--out reports/mini-quality]

Runs ``paraspeechclap evaluate --suite <corpus>/suites.json`` (the suite file ``paraspeechclap synth`` writes:
zero-shot classification per attribute + caption retrieval over the full compositional test captions; full report
in ``--out``), and prints and writes (``quality.md``, ``quality.json``) the table against the `mini` targets:
UAR >= 90 % for pitch, rate and whisper, >= 75 % for pitch range, retrieval R@1 >= 5x chance. A target whose task
is missing from the report counts as not met. Exit code 0 when every target is met, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from paraspeechclap.fileio import atomic_write_text

TARGETS_UAR = {"pitch": 90.0, "rate": 90.0, "whisper": 90.0, "range": 75.0}
RETRIEVAL_TARGET_X_CHANCE = 5.0


def quality_table(metrics: dict) -> tuple[list[dict], bool]:
    """Rows (task, metric, value, chance, target, met) from evaluate's metrics.json; a missing target task is a row
    that is not met."""
    rows = []
    for name, task in metrics["tasks"].items():
        m = task.get("metrics", {})
        if task.get("kind") == "retrieval":
            n_captions = task.get("n_unique_captions")
            chance = 100.0 / n_captions if n_captions else None
            target = RETRIEVAL_TARGET_X_CHANCE * chance if chance else None
            value = m.get("R@1_A2T")
            met = None if target is None else value is not None and value >= target
            rows.append({"task": f"{name} retrieval (audio->text, {n_captions} captions)", "metric": "R@1",
                         "value": value, "chance": chance, "target": target, "met": met,
                         "R@10": m.get("R@10_A2T"), "MedR": m.get("MedR_A2T"), "R@1_T2A": m.get("R@1_T2A")})
        else:
            target = TARGETS_UAR.get(name)
            value = m.get("Classification_UAR")
            met = None if target is None else value is not None and value >= target
            candidates = task.get("candidates") or []
            rows.append({"task": f"{name} ({', '.join(candidates)})", "metric": "UAR", "value": value,
                         "chance": 100.0 / len(candidates) if candidates else None, "target": target, "met": met,
                         "accuracy": m.get("Classification_Accuracy"), "macro_f1": m.get("Classification_Macro_F1")})
    kinds = {task.get("kind") for task in metrics["tasks"].values()}
    missing = [(name, "UAR", target) for name, target in TARGETS_UAR.items() if name not in metrics["tasks"]]
    missing += [] if "retrieval" in kinds else [("retrieval", "R@1", None)]
    for name, metric, target in missing:
        rows.append({"task": f"{name} (missing from the report)", "metric": metric, "value": None, "chance": None,
                     "target": target, "met": False})
    return rows, all(r["met"] is not False for r in rows)


def to_markdown(rows: list[dict]) -> str:
    fmt = lambda v: "-" if v is None else f"{v:.2f}" if v < 1 else f"{v:.1f}"
    lines = ["| task | metric | value (%) | chance (%) | target (%) | met |", "|---|---|---|---|---|---|"]
    for r in rows:
        met = {True: "yes", False: "**no**", None: "(no target)"}[r["met"]]
        lines.append(f"| {r['task']} | {r['metric']} | {fmt(r['value'])} | {fmt(r['chance'])} | {fmt(r['target'])} | {met} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=os.environ.get("CORPUS", "data/synth-v1"), help="synth corpus folder")
    parser.add_argument("--model", default="mini", help="model source (default: mini)")
    parser.add_argument("--out", default="reports/mini-quality", help="report folder")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)

    corpus, out = Path(args.corpus), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "paraspeechclap", "evaluate", "--suite", str(corpus / "suites.json"),
               "--model", args.model, "--out", str(out / "report"), "--batch-size", str(args.batch_size),
               "--no-cache", "--quiet"]
    print("$", " ".join(command), flush=True)
    code = subprocess.call(command)
    if code != 0:
        print(f"error: evaluate exited with {code}", file=sys.stderr)
        return code
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    rows, all_met = quality_table(metrics)
    table = to_markdown(rows)
    print(table)
    atomic_write_text(out / "quality.md", table)
    atomic_write_text(out / "quality.json", json.dumps({"model": args.model, "corpus": str(corpus), "rows": rows,
                                                          "all_targets_met": all_met}, indent=2) + "\n")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
