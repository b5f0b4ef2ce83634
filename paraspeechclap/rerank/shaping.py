"""Reward shaping shared by the in-process reward API, the RL adapters and the HTTP service.

``cosine``: the caption-audio cosine as is. ``logit``: the model's scaled logit (``logit_scale * cosine``).
``group_norm``: per group (the N samples drawn for one prompt, as GRPO uses), ``(cosine - mean) / (std + eps)``;
a group of one gets 0. ``contrastive``: the style-adherence benchmark's contrastive score (the probability that the
caption beats captions flipping one named attribute; :mod:`paraspeechclap.ttseval.contrastive`), taken from
``contrast``, the result of :func:`paraspeechclap.ttseval.contrastive.contrastive_scores` for the same items, so the
numbers are the benchmark's. Every mode returns the components that made each reward, so a trainer can log them.
"""
from __future__ import annotations

from typing import Any, Hashable, Sequence

import numpy as np

SHAPINGS = ("cosine", "logit", "group_norm", "contrastive")
#: the shapings computed from the cosines alone (``contrastive`` also needs the counterfactual captions' cosines)
COSINE_SHAPINGS = ("cosine", "logit", "group_norm")


def shape_rewards(cosines: Sequence[float], logit_scale: float, mode: str = "cosine",
                  groups: Sequence[Hashable] | None = None, eps: float = 1e-6,
                  contrast: Any = None) -> tuple[np.ndarray, list[dict]]:
    """``(rewards [N] float32, components per item)``; NaN cosines (failed items) stay NaN and are left out of
    their group's statistics. ``contrast`` (mode ``contrastive`` only): a
    :class:`~paraspeechclap.ttseval.contrastive.ContrastiveResult` of the same N items; an item without a
    contrastive score (its caption names no attribute that can be flipped) gets NaN."""
    if mode not in SHAPINGS:
        raise ValueError(f"shaping must be one of {SHAPINGS}, got {mode!r}")
    cos = np.asarray(cosines, dtype=np.float64)
    components = [{"cosine": float(c), "logit": float(logit_scale * c)} for c in cos]
    if mode == "cosine":
        return cos.astype(np.float32), components
    if mode == "logit":
        return (logit_scale * cos).astype(np.float32), components
    if mode == "contrastive":
        return _contrastive(cos, contrast, components)
    if groups is None:
        raise ValueError("group_norm shaping needs a group per item (e.g. the prompt it was sampled for)")
    if len(groups) != len(cos):
        raise ValueError(f"{len(cos)} items but {len(groups)} group labels")
    rewards = np.full(len(cos), np.nan)
    members: dict[Hashable, list[int]] = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    for rows in members.values():
        ok = [i for i in rows if np.isfinite(cos[i])]
        if not ok:
            continue
        mean, std = float(cos[ok].mean()), float(cos[ok].std())
        for i in ok:
            rewards[i] = 0.0 if len(ok) == 1 else (cos[i] - mean) / (std + eps)
            components[i].update(group_mean=mean, group_std=std)
    return rewards.astype(np.float32), components


def _contrastive(cos: np.ndarray, contrast: Any, components: list[dict]) -> tuple[np.ndarray, list[dict]]:
    if contrast is None:
        raise ValueError("contrastive shaping needs the items' counterfactual scores: pass contrast="
                         "paraspeechclap.ttseval.contrastive.contrastive_scores(model, audio_embeddings, captions)")
    scores = np.asarray(contrast.scores, np.float64)
    if len(scores) != len(cos):
        raise ValueError(f"{len(cos)} items but a contrastive result for {len(scores)}")
    theirs = np.asarray(contrast.cosines, np.float64)
    both = np.isfinite(cos) & np.isfinite(theirs)
    if np.any(np.abs(cos[both] - theirs[both]) > 1e-4):
        raise ValueError("the contrastive result was computed for other items (its caption cosines differ)")
    rewards = np.where(np.isfinite(cos), scores, np.nan)
    win = np.asarray(contrast.win, np.float64)
    for i, part in enumerate(components):  # None, not NaN, where there is no score: the components go out as JSON
        part.update(contrastive=float(rewards[i]) if np.isfinite(rewards[i]) else None,
                    contrastive_win=float(win[i]) if np.isfinite(win[i]) and np.isfinite(rewards[i]) else None,
                    counterfactuals=int(np.sum(contrast.contrast.item == i)))
        if contrast.problems[i] is not None:
            part["contrastive_problem"] = contrast.problems[i]
    return rewards.astype(np.float32), components
