"""Writing a rerank's results: chosen audio, selection.json / selection.csv, layout extras.

Every file is written atomically (a temporary file in the same folder, then ``os.replace``).
A previous run's outputs are never mixed with a new one's: :func:`check_output_dir` refuses a
folder holding them unless ``overwrite`` is set, and :func:`write_outputs` then removes the files
of ours that this run does not rewrite (stale ``audios/*`` and summary files).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .engine import PromptResult
from .inputs import COMMON_FILES, RerankInput

__all__ = [
    "OutputExistsError",
    "check_output_dir",
    "write_outputs",
    "selection_records",
    "SELECTION_JSON",
    "SELECTION_CSV",
    "REFERENCE_SUMMARY",
]

SELECTION_JSON = "selection.json"
SELECTION_CSV = "selection.csv"
REFERENCE_SUMMARY = "selection_summary.json"  # the reference script's summary, for drop-in use
_OWNED_FILES = (
    SELECTION_JSON,
    SELECTION_CSV,
    REFERENCE_SUMMARY,
    "wer_per_example.txt",
    "output_transcriptions.txt",
    *COMMON_FILES,
)


class OutputExistsError(FileExistsError):
    """The output folder holds a previous run's results and overwriting was not asked for."""


def _previous_outputs(out: Path) -> list[Path]:
    found = [out / name for name in _OWNED_FILES if (out / name).exists() or (out / name).is_symlink()]
    audios = out / "audios"
    if audios.is_dir():
        found += sorted(p for p in audios.iterdir() if p.is_file() or p.is_symlink())
    return found


def check_output_dir(out: str | Path, overwrite: bool = False) -> None:
    """Raise :class:`OutputExistsError` if ``out`` holds earlier results and ``overwrite`` is off."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder")
    if not overwrite and out.is_dir():
        previous = _previous_outputs(out)
        if previous:
            raise OutputExistsError(
                f"{out}: holds results of an earlier run ({len(previous)} file(s), e.g. "
                f"{previous[0].relative_to(out)}); pass --overwrite to replace them"
            )


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_write_text(path: Path, text: str) -> None:
    _atomic_write_bytes(path, text.encode("utf-8"))


def _atomic_copy(src: Path, dest: Path, link: bool) -> None:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if link:
            os.unlink(tmp)
            os.symlink(os.path.abspath(src), tmp)
        else:
            shutil.copy2(src, tmp)
        os.replace(tmp, dest)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def _num(value: Any) -> float | None:
    """JSON-safe float (NaN/inf become None)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, Path):
        return str(value)
    return value


def selection_records(data: RerankInput, results: Sequence[PromptResult], out: Path | None) -> list[dict]:
    """One JSON-ready record per prompt: choice, margin, flags, and every candidate's numbers."""
    layout = data.kind == "layout"
    records = []
    for res in results:
        prompt, sel = res.prompt, res.selection
        cands = []
        for cand, outcome in zip(prompt.candidates, sel.candidates, strict=True):
            entry = {
                "candidate": cand.index,
                **({"iteration": cand.label} if layout else {}),
                "path": str(cand.path),
                "score": _num(outcome.score),
                "combined": _num(outcome.combined),
                "rank": outcome.rank,
                "eligible": outcome.eligible,
                "reasons": outcome.reasons,
                **({"error": res.errors[outcome.position]} if outcome.position in res.errors else {}),
                **{k: _jsonable(v) for k, v in cand.columns.items()},
            }
            cands.append(entry)
        chosen = None
        if sel.chosen is not None:
            winner = prompt.candidates[sel.chosen]
            outcome = sel.candidates[sel.chosen]
            name = f"{prompt.output_stem}{winner.path.suffix or '.wav'}"
            chosen = {
                "candidate": winner.index,
                **({"iteration": winner.label} if layout else {}),
                "path": str(winner.path),
                "output": str((out / "audios" / name) if out else Path("audios") / name),
                "score": _num(outcome.score),
                "combined": _num(outcome.combined),
            }
        records.append(
            {
                "index": prompt.index,
                "id": prompt.id,
                "caption": prompt.caption,
                "status": "failed" if chosen is None else "chosen",
                "chosen": chosen,
                "margin": _num(sel.margin),
                "flags": sel.flags,
                "candidates": cands,
            }
        )
    return records


