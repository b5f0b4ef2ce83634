"""Audio front end: decode, resample, downmix, normalise, pad and window.

This is the one place that knows about sample rates. Everything downstream receives 16 kHz mono float32.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence, Tuple, Union

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


BLOCK_SECONDS = 20.0  # a file is read this much at a time (at its own rate), mixed and resampled as a stream ...
BLOCK_BYTES = 8 * 2**20  # ... and at most this many bytes of float32 input per block, whatever its rate and channels
MAX_SAMPLE_RATE = 384_000  # the highest rate a file or array may declare (the highest any common format uses)
MAX_CHANNELS = 32  # the most channels a file or array may have


def block_frames(rate: int, channels: int, block_seconds: float = BLOCK_SECONDS) -> int:
    """Input frames per decoded block: ``block_seconds`` at ``rate``, but never more than :data:`BLOCK_BYTES` of
    float32 input, so one block stays a few MB for any rate and channel count."""
    return max(1, min(int(block_seconds * rate), BLOCK_BYTES // (4 * max(1, channels))))


def check_format(name: str, rate: int, channels: int, max_rate: int = MAX_SAMPLE_RATE,
                 max_channels: int = MAX_CHANNELS) -> None:
    """Raise :class:`AudioError` for a sample rate or channel count over the ceilings (before anything is decoded)."""
    if rate > max_rate:
        raise AudioError(name, f"sample rate {rate} Hz is over the limit of {max_rate} Hz")
    if channels > max_channels:
        raise AudioError(name, f"{channels} channels is over the limit of {max_channels}")


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
    check_format(name, int(rate), array.shape[1] if array.ndim == 2 else 1)
    return array, int(rate)


class _ViewFile(io.RawIOBase):
    """A read-only, seekable file over a buffer, without copying it (what soundfile reads bytearrays through)."""

    def __init__(self, data: bytearray):
        self._view, self._position = memoryview(data), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = max(0, min(len(buffer), len(self._view) - self._position))
        buffer[:count] = self._view[self._position:self._position + count]
        self._position += count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        self._view.release()
        super().close()


def _open(source: AudioInput, name: str):
    """A soundfile.SoundFile over a path or bytes; raises AudioError for what cannot be opened."""
    import soundfile as sf

    if isinstance(source, bytes):
        handle: object = io.BytesIO(source)   # shares the bytes (no copy until written)
    elif isinstance(source, bytearray):
        handle = _ViewFile(source)            # BytesIO would copy it
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
        opened = sf.SoundFile(handle)
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        # libsndfile's own words, not its "Error opening <_io.BytesIO object at 0x...>" (``name`` says which input)
        reason = getattr(err, "error_string", None) or str(err).replace(repr(handle), "the file")
        raise AudioError(name, f"unreadable or corrupt audio ({reason.strip()})") from None
    try:
        if int(opened.samplerate) <= 0:
            raise AudioError(name, f"sample rate must be positive, got {opened.samplerate}")
        check_format(name, int(opened.samplerate), int(opened.channels))
    except AudioError:
        opened.close()
        raise
    return opened


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says: frames (0 when it does not say), sample rate and channels."""

    frames: int
    rate: int
    channels: int

    @property
    def seconds(self) -> float | None:
        return self.frames / self.rate if self.frames > 0 and self.rate > 0 else None


def file_info(source: AudioInput, name: str | None = None) -> AudioInfo | None:
    """The header of a path or bytes input (None for arrays); raises :class:`AudioError` for what cannot be opened
    or is over the rate and channel ceilings."""
    if not isinstance(source, (str, os.PathLike, bytes, bytearray)):
        return None
    with _open(source, name or describe(source)) as handle:
        return AudioInfo(max(0, int(handle.frames)), int(handle.samplerate), int(handle.channels))


def file_seconds(source: AudioInput, name: str | None = None) -> float | None:
    """Duration of a path or bytes input from its header (None for arrays, or when the header does not say);
    raises :class:`AudioError` for what cannot be opened."""
    info = file_info(source, name)
    return None if info is None else info.seconds


def _mono(block: np.ndarray) -> np.ndarray:
    """Frames x channels to mono, the channels' mean (summed along each frame by einsum: numpy's mean over the
    short channel axis is several times slower, and the sum of two or three channels rounds as it does)."""
    if block.ndim != 2:
        return block
    return np.einsum("ij->i", block, dtype=np.float32, casting="unsafe") / np.float32(block.shape[1])


