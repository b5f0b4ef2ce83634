"""Input rows of an annotation job: :func:`paraspeechclap.data.rows.read_rows` (the one reader of rows and the one
audio-path rule), and the clip ids.

Id rule: ``fields["id"]`` when the row has one, else the audio path relative to the input root (the folder given,
or the manifest's folder), POSIX-style; a path outside the root keeps its absolute form. The ``audio`` column is
the absolute path of the file as the reader resolved it (the audio itself is never copied or rewritten).

Split rule: a row's own ``split`` field (a name of letters, digits, ``_`` and ``.``: what Hugging Face accepts),
else the job's split when one is given, else the split its manifest's file name names by Hugging Face datasets'
keywords (``test.jsonl``, ``dev.csv``, ``valid_rows.parquet``), else ``train`` (also the split read from a dataset
input); a ``split`` that is not a name makes the row an error row. Every other field of a manifest row is carried
to the output (:attr:`InputRow.fields`).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..data.rows import read_rows


#: a split name (Hugging Face's rule for split names in file names)
SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")
#: fields that become the output's own columns rather than carried ones
CONSUMED = ("id", "split")


@dataclass
class InputRow:
    """One planned row of the job: its global position, id, audio path, why it cannot be read (if so), its split
    and the manifest fields carried to the output (None for a plain audio file, which has none)."""

    row: int
    id: str
    audio: str | None
    error: str | None = None
    split: str = "train"
    fields: dict | None = None


def input_root(inputs) -> Path | None:
    first = Path(inputs[0] if isinstance(inputs, (list, tuple)) else inputs)
    if first.is_dir():
        return first.resolve()
    if first.exists():
        return first.resolve().parent
    return None


def clip_id(fields: dict, audio: str | None, root: Path | None, ref: str) -> str:
    if fields.get("id") not in (None, ""):
        return str(fields["id"])
    if audio is None:
        return ref
    path = Path(audio)
    if root is not None:
        try:
            return path.resolve().relative_to(root).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def split_named_by(path: str | os.PathLike) -> str | None:
    """The split a manifest file's name names, by Hugging Face datasets' keywords (``test``, ``dev``, ``valid``,
    ``training`` ... as words of the name), else None."""
    from datasets.data_files import SPLIT_KEYWORDS

    words = set(re.split(r"[-._ \d]+", Path(path).name.lower()))
    return next((str(split) for split, keywords in SPLIT_KEYWORDS.items() if words & set(keywords)), None)


def _rows(inputs, audio_root: str | None, split: str | None):
    """``(row, the split of rows that name none)`` of every input in order (see the split rule)."""
    for item in [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs:
        named = split_named_by(item) if split is None and Path(item).is_file() else None
        default = split or named or "train"
        for r in read_rows(item, audio_root=audio_root, split=split or "train"):
            yield r, default


def plan_rows(inputs, audio_root: str | None = None, split: str | None = None) -> list[InputRow]:
    """Every input row in order, with ids; rows the reader could not read keep their error. Duplicate ids get
    ``#2``, ``#3`` ... so that ids stay unique. ``split``: of rows that name none (None: the split rule)."""
    root = Path(audio_root).resolve() if audio_root else input_root(inputs)
    out: list[InputRow] = []
    seen: dict[str, int] = {}
    for number, (r, default) in enumerate(_rows(inputs, audio_root, split)):
        fields = dict(r.fields or {})
        cid = clip_id(fields, r.audio, root, r.ref)
        if cid in seen:
            seen[cid] += 1
            cid = f"{cid}#{seen[cid]}"
        else:
            seen[cid] = 1
        audio = None if r.audio is None else str(r.audio)
        if audio is not None and "://" not in audio:
            audio = os.path.abspath(audio)  # the file as read; never rewritten, but usable from any folder
        row_split, error = _split_of(fields, default)
        carried = None if fields == {"path": r.ref} else {k: v for k, v in fields.items() if k not in CONSUMED}
        out.append(InputRow(number, cid, audio, r.error or error, row_split, carried))
    return out


def _split_of(fields: dict, default: str) -> tuple[str, str | None]:
    """(the row's split, an error when its ``split`` field is not a split name)."""
    value = fields.get("split")
    if value is None or value == "":
        return default, None
    if isinstance(value, str) and SPLIT_NAME.match(value):
        return value, None
    return default, f"split {value!r} is not a split name (letters, digits, '_' and '.')"


def rows_digest(rows: list[InputRow], version: int = 2) -> str:
    """What identifies a job's input: ids, audio paths and errors (format 1); splits and carried fields too (2)."""
    digest = hashlib.sha256()
    for r in rows:
        item = [r.id, r.audio, r.error] if version < 2 else [r.id, r.audio, r.error, r.split, r.fields]
        digest.update(json.dumps(item, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]
