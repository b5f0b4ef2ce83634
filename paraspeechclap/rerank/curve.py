"""The expected quality of a best-of-n pick, computed exactly over candidate subsets.

Given N candidates with selection scores ``s`` and a quality ``q`` (for example an acoustic
style-match score), draw n of the N uniformly without replacement and keep the one with the
highest ``s`` (ties: lowest index, as the reranker does). The candidate at selection order r
(0-based) is kept exactly when it is drawn and none of the r candidates ahead of it is, which
happens in C(N-1-r, n-1) of the C(N, n) subsets. So the expectation is a weighted sum, with no
sampling error. n = 1 is a random pick (the mean of q); n = N is the reranker's own pick over
all candidates; using ``s = q`` gives the oracle.
"""

from __future__ import annotations

from math import comb

import numpy as np

__all__ = ["selection_order", "expected_best_of_n", "best_of_n_curve"]


def selection_order(scores: np.ndarray) -> np.ndarray:
    """Candidate positions sorted by score descending, then position ascending (the tie-break)."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.lexsort((np.arange(len(scores)), -scores))


def expected_best_of_n(scores: np.ndarray, quality: np.ndarray, n: int) -> float:
    """Expected ``quality`` of the highest-``scores`` candidate among n drawn at random."""
    scores = np.asarray(scores, dtype=np.float64)
    quality = np.asarray(quality, dtype=np.float64)
    total = len(scores)
    if len(quality) != total:
        raise ValueError(f"{total} scores but {len(quality)} quality values")
    if not 1 <= n <= total:
        raise ValueError(f"n must be in 1..{total}, got {n}")
    order = selection_order(scores)
    weights = np.array([comb(total - 1 - r, n - 1) for r in range(total)], dtype=np.float64)
    return float(weights @ quality[order] / comb(total, n))


def best_of_n_curve(scores: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """``expected_best_of_n`` for n = 1..N, as an array of length N."""
    return np.array([expected_best_of_n(scores, quality, n) for n in range(1, len(scores) + 1)])
