"""An order loss over versions of one recording (``loss.order`` in a training config).

The contrastive and classification losses learn absolute labels ("this clip is deep"). Where the labels are relative
to a speaker (recorded speech shifted up and down: the same voice, higher or lower), what is known for sure is the
*order*: of two versions of one recording, the lower one must score higher on ``classes[0]`` ("deep") minus
``classes[1]`` ("high-pitched"). Each step adds ``groups_per_step`` groups (all versions of one recording, rows
sharing ``group_column``) to the batch. They go through the same forward as the rest of the batch; with ``joint``
they also count in the contrastive and classification losses, else only their audio is added. Every pair of one
group whose ``value_column`` values differ by at least ``min_gap`` adds ``softplus(-s * (D_lower - D_higher))``,
with ``D`` the cosine to the first class prompt minus the cosine to the second and ``s`` ``scale`` (default: the
model's logit scale, not trained by this loss). A larger ``s`` is content with smaller gaps: its gradient fades once a
pair is in order by a few ``1/s``. ``orthogonal_to``: class pairs whose gap the order must not move: ``D`` then
uses the part of ``t_0 - t_1`` orthogonal to each pair's ``t_a - t_b``, so pushing versions apart along it leaves
those scores alone (in `mini`, "deep" minus "high-pitched" leans 0.18 (cosine) towards "whispered" minus "normal":
without this, lowered voices drift towards whispered). ``keep``: class pairs every version must keep in this order
(the versions are all, say, normal speech: ``[[normal, whispered]]``): each version adds
``keep_weight * softplus(-s * (cos_first - cos_second))``, averaged, to the same loss; where ``orthogonal_to`` keeps
the order from moving a gap directly, ``keep`` holds the versions' side of it in place while the rest of the network moves.
``margin`` ``m`` makes each pair's term ``softplus(-s * (D_lower - D_higher - m))``:
pairs in order by less than ``m`` keep being pulled apart, so neighbours a small step apart do not settle at a tie.
``keep_by`` (``{column: gender, pairs: {male: [male, female], female: [female, male]}}``): like ``keep``, with the
pair chosen by each version's value in ``column``, so that the order cannot carry a voice across that line.
``shared_crop``: every version of a group is cropped with one seed (versions of one length: one window), so two
versions compare the same stretch of speech rather than two random stretches of it.

The groups of a step are drawn from ``(seed, step, rank)`` alone, so a resumed run draws the same ones.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.dataset import ParaSpeechCapsDataset
from ..data.sources import load_sources

logger = logging.getLogger(__name__)


class OrderLoss:
    """Draws the order groups of a step and scores them; built once per run from ``cfg.loss.order``."""

    def __init__(self, table, dataset: ParaSpeechCapsDataset, *, group_column: str, value_column: str,
                 classes: Sequence[str], template: str, groups_per_step: int, min_gap: float, weight: float,
                 seed: int, joint: bool = True, scale: float | None = None,
                 orthogonal_to: Sequence[Sequence[str]] = (), keep: Sequence[Sequence[str]] = (), keep_weight: float = 1.0,
                 margin: float = 0.0, shared_crop: bool = False, keep_by: dict | None = None):
        if len(classes) != 2:
            raise ValueError(f"loss.order.classes needs two classes (lower value first), not {list(classes)!r}")
        self.dataset = dataset
        self.classes = list(classes)
        self.orthogonal_to = [list(p) for p in orthogonal_to or ()]
        self.keep = [list(p) for p in keep or ()]
        self.keep_weight = float(keep_weight)
        for name, given in (("orthogonal_to", self.orthogonal_to), ("keep", self.keep)):
            if any(len(p) != 2 for p in given):
                raise ValueError(f"loss.order.{name} holds class pairs, not {given!r}")
        # prompt rows: the two classes, then each pair's two; the pairs' (first, second) rows are kept with them
        # keep_by: {column, pairs: {value: [first, second]}}: a version whose column holds value keeps that pair's order
        keep_by = dict(keep_by or {})
        self.keep_by_column = keep_by.get("column")
        by_pairs = {str(k): list(v) for k, v in (keep_by.get("pairs") or {}).items()}
        if any(len(p) != 2 for p in by_pairs.values()) or bool(self.keep_by_column) != bool(by_pairs):
            raise ValueError(f"loss.order.keep_by needs a column and pairs {{value: [first, second]}}, not {keep_by!r}")
        all_pairs = self.orthogonal_to + self.keep + list(by_pairs.values())
        classes_then_pairs = self.classes + [c for p in all_pairs for c in p]
        self.prompts = [template.format(c) for c in classes_then_pairs]
        rows = [(2 + 2 * k, 3 + 2 * k) for k in range(len(all_pairs))]
        n_orth, n_keep = len(self.orthogonal_to), len(self.keep)
        self._orthogonal_rows, self._keep_rows = rows[:n_orth], rows[n_orth:n_orth + n_keep]
        self._keep_by_rows = dict(zip(by_pairs, rows[n_orth + n_keep:]))
        self.groups_per_step = int(groups_per_step)
        self.min_gap = float(min_gap)
        self.weight = float(weight)
        self.seed = int(seed)
        self.joint = bool(joint)
        self.scale = None if scale is None else float(scale)
        self.margin = float(margin)
        self.shared_crop = bool(shared_crop)
        members: dict = defaultdict(list)
        self.values = np.full(len(table), np.nan)
        self.keep_by_values: list = [None] * len(table)
        for i in range(len(table)):
            row = table[i]
            if self.keep_by_column:
                self.keep_by_values[i] = None if row.get(self.keep_by_column) is None else str(row[self.keep_by_column])
            value, group = row.get(value_column), row.get(group_column)
            if value is None or group is None:
                continue
            self.values[i] = float(value)
            members[group].append(i)
        self.groups = [g for g in members.values()
                       if len(g) > 1 and np.ptp(self.values[g]) >= self.min_gap]
        if not self.groups:
            raise ValueError(f"loss.order: no group of {group_column!r} has two rows whose {value_column!r} "
                             f"differ by >= {min_gap}")
        logger.info("order loss: %d groups (%d rows), %d per step, classes %s", len(self.groups),
                    sum(map(len, self.groups)), self.groups_per_step, " > ".join(self.classes))

    @classmethod
    def from_config(cls, ocfg, *, audio_root, crop_seconds, random_crop, mask_padding, normalize, caption_column,
                    tag_columns, template: str, seed: int) -> "OrderLoss":
        # several sources (a list, or a+b) are concatenated: every group once, none repeated to match lengths
        table = load_sources(ocfg.data, audio_root=audio_root, seed=seed, mode="concatenate")
        dataset = ParaSpeechCapsDataset(table, audio_root=audio_root, train=True, crop_seconds=crop_seconds,
                                        random_crop=random_crop, mask_padding=mask_padding, normalize=normalize,
                                        caption_column=caption_column, tag_columns=tag_columns, seed=seed)
        return cls(table, dataset, group_column=ocfg.group_column, value_column=ocfg.value_column,
                   classes=ocfg.classes, template=template, groups_per_step=ocfg.groups_per_step,
                   min_gap=ocfg.min_gap, weight=ocfg.weight, seed=seed, joint=ocfg.joint,
                   scale=ocfg.scale, orthogonal_to=ocfg.orthogonal_to or (), keep=ocfg.keep or (),
                   keep_weight=ocfg.keep_weight, margin=ocfg.margin, shared_crop=ocfg.shared_crop,
                   keep_by=ocfg.keep_by)

    def items(self, step: int, rank: int = 0) -> tuple[list[dict], list[int]]:
        """The dataset items of ``step``'s groups on ``rank`` (drawn from ``(seed, step, rank)``), their group ids."""
        rng = np.random.default_rng([self.seed, int(step), int(rank), 0x0DE5])
        picked = rng.choice(len(self.groups), size=min(self.groups_per_step, len(self.groups)), replace=False)
        items, group_of = [], []
        for g in picked:
            shared = int(rng.integers(2**62)) if self.shared_crop else None  # one crop seed for the whole group
            for row in self.groups[g]:
                seed = shared if shared is not None else int(rng.integers(2**62))
                items.append(self.dataset[(row, seed)])
                group_of.append(int(g))
        return items, group_of

    def batch(self, step: int, rank: int, collator) -> dict:
        """:meth:`items` collated; ``order_groups`` holds the group of each readable row."""
        items, groups = self.items(step, rank)
        out = collator(items)
        out["order_groups"] = [g for it, g in zip(items, groups) if "error" not in it]
        return out

    def pairs(self, indices: Sequence[int], groups: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(lower, higher) positions of every pair of one group at least ``min_gap`` apart."""
        lo, hi = [], []
        for a in range(len(indices)):
            for b in range(len(indices)):
                if groups[a] == groups[b] and self.values[indices[b]] - self.values[indices[a]] >= self.min_gap:
                    lo.append(a)
                    hi.append(b)
        return torch.tensor(lo, dtype=torch.long), torch.tensor(hi, dtype=torch.long)

    def direction(self, t: torch.Tensor) -> torch.Tensor:
        """``t[0] - t[1]`` without its components along the ``orthogonal_to`` pairs' differences (Gram-Schmidt)."""
        u = t[0] - t[1]
        basis: list[torch.Tensor] = []
        for i, j in self._orthogonal_rows:
            v = t[i] - t[j]
            for b in basis:
                v = v - (v @ b) * b
            basis.append(F.normalize(v, dim=0))
        for b in basis:
            u = u - (u @ b) * b
        return u

    def loss(self, speech_emb: torch.Tensor, prompt_emb: torch.Tensor, logit_scale: torch.Tensor,
             indices: Sequence[int], groups: Sequence[int]) -> torch.Tensor:
        """``speech_emb`` [n, d] of the order rows (unnormalised), ``prompt_emb`` [len(prompts), d] of the class
        prompts (detached: the order shapes the speech side only)."""
        lo, hi = self.pairs(indices, groups)
        a = F.normalize(speech_emb.float(), dim=-1)
        t = F.normalize(prompt_emb.detach().float(), dim=-1)
        scale = logit_scale.detach().float() if self.scale is None else self.scale
        total = speech_emb.sum() * 0.0
        if len(lo):
            d = a @ self.direction(t)
            total = total + F.softplus(-scale * (d[lo] - d[hi] - self.margin)).mean()
        for i, j in self._keep_rows:
            gap = a @ (t[i] - t[j])
            total = total + self.keep_weight * F.softplus(-scale * gap).mean()
        if self._keep_by_rows:
            terms = [F.softplus(-scale * (a[k] @ (t[self._keep_by_rows[v][0]] - t[self._keep_by_rows[v][1]])))
                     for k, index in enumerate(indices)
                     if (v := self.keep_by_values[index]) in self._keep_by_rows]
            if terms:
                total = total + self.keep_weight * torch.stack(terms).mean()
        return total