def _check_finite(block: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(block)):
        raise AudioError(name, "contains NaN or Inf samples")


def stream_audio(source: AudioInput, sampling_rate: int = TARGET_SAMPLE_RATE, name: str | None = None,
                 block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """Mono float32 blocks at ``sampling_rate`` of a file (path or bytes): read ``block_seconds`` at a time at the
    file's own rate (at most :data:`BLOCK_BYTES` of input, see :func:`block_frames`), mixed to mono and resampled
    with soxr's streaming resampler, so the file is never held whole. Concatenated, the blocks are exactly what
    :func:`load_audio` returns. Raises :class:`AudioError` (unreadable, non-finite or zero-length audio) when it
    meets the problem."""
    name = name or describe(source)
    total = 0
    with _open(source, name) as handle:
        rate = int(handle.samplerate)
        stream = None
        if rate != sampling_rate:
            import soxr

            stream = soxr.ResampleStream(rate, sampling_rate, 1, dtype="float32", quality="HQ")
        try:
            frames = block_frames(rate, int(handle.channels), block_seconds)
            for block in handle.blocks(blocksize=frames, dtype="float32", always_2d=True):
                mono = _mono(block)
                _check_finite(mono, name)
                out = stream.resample_chunk(mono) if stream is not None else mono.copy()
                if len(out):
                    total += len(out)
                    yield out
        except AudioError:
            raise
        except Exception as err:  # what the decoder or resampler raised (the consumer's errors never come in here)
            raise AudioError(name, f"unreadable or corrupt audio ({err})") from None
        if stream is not None:
            out = stream.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(out):
                total += len(out)
                yield out
    if total == 0:
        raise AudioError(name, "zero-length audio")


def load_audio(source: AudioInput, sampling_rate: int = TARGET_SAMPLE_RATE, name: str | None = None,
               block_seconds: float = BLOCK_SECONDS, stop: Callable[[], None] | None = None) -> np.ndarray:
    """Decode ``source`` (path, bytes or ``(array, rate)``) to mono float32 at ``sampling_rate``.

    Channels are averaged; resampling uses soxr (HQ). Files are streamed in blocks of ``block_seconds`` at their
    own rate, so memory holds the 16 kHz mono result, not the whole file at 48 kHz stereo; ``stop()``, if given, is
    called after each block and may raise to end the decoding early. Raises :class:`AudioError` for unreadable,
    empty or non-finite audio. Silence is valid.
    """
    name = name or describe(source)
    if not isinstance(source, tuple):
        pieces = []
        for block in stream_audio(source, sampling_rate, name, block_seconds):
            pieces.append(block)
            if stop is not None:
                stop()
        return np.ascontiguousarray(np.concatenate(pieces), dtype=np.float32)
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
    return normalize_with(wave, wave.mean(), np.sqrt(wave.var() + eps))


def normalize_with(wave: np.ndarray, mean: np.float32, scale: np.float32) -> np.ndarray:
    """``(wave - mean) / scale`` in float32: a part of an utterance normalised with the whole utterance's statistics
    (:func:`normalize_waveform`, :class:`WaveStats`)."""
    return ((np.asarray(wave, dtype=np.float32) - mean) / scale).astype(np.float32)


class WaveStats:
    """Mean and scale of an utterance seen block by block (float64 sums around the first block's mean, so a DC offset
    costs no precision): what :func:`normalize_waveform` computes on the whole array, within float32 rounding."""

    def __init__(self) -> None:
        self.count = 0
        self._shift: float | None = None
        self._sum = self._squares = 0.0

    def update(self, block: np.ndarray) -> None:
        if len(block) == 0:
            return
        values = np.asarray(block, dtype=np.float64)
        if self._shift is None:
            self._shift = float(values.mean())
        values = values - self._shift
        self.count += len(values)
        self._sum += float(values.sum())
        self._squares += float(np.dot(values, values))

    def mean_and_scale(self, eps: float = 1e-7) -> tuple[np.float32, np.float32]:
        if self.count == 0:
            raise ValueError("no samples seen")
        offset = self._sum / self.count
        variance = max(self._squares / self.count - offset * offset, 0.0)
        return np.float32(self._shift + offset), np.float32(np.sqrt(np.float32(variance) + np.float32(eps)))


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
