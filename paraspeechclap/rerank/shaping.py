"""Reward shaping shared by the in-process reward API, the RL adapters and the HTTP service.

``cosine``: the caption-audio cosine as is. ``logit``: the model's scaled logit (``logit_scale * cosine``).
``group_norm``: per group (the N samples drawn for one prompt, as GRPO uses), ``(cosine - mean) / (std + eps)``;
a group of one gets 0. Every mode returns the components that made each reward, so a trainer can log them.
"""
from __future__ import annotations

from typing import Hashable, Sequence

import numpy as np

SHAPINGS = ("cosine", "logit", "group_norm")


def shape_rewards(cosines: Sequence[float], logit_scale: float, mode: str = "cosine",
                  groups: Sequence[Hashable] | None = None, eps: float = 1e-6) -> tuple[np.ndarray, list[dict]]:
    """``(rewards [N] float32, components per item)``; NaN cosines (failed items) stay NaN and are left out of
    their group's statistics."""
    if mode not in SHAPINGS:
        raise ValueError(f"shaping must be one of {SHAPINGS}, got {mode!r}")
    cos = np.asarray(cosines, dtype=np.float64)
    components = [{"cosine": float(c), "logit": float(logit_scale * c)} for c in cos]
    if mode == "cosine":
        return cos.astype(np.float32), components
    if mode == "logit":
        return (logit_scale * cos).astype(np.float32), components
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
