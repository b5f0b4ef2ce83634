"""A regularised probe per attribute (``calibrate --probe``): class directions fitted on labelled embeddings.

A multinomial logistic model over the attribute's taggable classes and ``"none"`` (a clip whose corpus class is
neutral or none, :meth:`.attributes.Attribute.unclaimed`) on L2-normalised audio embeddings, with weights
``W = W0 + Delta``: ``W0`` the zero-shot weights (``logit_scale`` x the class prompts' text embeddings, the template
filled as zero-shot classification fills it; zero for ``"none"``), a bias, and a penalty ``lambda * ||Delta||^2`` on
the mean cross-entropy. ``lambda`` is chosen by k-fold cross-validation of per-clip accuracy
(:meth:`~.attributes.Attribute.clip_right`, gates applied) against the thresholds alone, fitted on the same folds.
Fitted with torch's L-BFGS in float64 (the data is a few thousand rows of a few hundred values).
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from ..schemas.attribute_table import NONE

#: the penalties cross-validation chooses among (``no probe`` is always a candidate too)
LAMBDAS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
FOLDS = 5
#: ``--probe auto`` fits a probe where its cross-validated per-clip accuracy beats the thresholds' by this much
MIN_GAIN = 0.01
POLICIES = ("auto", "never")  # or a comma-separated list of attributes: forced
DEFAULT_POLICY = "auto"


def outcomes(attribute) -> list[str]:
    """A probe's outcomes: the taggable (not neutral) classes, then ``"none"``."""
    return [c for c in attribute.classes if c not in attribute.neutral] + [NONE]


def labels(attribute, gold) -> np.ndarray:
    """Each clip's outcome index: its class when taggable, else ``"none"``."""
    names = outcomes(attribute)
    return np.array([names.index(g) if g in names[:-1] else len(names) - 1 for g in gold], dtype=np.int64)


def zero_shot_weights(model: Any, attribute, template: str) -> np.ndarray:
    """``[outcomes, dim]``: ``logit_scale`` x each taggable class's prompt embedding, and a zero row for none."""
    text = np.asarray(model.embed_prompts(outcomes(attribute)[:-1], template), np.float64)
    return np.vstack([float(model.logit_scale) * text, np.zeros((1, text.shape[1]))])


def normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def fit(x: np.ndarray, y: np.ndarray, w0: np.ndarray, lam: float, max_iter: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """(weights, bias) minimising mean cross-entropy + ``lam * ||weights - w0||^2`` on L2-normalised ``x``."""
    import torch

    X = torch.as_tensor(normalised(x))
    Y = torch.as_tensor(y)
    W0 = torch.as_tensor(w0, dtype=torch.float64)
    delta = torch.zeros_like(W0, requires_grad=True)
    bias = torch.zeros(len(W0), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([delta, bias], lr=1.0, max_iter=max_iter, history_size=20, tolerance_grad=1e-9,
                            tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(X @ (W0 + delta).T + bias, Y) + lam * (delta ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return (W0 + delta).detach().numpy(), bias.detach().numpy()


def as_probe(attribute, weights: np.ndarray, bias: np.ndarray, lam: float) -> dict:
    """The table's ``probe`` record (weights rounded to 6 decimals: float32's precision at these scales)."""
    return {"outcomes": outcomes(attribute), "dim": int(weights.shape[1]),
            "weights": [[round(float(v), 6) for v in row] for row in weights],
            "bias": [round(float(v), 6) for v in bias], "lambda": float(lam)}


def fold_ids(n: int, folds: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.arange(n) % folds)


def _right(attribute, probs: np.ndarray, gold, gated: np.ndarray) -> int:
    return sum(attribute.clip_right(None if g else attribute.tag_of(p), t) for p, t, g in zip(probs, gold, gated))


def cross_validate(attribute, x: np.ndarray, zero_shot: np.ndarray, gold: list, gated: np.ndarray, w0: np.ndarray,
                   thresholds: Callable, lambdas=LAMBDAS, folds: int = FOLDS) -> dict:
    """Per-clip accuracy on held-out folds of the thresholds alone (``thresholds(attribute, probs, gold, gated)``
    sets them from the other folds) and of a probe for each lambda; the ``probe`` calibration record."""
    gold = np.array(gold, dtype=object)
    y = labels(attribute, gold)
    fold = fold_ids(len(x), folds)
    right_none, right = 0, dict.fromkeys(lambdas, 0)
    for k in range(folds):
        train, test = fold != k, fold == k
        trial = copy.deepcopy(attribute)
        trial.probe = None
        thresholds(trial, zero_shot[train], list(gold[train]), gated[train])
        right_none += _right(trial, zero_shot[test], gold[test], gated[test])
        for lam in lambdas:
            trial.probe = as_probe(attribute, *fit(x[train], y[train], w0, lam), lam)
            right[lam] += _right(trial, trial.probe_probabilities(x[test]), gold[test], gated[test])
    n = len(x)
    return {"folds": folds, "clips": n, "cv_no_probe": round(right_none / n, 4),
            "cv_probe": {repr(lam): round(hits / n, 4) for lam, hits in right.items()}}


def choose(record: dict, forced: bool, min_gain: float = MIN_GAIN) -> float | None:
    """The lambda to fit (the best cross-validated; ties to the larger penalty) or None: no probe, unless it gains
    at least ``min_gain`` per clip over the thresholds or is ``forced``."""
    scores = {float(lam): acc for lam, acc in record["cv_probe"].items()}
    best = max(scores.values())
    lam = max(lam for lam, acc in scores.items() if acc == best)
    return lam if forced or best - record["cv_no_probe"] >= min_gain - 1e-9 else None


def parse_policy(value: str, names: list[str]) -> tuple[str, set[str]]:
    """``--probe``: (``auto`` | ``never`` | ``forced``, the forced attributes); ValueError naming an unknown one."""
    if value in POLICIES:
        return value, set()
    wanted = {v.strip() for v in value.split(",") if v.strip()}
    unknown = sorted(wanted - set(names))
    if unknown or not wanted:
        raise ValueError(f"--probe takes auto, never or attributes of the table ({', '.join(names)}); "
                         f"got {value!r}")
    return "forced", wanted
