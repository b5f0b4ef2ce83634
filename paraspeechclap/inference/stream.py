"""Long files as a stream: the whole-clip statistics in one streamed pass, the windows in a second one.

A file longer than ``STREAM_SECONDS`` is never held whole, not even at 16 kHz: the first pass (in a decode worker)
counts its samples and accumulates the mean and variance that whole-clip normalisation needs; the second pass (as
the encoder asks for windows) decodes it again, keeps at most one window plus one decoder block, and hands out each
window normalised with the whole clip's statistics. The windows are those :func:`plan.window_spans` gives for the
whole clip and the samples are the same (the same streamed decoder), so the result equals embedding the decoded
array within float32 rounding of the mean and scale. A 2-hour 16 kHz file would otherwise cost 0.46 GB per copy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from ..audio import AudioError, AudioInput, WaveStats, normalize_with, stream_audio

STREAM_SECONDS = 300.0  # files longer than this are streamed twice instead of decoded whole


@dataclass(frozen=True)
class LongAudio:
    """A file measured by the first pass: where to read it again, its length at the engine's rate, its statistics."""

    source: AudioInput
    name: str
    samples: int
    mean: np.float32
    scale: np.float32


def measure(source: AudioInput, sampling_rate: int, name: str, stop: Callable[[], None] | None = None) -> LongAudio:
    """The first pass: samples at ``sampling_rate`` and the whole clip's mean and scale. ``stop()``, if given, is
    called after each decoded block and may raise to end the pass early (a server's request that is over)."""
    stats = WaveStats()
    for block in stream_audio(source, sampling_rate, name):
        stats.update(block)
        if stop is not None:
            stop()
    mean, scale = stats.mean_and_scale()
    return LongAudio(source, name, stats.count, mean, scale)


def windows(audio: LongAudio, spans: Sequence[tuple[int, int]], sampling_rate: int,
            normalise: bool = True) -> Iterator[np.ndarray]:
    """The second pass: the samples of each span ``[start, end)`` (in order, starts not decreasing), normalised with
    the whole clip's statistics when ``normalise``. Holds at most the current span plus one decoder block."""
    buffer = np.zeros(0, np.float32)
    offset = 0  # sample index of buffer[0]
    position = seen = 0
    for block in stream_audio(audio.source, sampling_rate, audio.name):
        seen += len(block)
        buffer = np.concatenate([buffer, block])
        while position < len(spans) and spans[position][1] <= offset + len(buffer):
            start, end = spans[position]
            part = buffer[start - offset:end - offset]
            yield normalize_with(part, audio.mean, audio.scale) if normalise else part.copy()
            position += 1
        keep_from = spans[position][0] if position < len(spans) else offset + len(buffer)
        drop = min(max(0, keep_from - offset), len(buffer))
        buffer = buffer[drop:]
        offset += drop
    if seen != audio.samples or position < len(spans):
        raise AudioError(audio.name, f"changed while it was read: {seen} samples on the second pass, "
                                     f"{audio.samples} on the first")
