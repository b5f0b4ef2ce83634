"""Audio front end: decode, resample, downmix, normalise, pad and window.

This is the one place that knows about sample rates. Everything downstream receives 16 kHz mono float32.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence, Tuple, Union

import numpy as np

TARGET_SAMPLE_RATE = 16000

AudioInput = Union[str, os.PathLike, bytes, Tuple[np.ndarray, int]]


class AudioError(ValueError):
    """An audio input that cannot be used; the message names the input and the problem."""

    def __init__(self, name: str, problem: str):
        self.name = name
        self.problem = problem
        super().__init__(f"{name}: {problem}")


def describe(source: object) -> str:
    """A short human-readable name for an audio input, used in error messages."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, tuple) and len(source) == 2:
        array = np.asarray(source[0])
        return f"<array shape={tuple(array.shape)} sr={source[1]}>"
    return f"<{type(source).__name__}>"


BLOCK_SECONDS = 20.0  # a file is read this much at a time (at its own rate), mixed and resampled as a stream


def _array_input(source: tuple, name: str) -> tuple[np.ndarray, int]:
    if len(source) != 2:
        raise AudioError(name, "expected an (array, sample_rate) pair")
    array, rate = source
    try:
        array = np.asarray(array, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise AudioError(name, f"array is not numeric ({err})") from None
    if not isinstance(rate, (int, np.integer)) or int(rate) <= 0:
        raise AudioError(name, f"sample rate must be a positive integer, got {rate!r}")
    if array.ndim == 2 and array.shape[0] <= 8 < array.shape[1]:
        array = array.T  # (channels, samples) -> (samples, channels)
    if array.ndim not in (1, 2):
        raise AudioError(name, f"array must be 1-D (samples) or 2-D (samples, channels), got shape {array.shape}")
    return array, int(rate)


def _open(source: AudioInput, name: str):
    """A soundfile.SoundFile over a path or bytes; raises AudioError for what cannot be opened."""
    import soundfile as sf

    if isinstance(source, (bytes, bytearray)):
        handle: object = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise AudioError(name, "file not found")
        if path.is_dir():
            raise AudioError(name, "is a directory, not an audio file")
        handle = str(path)
    else:
        raise AudioError(name, "unsupported audio input type; give a path, bytes or an (array, sample_rate) pair")
    try:
        return sf.SoundFile(handle)
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioError(name, f"unreadable or corrupt audio ({err})") from None


def _mono(block: np.ndarray) -> np.ndarray:
    return block.mean(axis=1, dtype=np.float32) if block.ndim == 2 else block


def _check_finite(block: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(block)):
        raise AudioError(name, "contains NaN or Inf samples")


def _stream_file(source: AudioInput, sampling_rate: int, name: str, block_seconds: float) -> np.ndarray:
    """Read a file block by block, mix each block to mono and resample it with soxr's streaming resampler: the
    file is never held whole at its original rate or channel count."""
    with _open(source, name) as handle:
        rate = int(handle.samplerate)
        stream = None
        if rate != sampling_rate:
            import soxr

            stream = soxr.ResampleStream(rate, sampling_rate, 1, dtype="float32", quality="HQ")
        pieces: list[np.ndarray] = []
        blocksize = max(1, int(block_seconds * rate))
        try:
            for block in handle.blocks(blocksize=blocksize, dtype="float32", always_2d=True):
                mono = _mono(block)
                _check_finite(mono, name)
                pieces.append(stream.resample_chunk(mono) if stream is not None else mono.copy())
        except AudioError:
            raise
        except Exception as err:
            raise AudioError(name, f"unreadable or corrupt audio ({err})") from None
        if stream is not None:
            pieces.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    if not pieces or sum(len(p) for p in pieces) == 0:
        raise AudioError(name, "zero-length audio")
    return np.concatenate(pieces).astype(np.float32, copy=False)


def load_audio(source: AudioInput, sampling_rate: int = TARGET_SAMPLE_RATE, name: str | None = None,
               block_seconds: float = BLOCK_SECONDS) -> np.ndarray:
    """Decode ``source`` (path, bytes or ``(array, rate)``) to mono float32 at ``sampling_rate``.

    Channels are averaged; resampling uses soxr (HQ). Files are streamed in blocks of ``block_seconds`` at their
    own rate, so memory holds the 16 kHz mono result, not the whole file at 48 kHz stereo. Raises
    :class:`AudioError` for unreadable, empty or non-finite audio. Silence is valid.
    """
    name = name or describe(source)
    if not isinstance(source, tuple):
        return np.ascontiguousarray(_stream_file(source, sampling_rate, name, block_seconds))
    array, rate = _array_input(source, name)
    array = _mono(array)
    if array.size == 0:
        raise AudioError(name, "zero-length audio")
    _check_finite(array, name)
    if rate != sampling_rate:
        import soxr

        array = soxr.resample(array, rate, sampling_rate, quality="HQ").astype(np.float32, copy=False)
        if array.size == 0:
            raise AudioError(name, "zero-length audio after resampling")
    return np.ascontiguousarray(array, dtype=np.float32)


def normalize_waveform(wave: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Per-utterance zero mean / unit variance (population variance, eps inside the square root).

    Identical to ``Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm`` for one unpadded utterance.
    """
    wave = np.asarray(wave, dtype=np.float32)
    return ((wave - wave.mean()) / np.sqrt(wave.var() + eps)).astype(np.float32)


def pad_batch(waves: Sequence[np.ndarray], padding_value: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad 1-D waveforms into one ``[B, L]`` float32 batch with an int64 mask (1 = real sample)."""
    if len(waves) == 0:
        raise ValueError("pad_batch needs at least one waveform")
    longest = max(len(w) for w in waves)
    values = np.full((len(waves), longest), padding_value, dtype=np.float32)
    mask = np.zeros((len(waves), longest), dtype=np.int64)
    for row, wave in enumerate(waves):
        values[row, : len(wave)] = wave
        mask[row, : len(wave)] = 1
    return values, mask
