"""The report folder of a benchmark run, committed as a whole (:func:`paraspeechclap.fileio.atomic_dir`)::

    REPORT/
      report.json          every number, the signature and its fields, definitions, problems, every clip's scores
      systems.csv          per view and system: each score's mean, interval and rank, and the signature (for papers)
      systems.json         the same as JSON
      attributes.csv       per view, system and attribute: accuracy and UAR with intervals
      pairs.csv            per view and score, every pair of systems: difference, interval, p-value, win rate
      clips.csv            one row per (system, prompt): path, status, flags, the three scores, per-attribute classes
      plots/*.png          intervals per score and view, per-attribute accuracy, distributions, win rates, robustness
      index.html           all of it with audio players and a per-prompt drill-down (static; no script)
      report_manifest.json the files of this report (an existing folder is replaced only if it is an unchanged
                           earlier report: the evaluation room's rule)

Audio is **linked, not copied** by default: the page's players point at the clips where they are, by a path
relative to the report folder, so a report over gigabytes of audio costs kilobytes (move the report with the audio, or
use ``audio="copy"``, which copies every clip into ``audio/<n>-<system>/<n>-<prompt>.<ext>`` and says how much it copied).
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from .summary import SCORES, VIEWS

__all__ = ["write_report", "summary_text", "AUDIO_MODES"]

AUDIO_MODES = ("link", "copy", "none")


def _csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    from ..fileio import atomic_write

    def write(handle):
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(["" if v is None else v for v in row] for row in rows)

    atomic_write(path, write)


def system_columns() -> list[str]:
    """The columns of systems.csv (and of ``tts-eval --format csv``): one row per view and system."""
    return ["view", "system", "prompts"] + [f"{s}{k}" for s in SCORES for k in ("", "_lo", "_hi", "_rank")] + ["signature"]


def _system_tables(doc: dict) -> tuple[list[list], dict]:
    rows, paper = [], {"signature": doc["signature"], "views": {}}
    for view in VIEWS:
        v = doc["views"][view]
        paper["views"][view] = {}
        for system in doc["systems"]:
            row, entry = [view, system, v["n_prompts"]], {}
            for score in SCORES:
                block = v["scores"][score]
                c, rank = block["systems"][system], block["ranking"][system]["rank"]
                row += [c["mean"], c["lo"], c["hi"], rank]
                entry[score] = {"mean": c["mean"], "lo": c["lo"], "hi": c["hi"], "rank": rank}
            entry["attributes"] = {a: {"accuracy": v["attributes"][a][system]["accuracy"],
                                       "uar": v["attributes"][a][system]["uar"]} for a in v["attributes"]}
            paper["views"][view][system] = entry
            rows.append(row + [doc["signature"]])
    return rows, paper


def _write_tables(doc: dict, folder: Path, paths: dict[tuple[str, str], str | None]) -> None:
    from .. import fileio

    fileio.atomic_write_text(folder / "report.json", json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False)
                             + "\n")
    rows, paper = _system_tables(doc)
    _csv(folder / "systems.csv", system_columns(), rows)
    fileio.atomic_write_json(folder / "systems.json", paper)
    attr_rows, pair_rows = [], []
    for view in VIEWS:
        v = doc["views"][view]
        for attr, per in v["attributes"].items():
            for system, e in per.items():
                attr_rows.append([view, system, attr, e["n"], e["accuracy"]["mean"], e["accuracy"]["lo"],
                                  e["accuracy"]["hi"], e["uar"]["mean"], e["uar"]["lo"], e["uar"]["hi"]])
        for score in SCORES:
            for p in v["scores"][score]["pairs"]:
                pair_rows.append([view, score, p["a"], p["b"], p["n"], p["diff"]["mean"], p["diff"]["lo"],
                                  p["diff"]["hi"], p["p_value"], p["win_rate"], p["significant"]])
    _csv(folder / "attributes.csv", ["view", "system", "attribute", "prompts", "accuracy", "accuracy_lo",
                                     "accuracy_hi", "uar", "uar_lo", "uar_hi"], attr_rows)
    _csv(folder / "pairs.csv", ["view", "score", "a", "b", "prompts", "diff", "diff_lo", "diff_hi", "p_value",
                                "win_rate_a", "significant"], pair_rows)
    attrs = sorted({a for rec in doc["clips"] for a in rec["attributes"]})
    clip_rows = [[r["system"], r["prompt"], r["path"], paths.get((r["system"], r["prompt"])), r["status"],
                  ";".join(r["flags"]), r["cosine"], r["contrastive"], r["contrastive_win"], r["attribute"]]
                 + [x for a in attrs for x in ((r["attributes"][a]["intended"], r["attributes"][a]["predicted"])
                                                if a in r["attributes"] else (None, None))] for r in doc["clips"]]
    _csv(folder / "clips.csv", ["system", "prompt", "path", "report_audio", "status", "flags", "cosine",
                                "contrastive", "contrastive_win", "attribute"]
         + [f"{a}_{k}" for a in attrs for k in ("intended", "predicted")], clip_rows)


def _save(path: Path, figure) -> None:
    from ..evaluate._io import save_figure
    from .plots import _pyplot

    try:
        save_figure(path, figure)
    finally:
        _pyplot().close(figure)


def _write_plots(evaluation: Any, folder: Path) -> None:
    from . import plots

    doc = evaluation.doc
    for view in VIEWS:
        _save(folder / "plots" / f"scores_{view}.png", plots.plot_scores(doc["views"][view], f"view {view}"))
        _save(folder / "plots" / f"attributes_{view}.png",
              plots.plot_attributes(doc["views"][view], f"per-attribute accuracy, view {view}"))
    s = evaluation.scores
    _save(folder / "plots" / "contrastive_distribution.png",
          plots.plot_distributions({n: s.contrastive[k] for k, n in enumerate(s.systems)}, "contrastive"))
    _save(folder / "plots" / "wins_contrastive.png",
          plots.plot_wins(doc["views"]["all"]["scores"]["contrastive"], "contrastive"))
    if doc.get("robustness"):
        _save(folder / "plots" / "robustness.png", plots.plot_robustness(doc["robustness"]))


def _audio_paths(doc: dict, out: Path, tmp: Path, audio: str) -> dict[tuple[str, str], str | None]:
    """Where each clip's player points, relative to the report folder (copying the clips for ``copy``)."""
    paths: dict[tuple[str, str], str | None] = {}
    copied, total = 0, 0
    systems = {name: k for k, name in enumerate(doc["systems"])}
    prompts = {item["id"]: k for k, item in enumerate(doc["prompts"]["items"])}
    for rec in doc["clips"]:
        path = rec["path"]
        if audio == "none" or not path or rec["status"] == "missing":
            paths[(rec["system"], rec["prompt"])] = None
        elif audio == "link":
            paths[(rec["system"], rec["prompt"])] = Path(os.path.relpath(os.path.abspath(path), out)).as_posix()
        else:
            # numbered and slugged: ids and names from a file never make a path outside the report
            rel = (f"audio/{systems[rec['system']]:02d}-{_slug(rec['system'])}/"
                   f"{prompts[rec['prompt']]:06d}-{_slug(rec['prompt'])}.{_slug(Path(path).suffix[1:] or 'audio')}")
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, tmp / rel)
            copied, total = copied + 1, total + os.path.getsize(path)
            paths[(rec["system"], rec["prompt"])] = rel
    if copied:
        print(f"copied {copied} clips ({total / 1e6:.1f} MB) into {out / 'audio'}", file=sys.stderr)
    return paths


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text).lstrip(".")[:80] or "_"


