"""Windows and batches bounded by the encoder's own work, not by seconds alone.

A window's cost is set by its number of encoder frames (the encoder's conv-length rule) and by the attention score
tensors those frames need (frames^2 x heads). Windows are as long as the model's ``window_seconds`` unless their
attention would exceed a memory budget, in which case they shrink (the overlap shrinks in proportion). Batches hold
windows of similar length, bounded in clips, padded frames and attention bytes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

ATTENTION_BUDGET_BYTES = 512 * 2**20  # per forward pass: the [rows, heads, T, T] tensors of one layer's attention
# Full-size copies alive at once, fp32 bytes each: the cached position bias, the gated (and masked) bias, SDPA's
# workspace. Measured: a 5-minute file through the stride-20 fixture tower (4,729-frame windows, 2 heads, 179 MB per
# copy) peaks at 0.9 GB RSS in all, ~0.5 GB above the loaded model, since fast.toeplitz_bias builds the bias without
# T x T temporaries (the stock compute_bias needed ~6 of them: 1.65 GB).
ATTENTION_COPIES = 3


@dataclass(frozen=True)
class Window:
    owner: int   # index of the input this window belongs to
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class EncoderCost:
    """How much work a number of samples costs one speech tower: its conv-length rule (samples -> encoder frames)
    and its attention heads. Built from a torch tower with :meth:`of`, or from exported data (``paraspeechclap.
    runtime``) with the rule as a plain function, so this module needs no torch."""

    rule: Callable[[int], int]
    heads: int

    @classmethod
    def of(cls, base: Any) -> "EncoderCost":
        """The cost of a Hugging Face speech tower (its own ``_get_feat_extract_output_lengths``)."""
        import torch

        lengths = base._get_feat_extract_output_lengths
        return cls(lambda samples: int(lengths(torch.tensor(int(samples)))),
                   int(getattr(base.config, "num_attention_heads", 0) or 0))

    def frames(self, num_samples: int) -> int:
        return int(self.rule(num_samples))

    def attention_bytes(self, frames: int, rows: int = 1) -> int:
        return rows * self.heads * frames * frames * 4 * ATTENTION_COPIES

    def max_frames(self, budget: int = ATTENTION_BUDGET_BYTES) -> int | None:
        """Most frames one window may have within the attention budget (None: no attention, no bound)."""
        if self.heads <= 0:
            return None
        return max(1, int(math.isqrt(budget // (self.heads * 4 * ATTENTION_COPIES))))

    def samples_for_frames(self, frames: int, upper: int) -> int:
        """Largest sample count <= ``upper`` whose frame count is <= ``frames`` (binary search on the conv rule)."""
        low, high = 1, upper
        while low < high:
            mid = (low + high + 1) // 2
            if self.frames(mid) <= frames:
                low = mid
            else:
                high = mid - 1
        return low


def window_size(cost: EncoderCost, window_seconds: float, overlap_seconds: float, sampling_rate: int,
                budget: int = ATTENTION_BUDGET_BYTES) -> tuple[int, int]:
    """``(window, overlap)`` in samples: the configured ones, shrunk where one window's attention exceeds
    ``budget``. Validates the configuration (window > 0, 0 <= overlap < window)."""
    if not window_seconds > 0:
        raise ValueError(f"window_seconds must be > 0, got {window_seconds}")
    if not 0 <= overlap_seconds < window_seconds:
        raise ValueError(f"window_overlap_seconds must be in [0, window_seconds), got {overlap_seconds} "
                         f"for window_seconds {window_seconds}")
    window = int(round(window_seconds * sampling_rate))
    overlap = int(round(overlap_seconds * sampling_rate))
    limit = cost.max_frames(budget)
    if limit is not None and cost.frames(window) > limit:
        shrunk = cost.samples_for_frames(limit, window)
        overlap = int(overlap * shrunk / window)
        window = shrunk
    return window, overlap


def window_spans(num_samples: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Deterministic windows ``[start, end)`` covering ``num_samples``: one span when it fits, else windows of
    ``window`` samples every ``window - overlap``, the last one aligned to the end so that no window is short."""
    if window <= 0:
        raise ValueError(f"window must be > 0 samples, got {window}")
    if num_samples <= window:
        return [(0, num_samples)]
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in [0, window), got {overlap} for window {window}")
    hop = window - overlap
    starts = list(range(0, num_samples - window + 1, hop))
    if starts[-1] + window < num_samples:
        starts.append(num_samples - window)
    return [(s, s + window) for s in starts]


def plan_batches(windows: Sequence[Window], cost: EncoderCost, max_clips: int, max_frames: int,
                 budget: int = ATTENTION_BUDGET_BYTES) -> list[list[int]]:
    """Group windows (indices into ``windows``) longest first into batches of similar length, each within
    ``max_clips`` rows, ``max_frames`` padded frames and the attention ``budget``. A window alone always forms a
    batch, whatever its size."""
    order = sorted(range(len(windows)), key=lambda i: (-windows[i].length, i))
    batches: list[list[int]] = []
    frames_of: dict[int, int] = {}
    for i in order:
        length = windows[i].length
        frames_of.setdefault(length, cost.frames(length))
        if batches:
            batch = batches[-1]
            longest = frames_of[windows[batch[0]].length]
            rows = len(batch) + 1
            if rows <= max_clips and longest * rows <= max_frames and \
                    cost.attention_bytes(longest, rows) <= budget:
                batch.append(i)
                continue
        batches.append([i])
    return batches
