"""Batch samplers: plain shuffling and class-balanced (tag-frequency) sampling.

Both are *batch* samplers that know the world size and their rank, and both build the whole
epoch's plan from a generator seeded with ``seed + epoch`` (identical on every rank), then hand rank
r its own batches. Each yields lists of ``(row_index, item_seed)``: the item seed (a hash of seed,
epoch and the position in the plan) drives the dataset's random crop and caption choice, so the
data of a run depends only on the seed, never on worker count or on a resume.

Resume: ``set_epoch(e)`` then ``set_position(k)`` skips the first k batches of this rank's epoch.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from .schema import normalize_tags

logger = logging.getLogger("paraspeechclap.data")

WEIGHTINGS = ("inverse_frequency", "sqrt_inverse", "log_inverse")



def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        z = x
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z


def item_seeds(seed: int, epoch: int, positions: np.ndarray) -> np.ndarray:
    """Per-item seeds (non-negative int64) from (seed, epoch, position in the epoch plan)."""
    base = _splitmix64(np.array([(int(seed) & 0xFFFFFFFF) << 32 | (int(epoch) & 0xFFFFFFFF)], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        z = _splitmix64(np.asarray(positions, dtype=np.uint64) ^ base)
    return (z >> np.uint64(1)).astype(np.int64)


class _EpochBatchSampler:
    """Common machinery: per-epoch plan [num_batches, world, <=batch] -> this rank's batches."""

    def __init__(self, batch_size: int, *, world_size: int = 1, rank: int = 0, seed: int = 0):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.batch_size = int(batch_size)
        self.world_size = int(world_size)
        self.rank = int(rank)
        self.seed = int(seed)
        self.epoch = 0
        self.position = 0

    # -- state
    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.position = 0

    def set_position(self, batches_done: int) -> None:
        self.position = int(batches_done)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])

    # -- plan
    def plan(self, epoch: int) -> list[list[np.ndarray]]:  # pragma: no cover - interface
        raise NotImplementedError

    def rank_batches(self, epoch: int | None = None, rank: int | None = None) -> list[np.ndarray]:
        """This rank's batches of ``epoch`` as arrays of row indices (no seeds)."""
        p = self.plan(self.epoch if epoch is None else epoch)
        r = self.rank if rank is None else rank
        return [step[r] for step in p]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, start = self.epoch, self.position
        p = self.plan(epoch)
        # positions are numbered over the whole plan so seeds differ across ranks and batches
        offset = 0
        offsets = []
        for step in p:
            offsets.append(offset)
            offset += sum(len(b) for b in step)
        for k in range(start, len(p)):
            step = p[k]
            base = offsets[k] + sum(len(b) for b in step[: self.rank])
            idx = step[self.rank]
            seeds = item_seeds(self.seed, epoch, base + np.arange(len(idx)))
            yield [(int(i), int(s)) for i, s in zip(idx.tolist(), seeds.tolist())]

    def __len__(self) -> int:
        return self.num_batches()

    def num_batches(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError


class ShuffleBatchSampler(_EpochBatchSampler):
    """Shuffled (or ordered) batches, split over ranks like ``DistributedSampler``: the permutation
    (seeded ``seed + epoch``) is padded by wrapping to a multiple of the world size, rank r takes
    every W-th index from r, then consecutive batches; the last batch may be short unless
    ``drop_last``."""

    def __init__(self, num_rows: int, batch_size: int, *, world_size: int = 1, rank: int = 0, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = False):
        super().__init__(batch_size, world_size=world_size, rank=rank, seed=seed)
        if num_rows < 1:
            raise ValueError("empty dataset")
        self.num_rows = int(num_rows)
        self.shuffle = shuffle
        self.drop_last = drop_last

    def _per_rank(self) -> int:
        return math.ceil(self.num_rows / self.world_size)

    def num_batches(self) -> int:
        n = self._per_rank()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def plan(self, epoch: int) -> list[list[np.ndarray]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + int(epoch))
            perm = torch.randperm(self.num_rows, generator=g).numpy()
        else:
            perm = np.arange(self.num_rows)
        total = self._per_rank() * self.world_size
        if total > len(perm):
            perm = np.concatenate([perm, perm[: total - len(perm)]])
        per = [perm[r::self.world_size] for r in range(self.world_size)]
        out = []
        for k in range(self.num_batches()):
            out.append([p[k * self.batch_size:(k + 1) * self.batch_size] for p in per])
        return out


@dataclass
class TagStatistics:
    counts: dict[str, int]
    row_tags: list[list[str]]
    num_rows: int

    @classmethod
    def from_column(cls, tag_lists: Sequence) -> "TagStatistics":
        row_tags = [normalize_tags(v, warn=False) for v in tag_lists]
        counts: dict[str, int] = {}
        for tags in row_tags:
            for t in tags:
                counts[t] = counts.get(t, 0) + 1
        return cls(counts, row_tags, len(row_tags))

    def frequencies(self) -> dict[str, float]:
        return {t: c / max(self.num_rows, 1) for t, c in self.counts.items()}

    def rare_tags(self, threshold: float) -> set[str]:
        return {t for t, f in self.frequencies().items() if f < threshold}


def tag_weights(counts: dict[str, int], strategy: str = "inverse_frequency") -> dict[str, float]:
    """Per-tag weights (1/c, 1/sqrt(c) or 1/ln(c+1)) rescaled to sum to the number of tags."""
    if strategy not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, not {strategy!r}")
    if not counts:
        return {}
    w = {}
    for t, c in counts.items():
        if strategy == "inverse_frequency":
            w[t] = 1.0 / c
        elif strategy == "sqrt_inverse":
            w[t] = 1.0 / math.sqrt(c)
        else:
            w[t] = 1.0 / math.log(c + 1)
    s = sum(w.values())
    return {t: v * len(w) / s for t, v in w.items()}


def sample_weights(row_tags: Sequence[Sequence[str]], weights: dict[str, float]) -> np.ndarray:
    """Mean weight of each row's distinct tags; rows without tags get the smallest tag weight."""
    floor = min(weights.values()) if weights else 1.0
    out = np.empty(len(row_tags), dtype=np.float64)
    for i, tags in enumerate(row_tags):
        ws = [weights[t] for t in set(tags) if t in weights]
        out[i] = sum(ws) / len(ws) if ws else floor
    return out


class BalancedBatchSampler(_EpochBatchSampler):
    """Class-balanced sampling over one tag column.

    Every epoch draws ``num_batches * world * batch`` rows *with replacement*, with probability
    proportional to the sample weights (:func:`sample_weights`), from a NumPy generator seeded
    ``seed + epoch``; the draw is laid out as [batch step, rank, position]. Then every per-rank batch
    with fewer than ``min_rare_per_batch`` rows carrying a rare tag (frequency below
    ``rare_tag_threshold``) gets its first non-rare positions replaced by rare rows drawn uniformly
    without replacement from the same generator, so the guarantee holds for every real batch of
    every rank. All ranks compute the same plan and take disjoint batch slots.
    """

    def __init__(self, tag_lists: Sequence, batch_size: int, *, world_size: int = 1, rank: int = 0, seed: int = 0,
                 weighting: str = "inverse_frequency", min_rare_per_batch: int = 2, rare_tag_threshold: float = 0.05,
                 num_samples: int | None = None):
        super().__init__(batch_size, world_size=world_size, rank=rank, seed=seed)
        self.stats = TagStatistics.from_column(tag_lists)
        if self.stats.num_rows < 1:
            raise ValueError("empty dataset")
        self.weighting = weighting
        self.tag_weights = tag_weights(self.stats.counts, weighting)
        self.weights = sample_weights(self.stats.row_tags, self.tag_weights)
        self.probabilities = self.weights / self.weights.sum()
        self.rare = self.stats.rare_tags(rare_tag_threshold)
        self.rare_mask = np.array([any(t in self.rare for t in tags) for tags in self.stats.row_tags], dtype=bool)
        self.rare_rows = np.flatnonzero(self.rare_mask)
        self.min_rare = max(0, min(int(min_rare_per_batch), self.batch_size))
        self.num_samples = int(num_samples) if num_samples else self.stats.num_rows
        if self.min_rare and not len(self.rare_rows):
            logger.warning("balanced sampling: no tag is rarer than %.3g; the rare-per-batch guarantee is void",
                           rare_tag_threshold)
        elif self.min_rare and len(self.rare_rows) < self.min_rare:
            logger.warning("balanced sampling: only %d rare rows for %d rare per batch", len(self.rare_rows), self.min_rare)

    def num_batches(self) -> int:
        return max(1, math.ceil(self.num_samples / (self.world_size * self.batch_size)))

    def plan(self, epoch: int) -> list[list[np.ndarray]]:
        rng = np.random.default_rng(self.seed + int(epoch))
        n, w, b = self.num_batches(), self.world_size, self.batch_size
        draw = rng.choice(self.stats.num_rows, size=n * w * b, replace=True, p=self.probabilities).reshape(n, w, b)
        need = min(self.min_rare, len(self.rare_rows))
        if need:
            rare_counts = self.rare_mask[draw].sum(-1)
            for s, r in zip(*np.nonzero(rare_counts < need)):
                batch = draw[s, r]
                missing = need - int(rare_counts[s, r])
                free = np.flatnonzero(~self.rare_mask[batch])[:missing]
                batch[free] = self.rare_rows[rng.choice(len(self.rare_rows), size=len(free), replace=False)]
        return [[draw[s, r].copy() for r in range(w)] for s in range(n)]
