"""Manifest rows: the columns the one reader of rows (:mod:`paraspeechclap.data.rows`) gives meaning to.

Any JSONL / CSV / TSV / Parquet / JSON-list manifest or dataset row is a ``manifest-row``; every other column is
kept as it is. The audio-path rule (which column names the audio, in which order) is declared here and applied by
:func:`paraspeechclap.data.rows.resolve_audio_path`. Rows do not have to be stamped: a user's manifest is version 0.
"""
from __future__ import annotations

from typing import Annotated, Any, Optional, Union

from pydantic import Field, Strict, StrictBool, StrictFloat, StrictInt, StrictStr

from .columns import (AUDIO_ROOT, CLASSIFICATION_TAG, DIRECT_AUDIO_COLUMNS, DURATION, INTRINSIC_TAGS,  # noqa: F401
                      PARASPEECHCAPS_COLUMNS, RELATIVE_AUDIO_PATH, SITUATIONAL_TAGS, SOURCE, TAG_COLUMNS,
                      TEXT_DESCRIPTION)
from .core import Contract, Record, declare, unchanged

Text = Optional[StrictStr]
Texts = Union[StrictStr, list[Optional[StrictStr]], None]  # one string, or a list (blank and null entries skipped)
Seconds = Annotated[float, Strict(), Field(ge=0.0)]  # a number (an int is fine), never a string of one


class AudioCell(Record):
    """A Hugging Face ``Audio`` cell read without decoding: its file name and/or its bytes."""

    path: Text = None
    bytes: Any = None


class ManifestRow(Record):
    """One row of any manifest or dataset: the columns below are optional and typed; other columns pass through."""

    path: Text = None
    audio: Union[StrictStr, AudioCell, None] = None
    audio_path: Text = None
    file: Text = None
    relative_audio_path: Text = None
    source: Text = None
    audio_root: Text = None
    id: Union[StrictStr, StrictInt, None] = None
    text_description: Texts = None
    intrinsic_tags: Texts = None
    situational_tags: Texts = None
    duration: Optional[Seconds] = None
    #: a gold label; a CSV cell that looks like a number is read as one
    classification_tag: Union[StrictStr, StrictInt, StrictFloat, StrictBool, None] = None


MANIFEST_ROW = declare(Contract(
    "manifest-row", 1, ManifestRow,
    "a row of a manifest or dataset (JSONL/CSV/TSV/Parquet/JSON/datasets), read by paraspeechclap.data.rows",
    upgrades={0: unchanged},
))
