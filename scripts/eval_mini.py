#!/usr/bin/env python
"""Quality table of a model on the synthetic corpus' test split (held-out voices and caption wording).

    .venv/bin/python scripts/eval_mini.py [--corpus data/synth-v1] [--model mini] [--out reports/mini-quality]

Turns the corpus' ``suites.json`` (written by ``paraspeechclap synth``) into an evaluation suite (zero-shot
classification per attribute + caption retrieval over the full compositional test captions), runs
``paraspeechclap evaluate`` on it (full report in ``--out``), and prints and writes (``quality.md``,
``quality.json``) the table against the `mini` targets: UAR >= 90 % for pitch, rate and whisper,
>= 75 % for pitch range, retrieval R@1 >= 5x chance. Exit code 0 when every target is met, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TARGETS_UAR = {"pitch": 90.0, "rate": 90.0, "whisper": 90.0, "range": 75.0}
RETRIEVAL_TARGET_X_CHANCE = 5.0


def build_suite(corpus: Path) -> dict:
    """The evaluate-suite JSON for a synth corpus (absolute paths)."""
    spec_path = corpus / "suites.json"
    try:
        spec = json.loads(spec_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SystemExit(f"error: cannot read {spec_path}: {err}")
    audio_root = str((corpus / spec.get("audio_root", "audio")).resolve())
    classification = {
        name: {"manifest": str((corpus / task["manifest"]).resolve()), "candidates": task["candidates"],
               "audio_root": audio_root}
        for name, task in spec.get("suites", {}).items()
    }
    retrieval = {"compositional": {"manifest": str((corpus / "test.jsonl").resolve()), "audio_root": audio_root}}
    return {"name": f"{corpus.name}-test", "retrieval": retrieval, "classification": classification}


def quality_table(metrics: dict) -> tuple[list[dict], bool]:
    """Rows (task, metric, value, chance, target, met) from evaluate's metrics.json."""
    rows, all_met = [], True
    for name, task in metrics["tasks"].items():
        m = task.get("metrics", {})
        if task.get("kind") == "retrieval":
            n_captions = task.get("n_unique_captions")
            chance = 100.0 / n_captions if n_captions else None
            target = RETRIEVAL_TARGET_X_CHANCE * chance if chance else None
            value = m.get("R@1_A2T")
            met = None if target is None or value is None else value >= target
            rows.append({"task": f"{name} retrieval (audio->text, {n_captions} captions)", "metric": "R@1",
                         "value": value, "chance": chance, "target": target, "met": met,
                         "R@10": m.get("R@10_A2T"), "MedR": m.get("MedR_A2T"), "R@1_T2A": m.get("R@1_T2A")})
        else:
            target = TARGETS_UAR.get(name)
            value = m.get("Classification_UAR")
            met = None if target is None or value is None else value >= target
            candidates = task.get("candidates") or []
            rows.append({"task": f"{name} ({', '.join(candidates)})", "metric": "UAR", "value": value,
                         "chance": 100.0 / len(candidates) if candidates else None, "target": target, "met": met,
                         "accuracy": m.get("Classification_Accuracy"), "macro_f1": m.get("Classification_Macro_F1")})
        all_met &= rows[-1]["met"] is not False
    return rows, all_met


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
    suite_path = out / "suite.json"
    with tempfile.NamedTemporaryFile("w", dir=out, suffix=".tmp", delete=False) as handle:
        json.dump(build_suite(corpus), handle, indent=2)
    os.replace(handle.name, suite_path)
    command = [sys.executable, "-m", "paraspeechclap", "evaluate", "--suite", str(suite_path), "--model", args.model,
               "--out", str(out / "report"), "--batch-size", str(args.batch_size), "--no-cache", "--quiet"]
    print("$", " ".join(command), flush=True)
    code = subprocess.call(command)
    if code != 0:
        print(f"error: evaluate exited with {code}", file=sys.stderr)
        return code
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    rows, all_met = quality_table(metrics)
    table = to_markdown(rows)
    print(table)
    (out / "quality.md").write_text(table)
    (out / "quality.json").write_text(json.dumps({"model": args.model, "corpus": str(corpus), "rows": rows,
                                                  "all_targets_met": all_met}, indent=2) + "\n")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
