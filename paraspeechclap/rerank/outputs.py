"""Writing a rerank's results: chosen audio, selection.json / selection.csv, layout extras.

Every file goes through :mod:`paraspeechclap.fileio`. The rules that keep a user's files safe:

- **Inputs are never inside the output.** :func:`check_output_dir` refuses an output folder that contains any input
  (the manifest, the layout folders, any candidate file, any copied common file), comparing resolved paths and
  following links, so that nothing this command writes can land on something it reads.
- **Only our own files are replaced or removed.** ``selection.json`` records, under ``outputs``, every file the run
  wrote with its digest (:func:`paraspeechclap.fileio.file_digest`). A file at a name this run wants to write that
  is not listed there (or no longer matches its digest) is someone else's: the run is refused, with or without
  ``--overwrite``. With ``overwrite`` the files of the previous record that this run does not rewrite are removed;
  nothing else in the folder is touched.
- **Outputs are committed together.** A new output folder is built beside its final name and renamed into place
  (:func:`paraspeechclap.fileio.atomic_dir`). Into an existing folder, everything is first written to a staging
  folder inside it, then moved into place, ``selection.json`` (the record) last.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..fileio import (atomic_dir, atomic_open, atomic_path, atomic_write_text, file_digest, read_record, refuse_foreign,
                      remove_owned, temporary_name)
from .engine import PromptResult
from .inputs import RerankInput

__all__ = [
    "OutputExistsError",
    "check_output_dir",
    "input_paths",
    "inputs_inside",
    "previous_record",
    "write_outputs",
    "selection_records",
    "SELECTION_JSON",
    "SELECTION_CSV",
    "REFERENCE_SUMMARY",
    "WRITER",
]

SELECTION_JSON = "selection.json"
SELECTION_CSV = "selection.csv"
REFERENCE_SUMMARY = "selection_summary.json"  # the reference script's summary, for drop-in use
WRITER = "paraspeechclap.rerank"  # selection.json's "written_by": marks a record this module wrote
AUDIOS = "audios"


class OutputExistsError(FileExistsError):
    """The output folder cannot take this run's outputs (inputs inside it, foreign files, an earlier run)."""


def previous_record(out: str | Path) -> dict[str, str | None] | None:
    """{relative path: digest} of the files an earlier rerank wrote into ``out``, from its ``selection.json``.

    None when there is no ``selection.json`` written by this module (a foreign or unreadable one included).
    """
    return read_record(Path(out) / SELECTION_JSON, WRITER)


def input_paths(data: RerankInput) -> list[Path]:
    """Everything a run reads: the manifest or the layout folders, candidate files, copied common files."""
    paths = [data.source]
    if data.kind == "layout":
        paths += [data.source / f"iter_{k}" for k in data.iterations]
    paths += [c.path for p in data.prompts for c in p.candidates]
    paths += list(data.common_files)
    return paths


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def inputs_inside(out: str | Path, data: RerankInput) -> list[Path]:
    """The inputs of ``data`` that lie in ``out`` (or in its ``audios`` folder), as the link or as its target."""
    out = Path(out)
    roots = [out.resolve()]
    if (out / AUDIOS).exists():
        roots.append((out / AUDIOS).resolve())
    found = []
    for path in input_paths(data):
        absolute = Path(os.path.abspath(path))
        forms = {path.resolve(), absolute.parent.resolve() / absolute.name}  # the target, and the link itself
        if any(_inside(form, root) for form in forms for root in roots):
            found.append(path)
    return found


def _fixed_names(data: RerankInput, per_prompt_files: Iterable[str] = ()) -> list[str]:
    names = [SELECTION_CSV]
    if data.kind == "layout":
        names += [REFERENCE_SUMMARY, *per_prompt_files, *(src.name for src in data.common_files)]
    return names


def _possible_names(data: RerankInput) -> list[str]:
    """Every file a run on ``data`` could write (a chosen file for every candidate's suffix)."""
    audio = {f"{AUDIOS}/{p.output_stem}{c.path.suffix or '.wav'}" for p in data.prompts for c in p.candidates}
    return [*sorted(audio), *_fixed_names(data, data.per_prompt_files.values()), SELECTION_JSON]


