"""Admission by cost: what a request will cost is charged against budgets before its audio is decoded or encoded.

Work is counted in seconds of audio-equivalent: a clip costs its seconds (by its header) plus its decoding, which
scales with the samples to decode (rate x channels x seconds: :func:`decode_cost`), a prompt (a caption,
candidate or class filled into the template) :data:`PROMPT_COST`, a timeline its windows x window length, a search
:data:`SEARCH_COST` plus :data:`SEARCH_HIT_COST` per result asked for. A request over ``max_request_cost`` is a 413;
one that does not fit the work or memory in flight now is a 429 with Retry-After.
"""
from __future__ import annotations

import math
import threading

from .errors import ApiError

PROMPT_COST = 0.5          # a prompt through mini's text tower costs about what 0.5 s of audio costs its speech tower
SEARCH_COST = 1.0          # the query's text embedding and the index lookup ...
SEARCH_HIT_COST = 0.05     # ... and each result's row read
# Decoding a file costs in proportion to its samples at its own rate and channel count, whatever it lasts at 16 kHz:
# a second of 16 kHz mono input costs this much, 192 kHz x 8 channels 96 times as much. Reading, mixing and
# resampling a second of 16 kHz-mono-equivalent input took 0.1 - 0.5 ms (FLAC and WAV, 16 - 192 kHz, 1 - 8
# channels), against 3 - 5 ms for mini's speech tower per second of audio (BENCHMARKS.md, issue 27).
DECODE_COST = 0.1
DECODE_UNIT = 16_000       # samples (frames x channels) of input that cost DECODE_COST


class Budget:
    """A thread-safe pool of ``capacity`` units (bytes, seconds); ``reserve`` of it is kept for small takers."""

    def __init__(self, name: str, capacity: float, unit: str, small: float = 0.0, reserve: float = 0.0):
        self.name, self.capacity, self.unit = name, float(capacity), unit
        self.small, self.reserve = float(small), float(reserve)
        self.used = 0.0
        self._lock = threading.Lock()

    def try_take(self, amount: float) -> bool:
        """Take ``amount`` if it fits (a large taker may not use the reserve); False otherwise."""
        limit = self.capacity if amount <= self.small else self.capacity - self.reserve
        with self._lock:
            if amount > 0 and self.used + amount > limit:
                return False
            self.used += amount
            return True

    def give(self, amount: float) -> None:
        with self._lock:
            self.used = max(0.0, self.used - amount)

    def take(self, amount: float, what: str) -> float:
        """``amount`` taken, or a 429 saying which budget is full."""
        if not self.try_take(amount):
            raise ApiError(429, "busy", f"the server is busy: {what} needs {_fmt(amount, self.unit)} of {self.name} "
                                        f"and {_fmt(self.capacity - self.used, self.unit)} of "
                                        f"{_fmt(self.capacity, self.unit)} is free; retry later",
                           {"Retry-After": "1"})
        return amount


def decode_cost(samples: int) -> float:
    """The work of decoding ``samples`` input samples (frames x channels, at the file's own rate)."""
    return DECODE_COST * max(0, samples) / DECODE_UNIT


def check_request_cost(cost: float, limit: float, what: str) -> None:
    if cost > limit:
        raise ApiError(413, "too_costly", f"{what} costs {cost:.0f} s of work (audio-equivalent); the limit per "
                                          f"request is {limit:g} s (--max-request-cost)")


def timeline_windows(seconds: float, window: float, hop: float) -> int:
    """Windows a timeline of ``seconds`` gets (the last one aligned to the end): what its cost is counted from."""
    return 1 if seconds <= window else math.ceil((seconds - window) / hop) + 1


def _fmt(amount: float, unit: str) -> str:
    return f"{amount / 2**20:.1f} MiB" if unit == "bytes" else f"{amount:.0f} {unit}"
