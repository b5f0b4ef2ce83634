"""One report folder per evaluation run.

```
REPORT_DIR/
  report_manifest.json    the files of this report (an existing folder is replaced only if it is ours, unchanged)
  metrics.json            every number, coverage, skipped items, settings, model identity
  report.md               the paper-style main table, then per-task tables
  index.html              the same tables with the plots
  plots/                  confusion_<task>.png/.csv, per_class_<task>.png, recall_<task>.png
  tasks/<task>/           reference-compatible files (final_*_metrics.yaml, top_10_retrieved_captions.json,
                          predictions_classification.csv, confusion_matrix_classification.csv, ...)
```

The main table has the paper's columns (Situational R@1, Situational R@10, Intrinsic R@1, Intrinsic UAR,
Combined R@1) followed by median ranks and macro-F1. A group's classification number is the unweighted mean
over its tasks (Intrinsic: the five attributes; the paper does not say how it aggregated them). A cell is empty
when the suite did not run that group or one of its tasks failed.
"""
from __future__ import annotations

import html
import math
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _io
from .metrics import REFERENCE_RETRIEVAL_KEYS
from .retrieval import RETRIEVAL_EXTENSIONS

# (column title, group, kind, metric key)
PAPER_COLUMNS: Tuple[Tuple[str, str, str, str], ...] = (
    ("Situational R@1", "situational", "retrieval", "R@1_A2T"),
    ("Situational R@10", "situational", "retrieval", "R@10_A2T"),
    ("Intrinsic R@1", "intrinsic", "retrieval", "R@1_A2T"),
    ("Intrinsic UAR", "intrinsic", "classification", "Classification_UAR"),
    ("Combined R@1", "combined", "retrieval", "R@1_A2T"),
)
EXTRA_COLUMNS: Tuple[Tuple[str, str, str, str], ...] = (
    ("Situational MedR", "situational", "retrieval", "MedR_A2T"),
    ("Intrinsic MedR", "intrinsic", "retrieval", "MedR_A2T"),
    ("Combined MedR", "combined", "retrieval", "MedR_A2T"),
    ("Intrinsic Macro-F1", "intrinsic", "classification", "Classification_Macro_F1"),
    ("Combined R@10", "combined", "retrieval", "R@10_A2T"),
    ("Situational UAR", "situational", "classification", "Classification_UAR"),
    ("Situational Macro-F1", "situational", "classification", "Classification_Macro_F1"),
)
SKIPPED_SHOWN = 20


def task_slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def headline(outcome) -> Dict[str, Optional[float]]:
    """The paper-style numbers of a suite outcome (``None`` where the suite has no such group or it failed)."""
    values: Dict[str, Optional[float]] = {}
    for title, group, kind, key in PAPER_COLUMNS + EXTRA_COLUMNS:
        tasks = [t for t in outcome.tasks if t.task.group == group and t.task.kind == kind]
        if not tasks or any(t.status != "ok" for t in tasks):
            values[title] = None
        else:
            value = float(np.mean([t.metrics[key] for t in tasks]))
            values[title] = int(value) if key.startswith("MedR") and value.is_integer() else value
    return values


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