def _check(out: Path, planned: Sequence[str], overwrite: bool, data: RerankInput | None) -> dict | None:
    """Raise :class:`OutputExistsError` unless ``planned`` may be written into ``out``; return the old record."""
    if os.path.lexists(out) and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder")
    if data is not None:
        inside = inputs_inside(out, data)
        if inside:
            raise OutputExistsError(
                f"{out}: holds input(s) of this run ({len(inside)}, e.g. {inside[0]}); writing there could "
                "replace what is being read. Choose an output folder that contains no input"
            )
    if not out.is_dir():
        return None
    audios = out / AUDIOS
    if audios.is_symlink() or (audios.exists() and not audios.is_dir()):
        raise OutputExistsError(f"{audios}: is a link or not a folder; refusing to write through it")
    record = previous_record(out)
    refuse_foreign(out, planned, record, writer="this run", owner="an earlier rerank",
                   record_name=f"its {SELECTION_JSON}", error=OutputExistsError,
                   remedy="move them away or choose another output folder (--overwrite does not replace them)")
    if record is not None and not overwrite:
        ours = [rel for rel in record if os.path.lexists(out / rel)]
        raise OutputExistsError(
            f"{out}: holds the results of an earlier rerank ({len(ours)} file(s) listed in its {SELECTION_JSON}); "
            "pass --overwrite to replace them (only those files are replaced or removed)"
        )
    return record


def check_output_dir(out: str | Path, overwrite: bool = False, data: RerankInput | None = None) -> None:
    """Raise :class:`OutputExistsError` if a run on ``data`` may not write into ``out``.

    Refused: ``out`` is not a folder; it contains an input of ``data``; a file the run could write exists and is
    not listed in an earlier rerank's ``selection.json``; an earlier rerank's results are there and ``overwrite``
    is off. Without ``data`` only the last two are checked, for the fixed file names.
    """
    out = Path(out)
    planned = _possible_names(data) if data is not None else [SELECTION_CSV, REFERENCE_SUMMARY, SELECTION_JSON]
    _check(out, planned, overwrite, data)


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
                "name": cand.name,
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
                "name": winner.name,
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
        chosen = rec["chosen"]["candidate"] if rec["status"] == "chosen" else None
        for cand in rec["candidates"]:
            row = {**common, **cand, "reasons": ";".join(cand["reasons"])}
            row["chosen"] = int(cand["candidate"] == chosen)
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


_CSV_BASE = ["candidate", "iteration", "name", "path", "score", "combined", "rank", "chosen", "eligible", "reasons", "error"]


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
        if rec["status"] == "chosen"
    ]


def _copy_into(src: Path, dest: Path, link: bool) -> None:
    """Copy ``src`` to ``dest`` (or make ``dest`` an absolute symbolic link to it), atomically."""
    if link:
        with atomic_path(dest) as tmp:
            os.unlink(tmp)
            os.symlink(os.path.abspath(src), tmp)
    else:
        with open(src, "rb") as source, atomic_open(dest, "wb") as handle:
            shutil.copyfileobj(source, handle, 1 << 20)


def _per_prompt_text(data: RerankInput, results: Sequence[PromptResult], column: str,
                     skip: Iterable[int] = ()) -> str:
    """One line per prompt line: the chosen candidate's ``column`` value, blank for prompts with no choice."""
    by_index = {res.prompt.index: res for res in results}
    skip = set(skip)
    lines = []
    for idx in range(data.num_lines):
        res = by_index.get(idx)
        value = None
        if res is not None and res.selection.chosen is not None and idx not in skip:
            value = res.prompt.candidates[res.selection.chosen].columns.get(column)
        lines.append("" if value is None else str(value))
    return "".join(line + "\n" for line in lines)