def _csv_text(records: Sequence[dict], layout: bool) -> str:
    extra: list[str] = []
    for rec in records:
        for cand in rec["candidates"]:
            for key in cand:
                if key not in extra and key not in _CSV_BASE:
                    extra.append(key)
    header = ["prompt_index", "prompt_id", "caption", "status", "margin", "flags", *_CSV_BASE, *extra]
    if not layout:
        header.remove("iteration")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for rec in records:
        common = {
            "prompt_index": rec["index"],
            "prompt_id": rec["id"],
            "caption": rec["caption"],
            "status": rec["status"],
            "margin": rec["margin"],
            "flags": ";".join(rec["flags"]),
        }
        if not rec["candidates"]:
            writer.writerow(common)
        chosen = rec["chosen"]["candidate"] if rec["chosen"] else None
        for cand in rec["candidates"]:
            row = {**common, **cand, "reasons": ";".join(cand["reasons"])}
            row["chosen"] = int(cand["candidate"] == chosen)
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


_CSV_BASE = ["candidate", "iteration", "path", "score", "combined", "rank", "chosen", "eligible", "reasons", "error"]


def _reference_summary(records: Sequence[dict]) -> list[dict]:
    """The reference script's ``selection_summary.json`` list, for chosen prompts."""
    return [
        {
            "prompt_idx": rec["index"],
            "text_prompt": rec["caption"],
            "best_iteration_idx": rec["chosen"]["iteration"],
            "best_score": rec["chosen"]["score"],
            "all_scores": {str(c["iteration"]): c["score"] for c in rec["candidates"]},
        }
        for rec in records
        if rec["chosen"] is not None
    ]


def write_outputs(
    out: str | Path,
    data: RerankInput,
    results: Sequence[PromptResult],
    link: bool = False,
    meta: dict | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Write the chosen audio and the summaries into ``out``; return the selection.json document.

    Call :func:`check_output_dir` first: this function replaces whatever is there.
    """
    out = Path(out)
    audios = out / "audios"
    audios.mkdir(parents=True, exist_ok=True)
    records = selection_records(data, results, out)
    written: set[Path] = set()
    for res, rec in zip(results, records, strict=True):
        if rec["chosen"] is not None:
            dest = Path(rec["chosen"]["output"])
            _atomic_copy(res.prompt.candidates[res.selection.chosen].path, dest, link)
            written.add(dest)
        if progress is not None:
            progress(1)
    for old in list(audios.iterdir()):
        if (old.is_file() or old.is_symlink()) and old not in written:
            old.unlink()

    layout = data.kind == "layout"
    doc = {**(meta or {}), "counts": count_results(data, results), "issues": data.issues, "prompts": records}
    _atomic_write_text(out / SELECTION_JSON, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    _atomic_write_text(out / SELECTION_CSV, _csv_text(records, layout))
    owned = {SELECTION_JSON, SELECTION_CSV}
    if layout:
        _atomic_write_text(out / REFERENCE_SUMMARY, json.dumps(_reference_summary(records), indent=2) + "\n")
        owned.add(REFERENCE_SUMMARY)
        by_index = {res.prompt.index: res for res in results}
        for column, filename in data.per_prompt_files.items():
            lines = []
            for idx in range(data.num_lines):
                res = by_index.get(idx)
                value = None
                if res is not None and res.selection.chosen is not None:
                    value = res.prompt.candidates[res.selection.chosen].columns.get(column)
                lines.append("" if value is None else str(value))
            _atomic_write_text(out / filename, "".join(line + "\n" for line in lines))
            owned.add(filename)
        for src in data.common_files:
            _atomic_copy(src, out / src.name, link=False)
            owned.add(src.name)
    for name in _OWNED_FILES:
        stale = out / name
        if name not in owned and (stale.is_file() or stale.is_symlink()):
            stale.unlink()
    return doc


def count_results(data: RerankInput, results: Sequence[PromptResult]) -> dict[str, int]:
    """Counts for the report: prompts, chosen, failed, candidates, problems by kind."""
    flags = [f for res in results for f in res.selection.flags]
    return {
        "prompt_lines": data.num_lines,
        "prompts": len(results),
        "blank_lines": data.num_lines - len(results) if data.kind == "layout" else 0,
        "invalid_rows": data.num_lines - len(results) if data.kind == "manifest" else 0,
        "chosen": sum(not res.failed for res in results),
        "failed": sum(res.failed for res in results),
        "candidates": sum(len(res.prompt.candidates) for res in results),
        "audio_errors": sum(len(res.errors) for res in results),
        "missing_files": sum("file missing" in issue for issue in data.issues),
        "fallback": flags.count("fallback"),
        "ties": flags.count("tie"),
        "issues": len(data.issues),
    }