def write_report(evaluation: Any, out: str | os.PathLike, audio: str = "link", plots: bool = True) -> Path:
    """Write the report folder ``out`` (see the module docstring). An existing ``out`` is replaced only when it is an
    earlier report with nothing added (:func:`paraspeechclap.evaluate.report.check_report_folder`); otherwise
    :class:`~paraspeechclap.evaluate.report.ReportFolderError` and nothing is touched."""
    from ..evaluate.report import check_report_folder, write_report_manifest
    from ..fileio import atomic_dir, atomic_write_text
    from .html import render_html

    if audio not in AUDIO_MODES:
        raise ValueError(f"audio must be one of {AUDIO_MODES}, got {audio!r}")
    out = Path(out)
    if out.is_symlink():
        out = out.resolve()
    out = Path(os.path.abspath(out))
    replace = check_report_folder(out)
    with atomic_dir(out, replace=replace) as tmp:
        tmp = Path(tmp)
        paths = _audio_paths(evaluation.doc, out, tmp, audio)
        _write_tables(evaluation.doc, tmp, paths)
        if plots:
            _write_plots(evaluation, tmp)
        atomic_write_text(tmp / "index.html", render_html(evaluation.doc, lambda p: None, plots=plots)
                          if audio == "none" else render_html(evaluation.doc, _url_of(evaluation.doc, paths), plots))
        write_report_manifest(tmp, "tts-eval")
        check_report_folder(out)  # again just before the swap: a file added meanwhile is not deleted
    return out


def _url_of(doc: dict, paths: dict) -> Any:
    by_path = {rec["path"]: paths.get((rec["system"], rec["prompt"])) for rec in doc["clips"] if rec["path"]}
    return lambda path: by_path.get(path)


def summary_text(evaluation: Any, view: str = "all") -> str:
    """The terminal summary: per score, each system's mean with its interval and rank, under the signature."""
    doc = evaluation.doc
    v = doc["views"][view]
    buf = io.StringIO()
    print(f"view {view}: {v['n_prompts']} prompts; signature {doc['signature']}", file=buf)
    for score in SCORES:
        block = v["scores"][score]
        print(f"\n{score}|{doc['signature']}", file=buf)
        for system, r in block["ranking"].items():
            c = block["systems"][system]
            ci = "-" if c["mean"] is None else f"{c['mean']:.4f} [{c['lo']:.4f}, {c['hi']:.4f}]"
            tied = f"  tied with {', '.join(r['tied_with'])}" if r["tied_with"] else ""
            print(f"  #{r['rank'] or '-'} {system:<16} {ci}{tied}", file=buf)
    for attr, per in v["attributes"].items():
        cells = ", ".join(f"{s} {100 * e['accuracy']['mean']:.1f}%" for s, e in per.items()
                          if e["accuracy"]["mean"] is not None)
        print(f"attribute {attr}: {cells}", file=buf)
    n_err = sum(p["severity"] == "error" for p in doc["problems"])
    print(f"\n{len(doc['problems'])} problem(s), {n_err} error(s); flagged clips: "
          + ", ".join(f"{n} {s['flagged']}" for n, s in doc["systems"].items()), file=buf)
    return buf.getvalue().rstrip("\n")
