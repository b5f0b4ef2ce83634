"""Rerank results (``paraspeechclap rerank INPUT OUTPUT``): ``OUTPUT/selection.json``.

One record per prompt (its choice, margin, flags and every candidate's numbers), the counts, the issues met while
reading, the run's settings, and ``outputs``: every file the run wrote with its digest. That ownership record is
what a later run reads before it writes into the same folder (``--overwrite`` replaces only those files), so it is
this command's resume record. ``selection.csv`` is the same records flattened; ``selection_summary.json`` is the
reference script's format (a layout input only).

Expected next (branch ``rldocs``, version 2 with an upgrade from 1 when it lands): each candidate's file name beside
its index, for plain-folder inputs (``rerank DIR --caption ...``).
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import NonNegativeInt, StrictStr

from .core import Contract, Record, declare, unchanged

SELECTION_JSON = "selection.json"
WRITER = "paraspeechclap.rerank"


class CandidateRecord(Record):
    """One candidate (a layout's ``iteration`` and the manifest's per-candidate columns beside these)."""

    candidate: NonNegativeInt
    path: StrictStr
    score: Optional[float]
    combined: Optional[float]
    rank: Optional[NonNegativeInt]
    eligible: bool
    reasons: list[str]
    error: Optional[str] = None


class Chosen(Record):
    candidate: NonNegativeInt
    path: StrictStr
    output: StrictStr
    score: Optional[float]
    combined: Optional[float]
    error: Optional[str] = None  # set when the chosen file could not be copied


class PromptRecord(Record):
    index: NonNegativeInt
    id: StrictStr
    caption: StrictStr
    status: Literal["chosen", "failed"]
    chosen: Optional[Chosen]
    margin: Optional[float]
    flags: list[str]
    candidates: list[CandidateRecord]


class RerankSelection(Record):
    """``selection.json``; the run's settings (tool, input, model, provenance, gates, weights, ...) beside these."""

    counts: dict[str, NonNegativeInt]
    issues: list[str]
    prompts: list[PromptRecord]
    written_by: Literal["paraspeechclap.rerank"]
    outputs: dict[str, Optional[StrictStr]]  # relative path -> digest: the files this run owns
    provenance: Optional[dict[str, Any]] = None


RERANK_SELECTION = declare(Contract(
    "rerank-selection", 1, RerankSelection,
    "rerank's selection.json (a later rerank into the same folder reads its `outputs` before writing)",
    upgrades={0: unchanged}))
