"""The ParaSpeechCaps schema: column names, tag normalisation, audio paths and captions.

The columns and their types are declared once, by the ``manifest-row`` contract
(:mod:`paraspeechclap.schemas.manifest`); the names here are those.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterable, Sequence

from ..schemas.columns import (DIRECT_AUDIO_COLUMNS, DURATION, INTRINSIC_TAGS, PARASPEECHCAPS_COLUMNS,
                               RELATIVE_AUDIO_PATH, SITUATIONAL_TAGS, SOURCE, TAG_COLUMNS, TEXT_DESCRIPTION)

logger = logging.getLogger("paraspeechclap.data")

COLUMNS = PARASPEECHCAPS_COLUMNS
__all__ = ["COLUMNS", "DIRECT_AUDIO_COLUMNS", "DURATION", "INTRINSIC_TAGS", "RELATIVE_AUDIO_PATH", "SITUATIONAL_TAGS", "SOURCE",
           "TAG_COLUMNS", "TEXT_DESCRIPTION", "audio_path", "build_vocabulary", "captions", "check_columns",
           "normalize_tags"]


def normalize_tags(value: Any, *, warn: bool = True) -> list[str]:
    """Tags as a list of stripped, lower-cased, non-empty strings (order kept, duplicates removed).

    ``None`` -> ``[]``; a single string -> one tag; non-string entries are dropped (with a warning).
    """
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    out: list[str] = []
    dropped = 0
    try:
        items = list(value)
    except TypeError:
        items = [value]
    for t in items:
        if not isinstance(t, str):
            dropped += 1
            continue
        t = t.strip().lower()
        if not t:
            dropped += 1
            continue
        if t not in out:
            out.append(t)
    if dropped and warn:
        logger.debug("dropped %d empty or non-string tag entries from %r", dropped, value)
    return out


def build_vocabulary(tag_lists: Iterable[Any]) -> list[str]:
    """Sorted unique normalised tags of a whole column."""
    vocab: set[str] = set()
    for v in tag_lists:
        vocab.update(normalize_tags(v, warn=False))
    return sorted(vocab)


def captions(value: Any) -> list[str]:
    """The caption candidates of a row: a string or a list of strings; blanks dropped."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    return [c for c in (str(x).strip() for x in value if x is not None) if c]


def audio_path(row: dict, audio_root: str | os.PathLike | None) -> str:
    """The row's audio path by the one rule (:func:`paraspeechclap.data.rows.resolve_audio_path`): a direct
    ``path``/``audio``/``audio_path``/``file`` column (absolute, or joined to ``audio_root``), else
    ``{audio_root}/{source}/{relative_audio_path}``, else a Hugging Face ``audio`` dict's ``path``.

    Raises :class:`ValueError` when the row names no audio, or names it by ``relative_audio_path`` without a root.
    """
    from .rows import resolve_audio_path

    return resolve_audio_path(row, None, None if audio_root is None else os.fspath(audio_root))


def check_columns(columns: Sequence[str], *, tag_columns: Sequence[str] = (), caption_column: str = TEXT_DESCRIPTION,
                  where: str = "dataset") -> None:
    """Fail early (before any worker starts) when needed columns are missing."""
    cols = set(columns)
    missing = []
    if not cols & {RELATIVE_AUDIO_PATH, *DIRECT_AUDIO_COLUMNS}:
        missing.append(f"{RELATIVE_AUDIO_PATH} (or one of {', '.join(DIRECT_AUDIO_COLUMNS)})")
    if caption_column and caption_column not in cols:
        missing.append(caption_column)
    missing += [c for c in tag_columns if c not in cols]
    if missing:
        raise ValueError(f"{where}: missing column(s) {', '.join(missing)}; has {sorted(cols)}")