def _plan(out: Path, data: RerankInput, results: Sequence[PromptResult], records: list[dict], link: bool,
          copy_failed: set[int]) -> tuple[dict[str, Callable[[Path], None]], dict[str, dict]]:
    """What a run writes: relative path -> writer(destination), in order (the chosen audio, then the summaries,
    computed after the audio so that a copy that failed shows as a failed prompt), and the audio's records."""
    layout = data.kind == "layout"
    plan: dict[str, Callable[[Path], None]] = {}
    audio_records: dict[str, dict] = {}
    for res, rec in zip(results, records, strict=True):
        if rec["chosen"] is not None:
            src = res.prompt.candidates[res.selection.chosen].path
            rel = f"{AUDIOS}/{Path(rec['chosen']['output']).name}"
            if rel in plan:  # the readers keep ids unique; never let two prompts share a file
                raise OutputExistsError(f"{out / rel}: two prompts would write the same file")
            plan[rel] = lambda dest, src=src: _copy_into(src, dest, link)
            audio_records[rel] = rec
    plan[SELECTION_CSV] = lambda dest: atomic_write_text(dest, _csv_text(records, layout))
    if layout:
        plan[REFERENCE_SUMMARY] = lambda dest: atomic_write_text(
            dest, json.dumps(_reference_summary(records), indent=2) + "\n"
        )
        for column, filename in data.per_prompt_files.items():
            plan[filename] = lambda dest, column=column: atomic_write_text(
                dest, _per_prompt_text(data, results, column, skip=copy_failed)
            )
        for src in data.common_files:
            plan[src.name] = lambda dest, src=src: _copy_into(src, dest, link=False)
    lowered: dict[str, str] = {}
    for rel in plan:  # a case-insensitive file system would merge these
        if lowered.setdefault(rel.casefold(), rel) != rel:
            raise OutputExistsError(f"{out}: {lowered[rel.casefold()]} and {rel} differ only in case")
    return plan, audio_records


def _fail_copy(doc: dict, rec: dict, exc: OSError, copy_failed: set[int]) -> None:
    """One chosen file that cannot be copied fails its prompt, not the run."""
    message = f"{rec['chosen']['path']}: could not be copied ({exc.strerror or exc}); prompt {rec['id']} failed"
    doc["issues"].append(message)
    doc["counts"]["issues"] += 1
    doc["counts"]["chosen"] -= 1
    doc["counts"]["failed"] += 1
    rec["status"] = "failed"
    rec["chosen"]["error"] = message
    copy_failed.add(rec["index"])


def write_outputs(
    out: str | Path,
    data: RerankInput,
    results: Sequence[PromptResult],
    link: bool = False,
    meta: dict | None = None,
    progress: Callable[[int], None] | None = None,
    overwrite: bool = False,
) -> dict:
    """Write the chosen audio and the summaries into ``out``; return the selection.json document.

    Refuses (:class:`OutputExistsError`, nothing written) what :func:`check_output_dir` refuses, for the exact
    files of this run. With ``overwrite``, the files of an earlier rerank that this run does not rewrite are
    removed afterwards; files this module did not write are never replaced or removed.
    """
    out = Path(out)
    records = selection_records(data, results, out)
    doc = {**(meta or {}), "counts": count_results(data, results), "issues": list(data.issues), "prompts": records}
    copy_failed: set[int] = set()  # prompt indices whose chosen file could not be copied
    plan, audio_records = _plan(out, data, results, records, link, copy_failed)
    previous = _check(out, [*plan, SELECTION_JSON], overwrite, data)

    def fill(stage: Path) -> dict[str, str]:
        digests = {}
        for rel, write in plan.items():
            try:
                write(stage / rel)
            except OSError as exc:
                if rel not in audio_records:
                    raise
                _fail_copy(doc, audio_records[rel], exc, copy_failed)
                continue
            digests[rel] = file_digest(stage / rel)
            if progress is not None and rel in audio_records:
                progress(1)
        doc["written_by"] = WRITER
        doc["outputs"] = digests
        atomic_write_text(stage / SELECTION_JSON, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return digests

    if not os.path.lexists(out):
        with atomic_dir(out) as stage:  # a new folder appears whole or not at all
            (stage / AUDIOS).mkdir()
            fill(stage)
        return doc
    stage = temporary_name(out / ".rerank")
    os.mkdir(stage, 0o777)
    try:
        (stage / AUDIOS).mkdir()
        written = fill(stage)
        (out / AUDIOS).mkdir(exist_ok=True)
        for rel in written:
            os.replace(stage / rel, out / rel)
        os.replace(stage / SELECTION_JSON, out / SELECTION_JSON)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if overwrite and previous:
        stale = [rel for rel in previous if rel not in written and rel != SELECTION_JSON]
        remove_owned(out, stale, previous)
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
