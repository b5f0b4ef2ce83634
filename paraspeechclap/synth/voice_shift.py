"""Pitch, tempo and channel changes of recorded speech (real-speech augmentation and the real-speech checks).

- :func:`sox_pitch`: sox ``pitch`` (WSOLA + resampling): F0 *and* formants move together, tempo kept.
- :func:`world_pitch`: WORLD vocoder resynthesis (pyworld) with F0 scaled and the spectral envelope kept:
  formants stay where they were (a different larynx, same vocal tract).
- :func:`sox_tempo`: sox ``tempo -s`` (speech-tuned WSOLA): rate changes, pitch kept.
- :func:`telephone_band` (300-3400 Hz) and :func:`low_pass`: band-limiting.

All take and return 16 kHz mono float32 arrays.
"""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np

SR = 16000


def _sox(y: np.ndarray, effect: list[str], sr: int = SR) -> np.ndarray:
    raw = ["-t", "raw", "-e", "float", "-b", "32", "-c", "1", "-r", str(sr)]
    out = subprocess.run(["sox", *raw, "-", *raw, "-", *effect], input=np.asarray(y, np.float32).tobytes(),
                         check=True, capture_output=True).stdout
    return np.frombuffer(out, dtype=np.float32).copy()


def sox_pitch(y: np.ndarray, cents: float) -> np.ndarray:
    """Shift pitch (and formants) by ``cents`` at constant tempo."""
    return _sox(y, ["pitch", f"{cents:.1f}"]) if cents else np.asarray(y, np.float32)


def sox_tempo(y: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (>1) or slower (<1) at constant pitch."""
    return _sox(y, ["tempo", "-s", f"{factor:.4f}"]) if factor != 1.0 else np.asarray(y, np.float32)


def import_pyworld():
    """``import pyworld``; its ``__init__`` still asks pkg_resources for its version, which new setuptools lack."""
    try:
        import pyworld
    except ModuleNotFoundError as err:
        if err.name != "pkg_resources":
            raise
        stub = types.ModuleType("pkg_resources")
        stub.get_distribution = lambda name: types.SimpleNamespace(version="unknown")
        sys.modules["pkg_resources"] = stub
        import pyworld
    return pyworld


def world_analyse(y: np.ndarray, sr: int = SR, frame_period: float = 5.0):
    """(f0, spectral envelope, aperiodicity) of ``y`` (DIO + StoneMask, CheapTrick, D4C)."""
    pw = import_pyworld()
    x = np.asarray(y, np.float64)
    f0, t = pw.dio(x, sr, f0_floor=55.0, f0_ceil=600.0, frame_period=frame_period)
    f0 = pw.stonemask(x, f0, t, sr)
    return f0, pw.cheaptrick(x, f0, t, sr), pw.d4c(x, f0, t, sr), frame_period


def world_pitch(y: np.ndarray, cents: float, analysis=None, sr: int = SR) -> np.ndarray:
    """Resynthesise with F0 scaled by ``cents`` and the spectral envelope (formants) unchanged.

    ``cents=0`` still goes through the vocoder, so versions of one clip share its artefacts. Pass ``analysis``
    (from :func:`world_analyse`) to shift one clip several times without re-analysing it.
    """
    pw = import_pyworld()
    f0, sp, ap, frame_period = analysis if analysis is not None else world_analyse(y, sr)
    out = pw.synthesize(f0 * 2.0 ** (cents / 1200.0), sp, ap, sr, frame_period)
    peak = np.abs(out).max() + 1e-9
    out = out * min(1.0, 0.99 / peak)
    return out.astype(np.float32)


def _sos_filter(y: np.ndarray, sos) -> np.ndarray:
    from scipy.signal import sosfiltfilt

    return sosfiltfilt(sos, np.asarray(y, np.float64)).astype(np.float32)


def telephone_band(y: np.ndarray, low: float = 300.0, high: float = 3400.0, sr: int = SR) -> np.ndarray:
    """Band-pass to the telephone band (4th-order Butterworth, zero phase)."""
    from scipy.signal import butter

    return _sos_filter(y, butter(4, [low, high], btype="bandpass", fs=sr, output="sos"))


def low_pass(y: np.ndarray, cutoff: float, sr: int = SR) -> np.ndarray:
    from scipy.signal import butter

    return _sos_filter(y, butter(6, cutoff, btype="lowpass", fs=sr, output="sos"))


def trim_silence(y: np.ndarray, sr: int = SR, range_db: float = 40.0, pad_s: float = 0.1) -> np.ndarray:
    """Cut leading/trailing frames more than ``range_db`` below the loudest 20 ms frame (keeps ``pad_s``)."""
    hop = sr // 50
    n = len(y) // hop
    if n < 3:
        return y
    e = 10 * np.log10(np.mean(y[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1) + 1e-12)
    on = np.flatnonzero(e > e.max() - range_db)
    start = max(0, on[0] * hop - int(pad_s * sr))
    end = min(len(y), (on[-1] + 1) * hop + int(pad_s * sr))
    return y[start:end]


def praat_pitch(y: np.ndarray, cents: float, sr: int = SR) -> np.ndarray:
    """Praat PSOLA ("Change gender", formant shift ratio 1): F0 scaled by ``cents``, formants and tempo kept.

    The fallback of :func:`formant_kept_pitch` where pyworld is not installed (parselmouth is: the synth extra).
    """
    import parselmouth
    from parselmouth.praat import call

    snd = parselmouth.Sound(np.asarray(y, np.float64), sampling_frequency=sr)
    pitch = snd.to_pitch_ac(time_step=0.01, pitch_floor=60.0, pitch_ceiling=500.0)
    median = call(pitch, "Get quantile", 0, 0, 0.5, "Hertz")
    if not np.isfinite(median) or median <= 0:
        return np.asarray(y, np.float32)
    out = call(snd, "Change gender", 60.0, 500.0, 1.0, float(median) * 2.0 ** (cents / 1200.0), 1.0, 1.0)
    z = np.asarray(out.values[0], dtype=np.float32)
    peak = np.abs(z).max() + 1e-9
    return z * min(1.0, 0.99 / peak)


def have_world() -> bool:
    try:
        import_pyworld()
    except ImportError:
        return False
    return True


def formant_kept_pitch(y: np.ndarray, cents: float, analysis=None, sr: int = SR) -> np.ndarray:
    """F0 scaled by ``cents`` with formants kept: WORLD when pyworld is installed, else Praat PSOLA."""
    if have_world():
        return world_pitch(y, cents, analysis, sr)
    return praat_pitch(y, cents, sr)