# ----------------------------------------------------------------------------------------------- JSON
def outcome_to_dict(outcome, top_table: Optional[Dict[str, Optional[float]]] = None) -> Dict[str, Any]:
    tasks: Dict[str, Any] = {}
    for t in outcome.tasks:
        entry: Dict[str, Any] = {
            "kind": t.task.kind, "group": t.task.group, "source": t.task.source.describe(), "status": t.status,
            "error": t.error, "n_total": t.n_total, "n_scored": t.n_scored, "n_skipped": len(t.skipped),
            "skipped": t.skipped, "metrics": t.metrics,
        }
        if t.retrieval is not None:
            entry["n_unique_captions"] = len(t.retrieval.unique_texts)
            entry["reference_keys"] = list(REFERENCE_RETRIEVAL_KEYS)
            entry["extension_keys"] = list(RETRIEVAL_EXTENSIONS)
        if t.task.kind == "classification":
            entry["candidates"] = t.candidates
            entry["candidates_inferred_from_gold"] = t.inferred_candidates
        if t.classification is not None:
            entry["per_class"] = t.classification.per_class
            entry["confusion"] = {"labels": t.classification.labels, "rows": "true", "columns": "predicted",
                                  "matrix": t.classification.confusion.tolist()}
        tasks[t.task.name] = entry
    return {
        "suite": outcome.suite,
        "status": "ok" if outcome.ok else "failed",
        "complete": outcome.complete,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": outcome.model,
        "settings": outcome.settings,
        "headline": top_table if top_table is not None else headline(outcome),
        "headline_notes": {
            "group_aggregation": "unweighted mean over the group's tasks (Intrinsic: pitch, texture, volume, clarity, rhythm)",
            "MedR": "lower median of 1-based ranks",
            "ties": "a tie counts against the correct item",
        },
        "tasks": tasks,
        "cache": outcome.cache,
        "elapsed_s": round(outcome.elapsed_s, 3),
    }


# ----------------------------------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(labels: Sequence[str], matrix: np.ndarray, title: str):
    plt = _pyplot()
    n = len(labels)
    figure, axes = plt.subplots(figsize=(max(4.0, 0.5 * n + 2.5), max(3.5, 0.5 * n + 2.0)))
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    image = axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of true class")
    axes.set_xticks(range(n), labels, rotation=45, ha="right")
    axes.set_yticks(range(n), labels)
    axes.set_xlabel("Predicted Label")
    axes.set_ylabel("True Label")
    axes.set_title(title)
    if n <= 25:
        for i in range(n):
            for j in range(n):
                axes.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7,
                          color="white" if share[i, j] > 0.5 else "black")
    figure.tight_layout()
    return figure


def plot_per_class(per_class: List[Dict[str, Any]], title: str):
    plt = _pyplot()
    names = [f"{row['class']} ({row['support']})" for row in per_class]
    x = np.arange(len(per_class))
    figure, axes = plt.subplots(figsize=(max(5.0, 0.45 * len(per_class) + 2.5), 3.8))
    axes.bar(x - 0.2, [row["recall"] for row in per_class], width=0.4, label="recall")
    axes.bar(x + 0.2, [row["f1"] for row in per_class], width=0.4, label="F1")
    axes.set_xticks(x, names, rotation=45, ha="right")
    axes.set_ylim(0, 100)
    axes.set_ylabel("%")
    axes.set_xlabel("class (gold items)")
    axes.set_title(title)
    axes.legend(loc="upper right")
    figure.tight_layout()
    return figure


