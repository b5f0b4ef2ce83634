"""Statistics over prompts: bootstrap intervals, paired comparisons, a ranking with ties, agreement measures.

Every interval comes from one set of bootstrap replicates per evaluation: replicate b draws n prompts with
replacement (``numpy.random.default_rng(seed).integers(0, n, (B, n))``, the same draws for every system and score), and
is kept as a count matrix ``W[b, j]`` (how often prompt j was drawn). A statistic of a replicate is its weighted value
over the prompts where the statistic is defined (a ratio estimator), so a score that is missing for some prompts (a
caption that names no attribute) and a subset (the prompts naming one attribute) use the same replicates. Because every
system is resampled with the same draws, a difference between two systems is a paired bootstrap. Intervals are
percentile intervals at the stated level. Paired p-values are approximate randomisation (the sign of each prompt's
difference flipped at random, ``scipy.stats.permutation_test``); correlations are scipy's ``spearmanr``/``kendalltau``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["Replicates", "replicates", "weighted_mean", "interval", "uar", "paired", "rank_with_ties",
           "PairedResult"]


@dataclass
class Replicates:
    """Bootstrap count matrix ``weights`` [B, n] over n prompts, with the settings that made it."""

    weights: np.ndarray
    seed: int
    level: float

    @property
    def n_boot(self) -> int:
        return int(self.weights.shape[0])


def replicates(n: int, n_boot: int, seed: int, level: float = 0.95) -> Replicates:
    """B bootstrap replicates of n prompts as counts (deterministic for (n, n_boot, seed))."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"the interval level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    if n == 0:
        return Replicates(np.zeros((n_boot, 0), np.int32), seed, level)
    draws = rng.integers(0, n, size=(n_boot, n))
    flat = (draws + n * np.arange(n_boot)[:, None]).ravel()
    weights = np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.int32)
    return Replicates(weights, seed, level)


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean of ``values`` [n] (NaN = undefined there) under each row of ``weights`` [B, n]; NaN for an empty row."""
    values = np.asarray(values, np.float64)
    ok = np.isfinite(values)
    w = weights[:, ok].astype(np.float64)
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, w @ values[ok] / np.where(total > 0, total, 1.0), np.nan)


def interval(point: float, reps: np.ndarray, level: float) -> dict:
    """``{"mean", "lo", "hi"}``: the point estimate and the percentile interval of its replicates."""
    reps = np.asarray(reps, np.float64)
    reps = reps[np.isfinite(reps)]
    if not np.isfinite(point) or reps.size == 0:
        return {"mean": None if not np.isfinite(point) else float(point), "lo": None, "hi": None}
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(reps, [tail, 100 - tail])
    return {"mean": float(point), "lo": float(lo), "hi": float(hi)}


def uar(gold: Sequence[str], correct: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Unweighted average recall (the mean over the classes present in ``gold`` of the share classified right)
    under each row of ``weights`` [B, n]; a class absent from a replicate is left out of its mean. One row of ones is
    ``sklearn.metrics.balanced_accuracy_score``."""
    gold = np.asarray(gold, dtype=object)
    correct = np.asarray(correct, np.float64)
    recalls = []
    for cls in sorted(set(gold.tolist())):
        rows = gold == cls
        w = weights[:, rows].astype(np.float64)
        total = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls.append(np.where(total > 0, w @ correct[rows] / np.where(total > 0, total, 1.0), np.nan))
    if not recalls:
        return np.full(weights.shape[0], np.nan)
    stacked = np.vstack(recalls)
    present = np.isfinite(stacked).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):  # a replicate without any of the classes: NaN
        return np.where(present > 0, np.nansum(stacked, axis=0) / np.where(present > 0, present, 1), np.nan)


@dataclass
class PairedResult:
    """A vs B over the prompts both have: mean difference (A - B) with its paired bootstrap interval, the approximate
    randomisation p-value (two-sided), A's win rate (ties count half) and the number of prompts."""

    diff: dict
    p_value: float | None
    win_rate: float | None
    n: int

    @property
    def significant(self) -> bool:
        lo, hi = self.diff.get("lo"), self.diff.get("hi")
        return lo is not None and (lo > 0 or hi < 0)


def paired(a: np.ndarray, b: np.ndarray, reps: Replicates, n_permutations: int = 10000) -> PairedResult:
    """Compare two systems' per-prompt scores (NaN where a prompt has no score; those prompts are left out)."""
    from scipy.stats import permutation_test

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = np.where(np.isfinite(a) & np.isfinite(b), a - b, np.nan)
    ok = np.isfinite(d)
    n = int(ok.sum())
    if n == 0:
        return PairedResult({"mean": None, "lo": None, "hi": None}, None, None, 0)
    diff = interval(float(d[ok].mean()), weighted_mean(d, reps.weights), reps.level)
    p = None
    if n > 1 and np.any(d[ok] != 0):
        test = permutation_test((a[ok], b[ok]), lambda x, y, axis: np.mean(x - y, axis=axis), vectorized=True,
                                permutation_type="samples", n_resamples=n_permutations,
                                alternative="two-sided", random_state=np.random.default_rng(reps.seed))
        p = float(test.pvalue)
    elif n > 1:
        p = 1.0
    win = float(np.mean((d[ok] > 0) + 0.5 * (d[ok] == 0)))
    return PairedResult(diff, p, win, n)


def rank_with_ties(means: dict[str, float | None], better: dict[tuple[str, str], bool]) -> dict[str, dict]:
    """Rank systems by mean; ``better[(x, y)]`` says x is significantly better than y. A system's rank is one plus
    the number of systems significantly better than it, so systems that cannot be told apart share a rank (a tie).
    Returns ``{system: {"rank", "tied_with": [...]}}`` in order of mean (systems without a mean last, no rank)."""
    order = sorted(means, key=lambda s: (means[s] is None, -(means[s] or 0.0), s))
    out = {}
    for s in order:
        if means[s] is None:
            out[s] = {"rank": None, "tied_with": []}
            continue
        rank = 1 + sum(1 for o in order if o != s and better.get((o, s), False))
        out[s] = {"rank": rank, "tied_with": []}
    for s in order:
        if out[s]["rank"] is not None:
            out[s]["tied_with"] = [o for o in order if o != s and out[o]["rank"] is not None
                                   and not better.get((o, s), False) and not better.get((s, o), False)]
    return out
