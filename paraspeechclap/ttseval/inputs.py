"""Reading a benchmark's inputs: the prompts and each system's clips, through the project's one reader of rows
(:func:`paraspeechclap.data.rows.read_rows`).

**Prompts**: a JSONL/CSV/TSV/Parquet/JSON file with one row per prompt: ``id``, the style caption (``caption``, or
``description`` / ``text_description`` / ``style``; the first element of a list), an optional transcript
(``transcript``, or ``text`` / ``transcription``) and optional intended attribute labels (``labels``: an object
``{"pitch": "deep", "rate": "slow"}`` naming attributes of the model's attribute table, or a list of class words
``["deep", "slow"]``; in CSV a JSON cell).

**A system**: a folder of audio files named ``<prompt id>.<ext>`` (searched recursively), or a manifest whose rows
name an audio file (``path``/``audio``/... as everywhere) and the prompt it renders (``id`` or ``prompt_id``).

Nothing is dropped silently: a bad row, a duplicate id, a clip that names no prompt, a prompt a system has no clip for
are all :class:`Problem` s, reported per item.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Problem", "Prompt", "SystemClips", "InputError", "read_prompts", "read_system", "parse_system_spec"]

CAPTION_COLUMNS = ("caption", "description", "text_description", "style")
TRANSCRIPT_COLUMNS = ("transcript", "text", "transcription")
ID_COLUMNS = ("id", "prompt_id")


class InputError(ValueError):
    """An input as a whole cannot be used (a prompts file that cannot be read, a system with no clip at all)."""


@dataclass
class Problem:
    """One bad item: ``kind`` (missing_clip, unreadable_audio, bad_row, duplicate_id, unknown_prompt,
    no_attribute, no_counterfactual, bad_label, ...), where it is, and what is wrong. ``error`` problems make the
    command exit 1; warnings do not."""

    kind: str
    message: str
    system: str | None = None
    prompt: str | None = None
    where: str | None = None
    severity: str = "error"

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        parts = [p for p in (self.where, f"system {self.system}" if self.system else None,
                             f"prompt {self.prompt}" if self.prompt else None) if p]
        return f"{self.severity}: {self.kind}: {', '.join(parts)}: {self.message}"


@dataclass
class Prompt:
    id: str
    caption: str
    transcript: str | None = None
    labels: Any = None
    ref: str = ""


@dataclass
class SystemClips:
    name: str
    source: str
    clips: dict[str, str] = field(default_factory=dict)  # prompt id -> audio path


def _first_text(fields: dict, columns: tuple[str, ...]) -> str | None:
    for column in columns:
        value = fields.get(column)
        if isinstance(value, list):
            value = next((v for v in value if isinstance(v, str) and v.strip()), None)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _row_id(fields: dict) -> str | None:
    for column in ID_COLUMNS:
        value = fields.get(column)
        if isinstance(value, bool):
            continue
        if isinstance(value, int) or (isinstance(value, str) and value.strip()):
            return str(value).strip()
    return None


def read_prompts(path: str | os.PathLike) -> tuple[list[Prompt], list[Problem]]:
    """The prompts of ``path`` in file order, and the problems of its rows (each with its ``FILE:LINE``)."""
    from ..data.rows import read_rows

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: prompts file not found")
    prompts: list[Prompt] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for row in read_rows(str(path), require_audio=False):
        if row.ref == str(path) and not row.ok:
            raise InputError(f"{path}: {row.error}")
        if not row.ok:
            problems.append(Problem("bad_row", row.error or "unreadable row", where=row.ref))
            continue
        pid, caption = _row_id(row.fields), _first_text(row.fields, CAPTION_COLUMNS)
        if pid is None or caption is None:
            missing = "an id" if pid is None else f"a caption ({', '.join(CAPTION_COLUMNS)})"
            problems.append(Problem("bad_row", f"the row has no {missing}; skipped", prompt=pid, where=row.ref))
            continue
        if pid in seen:
            problems.append(Problem("duplicate_id", "a second prompt with this id; skipped", prompt=pid, where=row.ref))
            continue
        seen.add(pid)
        prompts.append(Prompt(pid, caption, _first_text(row.fields, TRANSCRIPT_COLUMNS), row.fields.get("labels"),
                              row.ref))
    if not prompts:
        raise InputError(f"{path}: no usable prompt rows" + (f" ({len(problems)} bad)" if problems else ""))
    return prompts, problems


def parse_system_spec(spec: str) -> tuple[str, str]:
    """``NAME=PATH`` -> (NAME, PATH); a bare ``PATH`` is named after its file or folder (without suffix)."""
    name, sep, rest = spec.partition("=")
    if sep and name and rest and not os.path.exists(spec) and all(ch.isalnum() or ch in "-_." for ch in name):
        return name, rest
    path = Path(spec)
    return (path.name if path.is_dir() else path.name.split(".")[0]) or spec, spec


def read_system(name: str, source: str | os.PathLike, problems: list[Problem]) -> SystemClips:
    """The clips of one system (a folder or a manifest); bad rows and duplicate ids go to ``problems``."""
    from ..data.rows import read_rows

    source = str(source)
    if not os.path.exists(source):
        raise InputError(f"system {name}: {source} not found")
    out = SystemClips(name, source)
    folder = os.path.isdir(source)
    for row in read_rows(source):
        if not row.ok:
            problems.append(Problem("bad_row", row.error or "unreadable row", system=name, where=row.ref))
            continue
        pid = Path(row.audio).stem if folder else _row_id(row.fields)
        if pid is None:
            problems.append(Problem("bad_row", f"the row names no prompt ({' or '.join(ID_COLUMNS)})", system=name,
                                    where=row.ref))
        elif pid in out.clips:
            problems.append(Problem("duplicate_id", f"a second clip for this prompt ({row.audio}); the first, "
                                    f"{out.clips[pid]}, is used", system=name, prompt=pid, where=row.ref))
        else:
            out.clips[pid] = row.audio
    return out
