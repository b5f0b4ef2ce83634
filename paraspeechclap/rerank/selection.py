"""Choosing one candidate per prompt from its scores, optionally gated or weighted by other columns.

Pure functions over numbers: no model, no files, so the rules can be tested on a score matrix.

Rules (documented in the CLI help and the README):

* **Score** is the cosine between the caption and the candidate audio. A candidate whose score is
  not finite (its audio failed to decode) is never chosen.
* **Weights** (``wer=-1.0``): the selection key is ``score + sum(w * column)``. A candidate missing
  a weighted column's value is not eligible.
* **Gates** (``wer<=0.2``; several gates must all hold): candidates failing a gate, or missing the
  gated column's value, are not eligible. If *no* candidate is eligible, selection falls back to
  every scored candidate ranked by the plain cosine score, and the prompt is flagged
  ``fallback``.
* **Ties** break deterministically: highest key first, then the lowest candidate index (for the
  layout, the earliest iteration). Equal means exactly equal floats; a prompt whose winner tied
  with the runner-up is flagged ``tie``.
* **Margin** is the winner's key minus the runner-up's key among the eligible candidates (None
  when there is only one; flagged ``single_candidate``).
* **Rank** orders every candidate: the eligible ones by the rule above, then the ineligible ones
  with a score (by score), then the ones without.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Gate", "parse_gate", "parse_weight", "CandidateScore", "Selection", "select"]

_OPS = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_GATE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_\-]*)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")
_WEIGHT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_\-]*)\s*=\s*(\S+)\s*$")


@dataclass(frozen=True)
class Gate:
    """``column op threshold``, e.g. ``wer <= 0.2``."""

    column: str
    op: str
    threshold: float

    def passes(self, value: Any) -> bool:
        """True when ``value`` is a number that satisfies the gate (a missing value fails)."""
        number = _as_number(value)
        return number is not None and bool(_OPS[self.op](number, self.threshold))

    def __str__(self) -> str:
        return f"{self.column}{self.op}{self.threshold:g}"


def parse_gate(spec: str) -> Gate:
    """Parse ``"wer<=0.2"``; raises ValueError naming the problem."""
    match = _GATE.match(spec)
    if not match:
        raise ValueError(f"gate {spec!r}: expected COLUMN OP NUMBER with OP one of {', '.join(_OPS)}")
    threshold = _as_number(match.group(3))
    if threshold is None:
        raise ValueError(f"gate {spec!r}: threshold {match.group(3)!r} is not a number")
    return Gate(match.group(1), match.group(2), threshold)


def parse_weight(spec: str) -> tuple[str, float]:
    """Parse ``"wer=-1.0"`` into ``("wer", -1.0)``; raises ValueError naming the problem."""
    match = _WEIGHT.match(spec)
    weight = _as_number(match.group(2)) if match else None
    if weight is None:
        raise ValueError(f"weight {spec!r}: expected COLUMN=NUMBER, e.g. wer=-1.0")
    return match.group(1), weight


def _as_number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass
class CandidateScore:
    """The outcome for one candidate. ``position`` indexes the lists given to :func:`select`."""

    position: int
    index: int
    score: float | None
    combined: float | None
    rank: int = 0
    eligible: bool = False
    reasons: list[str] = field(default_factory=list)


@dataclass
class Selection:
    """The outcome for one prompt. ``chosen`` is a position in the candidate list, or None."""

    chosen: int | None
    margin: float | None
    flags: list[str]
    candidates: list[CandidateScore]

    @property
    def winner(self) -> CandidateScore | None:
        return None if self.chosen is None else self.candidates[self.chosen]


def select(
    scores: Sequence[float],
    indices: Sequence[int] | None = None,
    columns: Sequence[Mapping[str, Any]] | None = None,
    gates: Sequence[Gate] = (),
    weights: Mapping[str, float] | None = None,
) -> Selection:
    """Pick one candidate from ``scores`` (see the module doc for the rules).

    ``indices`` are the candidates' tie-break indices (default 0..n-1); ``columns`` holds each
    candidate's external values (e.g. ``{"wer": 0.1}``) for ``gates`` and ``weights``.
    """
    n = len(scores)
    indices = list(range(n)) if indices is None else list(indices)
    columns = [{} for _ in range(n)] if columns is None else list(columns)
    if len(indices) != n or len(columns) != n:
        raise ValueError(f"select: {n} scores but {len(indices)} indices and {len(columns)} column rows")
    weights = dict(weights or {})
    results: list[CandidateScore] = []
    for pos in range(n):
        score = _as_number(scores[pos])
        cand = CandidateScore(position=pos, index=int(indices[pos]), score=score, combined=score)
        if score is None:
            cand.reasons.append("no_score")
            cand.combined = None
        else:
            for column, weight in weights.items():
                value = _as_number(columns[pos].get(column))
                if value is None:
                    cand.reasons.append(f"missing:{column}")
                    cand.combined = None
                elif cand.combined is not None:
                    cand.combined += weight * value
            for gate in gates:
                if not gate.passes(columns[pos].get(gate.column)):
                    cand.reasons.append(f"gate:{gate}")
        cand.eligible = not cand.reasons
        results.append(cand)

    flags: list[str] = []
    pool = [c for c in results if c.eligible]
    key = lambda c: c.combined  # noqa: E731
    if not pool:
        pool = [c for c in results if c.score is not None]
        if pool:
            flags.append("fallback")
            for c in pool:
                c.eligible = True
            key = lambda c: c.score  # noqa: E731
    if any(c.score is None for c in results):
        flags.append("audio_error")

    def order(c: CandidateScore) -> tuple:
        return (-key(c), c.index)

    pool.sort(key=order)
    rest = [c for c in results if not c.eligible]
    rest.sort(key=lambda c: (c.score is None, -(c.score or 0.0), c.index))
    for rank, c in enumerate(pool + rest, start=1):
        c.rank = rank

    if not pool:
        flags.append("no_candidates")
        return Selection(chosen=None, margin=None, flags=flags, candidates=results)
    winner = pool[0]
    margin = None
    if len(pool) == 1:
        flags.append("single_candidate")
    else:
        margin = key(winner) - key(pool[1])
        if margin == 0.0:
            flags.append("tie")
    return Selection(chosen=winner.position, margin=margin, flags=flags, candidates=results)