def plot_recall_curve(ranks: np.ndarray, n_candidates: int, title: str):
    """Audio-to-text recall at every cut-off k (percent of clips whose correct caption ranks <= k)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5.5, 3.5))
    ks = np.arange(1, max(n_candidates, 1) + 1)
    recall = 100.0 * np.searchsorted(np.sort(ranks), ks, side="right") / max(len(ranks), 1)
    axes.step(ks, recall, where="post", label="model")
    axes.plot(ks, 100.0 * ks / max(n_candidates, 1), linestyle=":", color="gray", label="chance")
    for k in (1, 10):
        if k <= n_candidates:
            axes.axvline(k, color="lightgray", linewidth=0.8)
    if n_candidates > 20:
        axes.set_xscale("log")
    axes.set_ylim(0, 100)
    axes.set_xlabel(f"k (of {n_candidates} unique captions)")
    axes.set_ylabel("R@k (%)")
    axes.set_title(title)
    axes.legend(loc="lower right")
    figure.tight_layout()
    return figure


def _save_plot(path: Path, figure) -> Path:
    plt = _pyplot()
    try:
        return _io.save_figure(path, figure)
    finally:
        plt.close(figure)


# ----------------------------------------------------------------------------------------------- Markdown / HTML
def _table_md(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _table_html(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _sections(outcome, top: Dict[str, Optional[float]], model_name: str) -> List[Tuple[str, Any]]:
    """Report content as ('h2'|'h3'|'p'|'table'|'img'|'pre', payload) blocks rendered to both Markdown and HTML."""
    blocks: List[Tuple[str, Any]] = []
    if outcome.settings.get("max_items"):
        blocks.append(("p", f"Quick run: only the first {outcome.settings['max_items']} rows of each task were read; "
                            "the numbers are not comparable with full runs."))
    if any(v is not None for v in top.values()):
        blocks.append(("h2", "Main table (laid out like the paper's)"))
        blocks.append(("table", (["Model"] + [c[0] for c in PAPER_COLUMNS], [[model_name] + [top[c[0]] for c in PAPER_COLUMNS]])))
        blocks.append(("table", (["Model"] + [c[0] for c in EXTRA_COLUMNS], [[model_name] + [top[c[0]] for c in EXTRA_COLUMNS]])))
        blocks.append(("p", "R@k, UAR and macro-F1 in percent; MedR is the lower median rank. Intrinsic UAR and "
                            "macro-F1 are the unweighted mean over the intrinsic attributes (the paper does not state "
                            "its aggregation). A dash: not run, or a task of that group failed."))

    blocks.append(("h2", "Coverage"))
    rows = [[t.task.name, t.task.kind, t.task.source.describe(), t.n_scored, t.n_total, len(t.skipped),
             t.status if t.status == "ok" else f"FAILED: {t.error}"] for t in outcome.tasks]
    blocks.append(("table", (["Task", "Kind", "Source", "Scored", "Total", "Skipped", "Status"], rows)))
    n_scored = sum(t.n_scored for t in outcome.tasks)
    n_total = sum(t.n_total for t in outcome.tasks)
    blocks.append(("p", f"{n_scored} of {n_total} items scored."))

    retrieval = [t for t in outcome.tasks if t.task.kind == "retrieval" and t.status == "ok"]
    if retrieval:
        blocks.append(("h2", "Retrieval"))
        header = ["Task", "Clips", "Unique captions", "R@1", "R@5", "R@10", "MedR", "MeanR",
                  "mAP@10 A2T*", "R@1 T2A*", "R@10 T2A*", "MedR T2A*", "mAP@10 T2A*"]
        keys = ["R@1_A2T", "R@5_A2T", "R@10_A2T", "MedR_A2T", "MeanR_A2T", "mAP@10_A2T", "R@1_T2A", "R@10_T2A",
                "MedR_T2A", "mAP@10_T2A"]
        blocks.append(("table", (header, [[t.task.name, t.n_scored, len(t.retrieval.unique_texts)]
                                          + [t.metrics[k] for k in keys] for t in retrieval])))
        blocks.append(("p", "Audio-to-text over exact-unique captions, as the paper. * Extensions the reference does "
                            "not compute: mAP@10, and text-to-audio (one query per unique caption; a hit on any clip "
                            "carrying it counts)."))
        for t in retrieval:
            blocks.append(("img", (f"plots/recall_{task_slug(t.task.name)}.png", f"{t.task.name}: R@k for every k")))

    classification = [t for t in outcome.tasks if t.task.kind == "classification" and t.status == "ok"]
    if classification:
        blocks.append(("h2", "Classification"))
        header = ["Task", "Classes", "Scored", "Accuracy", "UAR", "Macro-F1"]
        blocks.append(("table", (header, [[t.task.name, len(t.candidates), t.n_scored]
                                          + [t.metrics[k] for k in ("Classification_Accuracy", "Classification_UAR",
                                                                     "Classification_Macro_F1")]
                                          for t in classification])))
        blocks.append(("p", "Zero-shot: argmax of the cosine to each candidate's prompt. UAR and macro-F1 are over the "
                            "full candidate set; a candidate with no gold items counts as 0, as in the paper."))
        for t in classification:
            slug = task_slug(t.task.name)
            blocks.append(("h3", t.task.name))
            if t.inferred_candidates:
                blocks.append(("p", "Candidates inferred from the gold labels (pass --candidates for a fixed set)."))
            blocks.append(("table", (["Class", "Support", "Predicted", "Precision", "Recall", "F1"],
                                     [[r["class"], r["support"], r["predicted"], r["precision"], r["recall"], r["f1"]]
                                      for r in t.classification.per_class])))
            blocks.append(("img", (f"plots/confusion_{slug}.png", f"{t.task.name}: confusion matrix")))
            blocks.append(("img", (f"plots/per_class_{slug}.png", f"{t.task.name}: per-class recall and F1")))

    blocks += _problem_blocks(outcome)
    blocks.append(("h2", "Settings"))
    settings = {**outcome.settings, "model identity": outcome.model.get("identity"),
                "cache": f"{outcome.cache.get('folder')} (reused {outcome.cache.get('hits')}, "
                         f"embedded {outcome.cache.get('embedded')})"
                         + (f"; NOT USED: {outcome.cache['disabled']}" if outcome.cache.get("disabled") else ""),
                "elapsed": f"{outcome.elapsed_s:.1f} s"}
    blocks.append(("table", (["Setting", "Value"], [[k, v if isinstance(v, (int, float, str)) or v is None else
                                                     ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)]
                                                    for k, v in settings.items()])))
    return blocks


def _problem_blocks(outcome) -> List[Tuple[str, Any]]:
    """The failed tasks and the skipped items (the first :data:`SKIPPED_SHOWN` of each task)."""
    blocks: List[Tuple[str, Any]] = []
    skipped = [t for t in outcome.tasks if t.skipped]
    failed = [t for t in outcome.tasks if t.status != "ok"]
    if skipped or failed:
        blocks.append(("h2", "Problems"))
    for t in failed:
        blocks.append(("p", f"Task {t.task.name} FAILED: {t.error}"))
    for t in skipped:
        shown = t.skipped[:SKIPPED_SHOWN]
        blocks.append(("h3", f"{t.task.name}: {len(t.skipped)} skipped"))
        blocks.append(("table", (["Id", "Path", "Reason"], [[s["id"], s["path"], s["reason"]] for s in shown])))
        if len(t.skipped) > len(shown):
            blocks.append(("p", f"... and {len(t.skipped) - len(shown)} more (all in metrics.json)."))
    return blocks


def render_markdown(title: str, blocks: List[Tuple[str, Any]]) -> str:
    out = [f"# {title}", ""]
    for kind, payload in blocks:
        if kind == "h2":
            out += [f"## {payload}", ""]
        elif kind == "h3":
            out += [f"### {payload}", ""]
        elif kind == "p":
            out += [payload, ""]
        elif kind == "table":
            out += [_table_md(*payload), ""]
        elif kind == "img":
            out += [f"![{payload[1]}]({payload[0]})", ""]
    return "\n".join(out)


_CSS = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
        "margin:0.5em 0 1em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:0.3em 1em 1em 0;vertical-align:top}"
        ".imgs{display:flex;flex-wrap:wrap}")


def render_html(title: str, blocks: List[Tuple[str, Any]]) -> str:
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    images: List[str] = []
    for kind, payload in blocks + [("end", None)]:
        if kind != "img" and images:
            out.append("<div class='imgs'>" + "".join(images) + "</div>")
            images = []
        if kind == "h2":
            out.append(f"<h2>{html.escape(payload)}</h2>")
        elif kind == "h3":
            out.append(f"<h3>{html.escape(payload)}</h3>")
        elif kind == "p":
            out.append(f"<p>{html.escape(payload)}</p>")
        elif kind == "table":
            out.append(_table_html(*payload))
        elif kind == "img":
            src, alt = payload
            images.append(f"<figure><img src='{html.escape(src)}' alt='{html.escape(alt)}'>"
                          f"<figcaption>{html.escape(alt)}</figcaption></figure>")
    out.append("<p><a href='metrics.json'>metrics.json</a> · <a href='report.md'>report.md</a></p></body></html>")
    return "\n".join(out)


def summary_text(outcome, model_name: str = "model") -> str:
    """A short plain-text summary for the terminal: the main table (if any) and one line per task."""
    top = headline(outcome)
    lines: List[str] = []
    if any(v is not None for v in top.values()):
        columns = [c[0] for c in PAPER_COLUMNS + EXTRA_COLUMNS if top[c[0]] is not None]
        lines += [_table_md(["Model"] + columns, [[model_name] + [top[c] for c in columns]]), ""]
    for t in outcome.tasks:
        coverage = f"{t.n_scored}/{t.n_total}"
        if t.status != "ok":
            lines.append(f"{t.task.name:<24} {coverage:>11}  FAILED: {t.error}")
        elif t.retrieval is not None:
            m = t.metrics
            lines.append(f"{t.task.name:<24} {coverage:>11}  R@1 {m['R@1_A2T']:6.2f}  R@5 {m['R@5_A2T']:6.2f}  "
                         f"R@10 {m['R@10_A2T']:6.2f}  MedR {m['MedR_A2T']}  MeanR {m['MeanR_A2T']:.2f}")
        else:
            m = t.metrics
            lines.append(f"{t.task.name:<24} {coverage:>11}  Acc {m['Classification_Accuracy']:6.2f}  "
                         f"UAR {m['Classification_UAR']:6.2f}  Macro-F1 {m['Classification_Macro_F1']:6.2f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- writing
REPORT_MANIFEST = "report_manifest.json"


class ReportFolderError(FileExistsError):
    """The output folder holds files this project did not write there; nothing is replaced."""


def _entries(folder: Path) -> Tuple[Dict[str, Optional[int]], List[str]]:
    """Every file (relative POSIX path -> size; None for a link or something not a plain file) and every
    sub-folder under ``folder``, without following links."""
    files: Dict[str, Optional[int]] = {}
    folders: List[str] = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        base = Path(root).relative_to(folder)
        for name in dirs:
            path = Path(root) / name
            if path.is_symlink():
                files[(base / name).as_posix()] = None
            else:
                folders.append((base / name).as_posix())
        for name in names:
            path = Path(root) / name
            regular = path.is_file() and not path.is_symlink()
            files[(base / name).as_posix()] = path.stat().st_size if regular else None
    return files, sorted(folders)


def _read_manifest(folder: Path) -> Optional[Dict[str, Any]]:
    """The folder's ``report_manifest.json`` (contract ``report-manifest``); None when absent, a link, or not one of
    ours (then the folder is not ours to replace)."""
    from ..schemas import SchemaError, read

    path = folder / REPORT_MANIFEST
    if not path.is_file() or path.is_symlink():
        return None
    try:
        return read(path, "report-manifest")
    except SchemaError:
        return None


def read_metrics(report: os.PathLike) -> Dict[str, Any]:
    """The ``metrics.json`` of a report folder (or the file itself), checked against contract ``evaluation-metrics``
    and upgraded to its current version; :class:`paraspeechclap.schemas.SchemaError` names what is wrong."""
    from ..schemas import read

    path = Path(report)
    return read(path / "metrics.json" if path.is_dir() else path, "evaluation-metrics")


def foreign_entries(out_dir: os.PathLike) -> List[str]:
    """What in ``out_dir`` was not written there by an earlier report of ours (empty: safe to replace).

    Ours means listed in that report's ``report_manifest.json`` with the size recorded there; anything else (a
    file the user added or changed, a link, a folder the manifest does not list) is foreign.
    """
    out_dir = Path(out_dir)
    files, folders = _entries(out_dir)
    manifest = _read_manifest(out_dir)
    if manifest is None:
        return sorted(files) + folders
    ours = manifest["files"]
    our_folders = set(manifest.get("folders") or [])
    foreign = [name for name, size in files.items()
               if name != REPORT_MANIFEST and (size is None or name not in ours or ours[name] != size)]
    return sorted(foreign) + [name for name in folders if name not in our_folders]


def write_report_manifest(folder: Path, suite: str) -> Path:
    """Write ``report_manifest.json`` listing every file and folder of the report being built in ``folder``."""
    from .. import __version__, schemas

    files, folders = _entries(folder)
    return schemas.write(folder / REPORT_MANIFEST, {
        "written_by": f"paraspeechclap {__version__}", "suite": suite,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": files, "folders": folders}, "report-manifest")


def check_report_folder(out_dir: os.PathLike) -> bool:
    """Whether writing a report to ``out_dir`` replaces an earlier one; raises :class:`ReportFolderError` if the
    folder exists and is neither empty nor an earlier report of ours with nothing added (its files would be lost)."""
    out_dir = Path(out_dir)
    if not os.path.lexists(out_dir):
        return False
    if not out_dir.is_dir():
        raise ReportFolderError(f"{out_dir} exists and is not a folder; pass another --out")
    foreign = foreign_entries(out_dir)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        what = ("is not a report folder of ours" if _read_manifest(out_dir) is None
                else "holds files that are not part of the earlier report")
        raise ReportFolderError(f"{out_dir} {what} ({shown}); refusing to replace it. Move those files away, "
                                "or pass another --out")
    return True


def write_report(outcome, out_dir: Path, model_name: str = "model", top_k: int = 10,
                 save_similarity: bool = False, plots: bool = True) -> Dict[str, Path]:
    """Write the whole report folder; returns the main files' paths.

    The report is written into a fresh temporary folder beside ``out_dir`` and renamed into place at the end
    (:func:`paraspeechclap.fileio.atomic_dir`), so the folder holds exactly this run's files: nothing is left over
    from an earlier report (for example of a task that failed this time), and an interrupted run leaves the old
    report intact. An existing ``out_dir`` is replaced only when it is empty or an earlier report of ours with
    nothing added (see :func:`check_report_folder`); otherwise :class:`ReportFolderError` is raised and nothing is
    touched. ``report_manifest.json`` lists the files written.
    """
    from ..fileio import atomic_dir

    out_dir = Path(out_dir)
    if out_dir.is_symlink():  # replace the folder the link points to; the link stays valid
        out_dir = out_dir.resolve()
    replace = check_report_folder(out_dir)
    with atomic_dir(out_dir, replace=replace) as tmp:
        written = _write_report_files(outcome, Path(tmp), model_name, top_k, save_similarity, plots)
        write_report_manifest(Path(tmp), outcome.suite)
        check_report_folder(out_dir)  # again, just before the swap: a file added meanwhile is not deleted
    return {name: out_dir / path.relative_to(tmp) for name, path in written.items()}


def _write_report_files(outcome, out_dir: Path, model_name: str, top_k: int, save_similarity: bool,
                        plots: bool) -> Dict[str, Path]:
    from .. import schemas
    from . import classification as classification_io
    from . import retrieval as retrieval_io

    for t in outcome.tasks:
        slug = task_slug(t.task.name)
        folder = out_dir / "tasks" / slug
        if t.retrieval is not None:
            retrieval_io.write_outputs(t.retrieval, folder, k=top_k, save_similarity=save_similarity)
            if plots:
                _save_plot(out_dir / "plots" / f"recall_{slug}.png",
                           plot_recall_curve(t.retrieval.ranks, len(t.retrieval.unique_texts), t.task.name))
        if t.classification is not None:
            classification_io.write_outputs(t.classification, folder)
            _io.write_dataframe_csv(out_dir / "plots" / f"confusion_{slug}.csv",
                                    classification_io.confusion_frame(t.classification))
            if plots:
                _save_plot(out_dir / "plots" / f"confusion_{slug}.png",
                           plot_confusion(t.classification.labels, t.classification.confusion, t.task.name))
                _save_plot(out_dir / "plots" / f"per_class_{slug}.png",
                           plot_per_class(t.classification.per_class, t.task.name))

    top = headline(outcome)
    title = f"ParaSpeechCLAP evaluation: suite {outcome.suite}, model {model_name}"
    blocks = _sections(outcome, top, model_name)
    if not plots:
        blocks = [b for b in blocks if b[0] != "img"]
    return {
        "metrics": schemas.write(out_dir / "metrics.json", outcome_to_dict(outcome, top), "evaluation-metrics"),
        "markdown": _io.write_text(out_dir / "report.md", render_markdown(title, blocks)),
        "html": _io.write_text(out_dir / "index.html", render_html(title, blocks)),
    }
