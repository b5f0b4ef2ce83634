"""Signal augmentation so a model learns the style attribute rather than the synthesizer.

`resample_jitter` is the label-preserving pitch/tempo jitter (applied before verification);
`augment` adds channel effects (EQ/band-limiting, reverberation, noise, level) after it.
"""

from __future__ import annotations

import numpy as np

SR = 16000

#: augmentation strength per split: probabilities and parameter ranges.
PROFILES = {
    "train": {"jitter": 0.04, "p_eq": 0.6, "p_reverb": 0.45, "rt60": (0.12, 0.7), "wet": (0.1, 0.45),
              "p_noise": 0.7, "snr": (12.0, 35.0), "level": (-38.0, -14.0)},
    "validation": {"jitter": 0.04, "p_eq": 0.6, "p_reverb": 0.45, "rt60": (0.12, 0.7), "wet": (0.1, 0.45),
                   "p_noise": 0.7, "snr": (12.0, 35.0), "level": (-38.0, -14.0)},
    "test": {"jitter": 0.02, "p_eq": 0.3, "p_reverb": 0.2, "rt60": (0.1, 0.35), "wet": (0.05, 0.25),
             "p_noise": 0.4, "snr": (22.0, 40.0), "level": (-30.0, -18.0)},
    "none": {"jitter": 0.0, "p_eq": 0.0, "p_reverb": 0.0, "rt60": (0.1, 0.1), "wet": (0.0, 0.0),
             "p_noise": 0.0, "snr": (99.0, 99.0), "level": (-23.0, -23.0)},
}


def resample_jitter(y: np.ndarray, sr_in: int, factor: float, sr_out: int = SR) -> np.ndarray:
    """Resample to `sr_out` while scaling pitch and tempo by `factor` (>1: higher and faster)."""
    import soxr

    return soxr.resample(y.astype(np.float32), sr_in, sr_out / factor, quality="HQ").astype(np.float32)


def _rms_db(y: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(y.astype(np.float64) ** 2) + 1e-12))


def active_rms_db(y: np.ndarray, sr: int = SR) -> float:
    """RMS level (dBFS) over 20 ms frames within 35 dB of the loudest one."""
    hop = sr // 50
    n = max(1, len(y) // hop)
    fr = y[: n * hop].reshape(n, hop).astype(np.float64)
    e = np.mean(fr ** 2, axis=1) + 1e-12
    db = 10 * np.log10(e)
    keep = db > db.max() - 35
    return float(10 * np.log10(e[keep].mean()))


def colored_noise(n: int, rng: np.random.Generator, color: str) -> np.ndarray:
    """White, pink (1/f) or brown (1/f^2) noise of unit RMS."""
    white = rng.standard_normal(n)
    if color == "white":
        x = white
    else:
        spec = np.fft.rfft(white)
        f = np.fft.rfftfreq(n)
        f[0] = f[1] if n > 1 else 1.0
        spec = spec / (np.sqrt(f) if color == "pink" else f)
        x = np.fft.irfft(spec, n)
    return (x / (np.sqrt(np.mean(x ** 2)) + 1e-12)).astype(np.float32)


def add_noise(y: np.ndarray, rng: np.random.Generator, snr_db: float, color: str) -> np.ndarray:
    noise = colored_noise(len(y), rng, color)
    gain = 10 ** ((active_rms_db(y) - snr_db) / 20)
    return (y + gain * noise).astype(np.float32)


def reverberate(y: np.ndarray, rng: np.random.Generator, rt60: float, wet: float, sr: int = SR) -> np.ndarray:
    """Convolve with a synthetic room response: a direct path plus exponentially decaying noise."""
    from scipy.signal import fftconvolve

    n = int(sr * min(1.2, rt60 * 1.2)) + 1
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)     # -60 dB at rt60
    tail[: int(0.003 * sr)] = 0.0                                    # pre-delay of the tail
    tail /= np.sqrt(np.sum(tail ** 2)) + 1e-12
    ir = wet * tail
    ir[0] += 1.0 - wet
    out = fftconvolve(y, ir)[: len(y)]
    return out.astype(np.float32)


def equalize(y: np.ndarray, rng: np.random.Generator, sr: int = SR) -> tuple[np.ndarray, dict]:
    """Random band-limiting (telephone-like to wide band) and a spectral tilt."""
    from scipy.signal import butter, sosfilt

    params: dict = {}
    if rng.random() < 0.6:
        lo = float(rng.uniform(60, 300))
        params["highpass_hz"] = round(lo, 1)
        y = sosfilt(butter(2, lo, btype="highpass", fs=sr, output="sos"), y)
    if rng.random() < 0.6:
        hi = float(rng.uniform(3400, 7600))
        params["lowpass_hz"] = round(hi, 1)
        y = sosfilt(butter(4, hi, btype="lowpass", fs=sr, output="sos"), y)
    if rng.random() < 0.5:
        # first-order tilt: mix of the signal and its high-passed part (+-6 dB above ~1.5 kHz)
        g = float(rng.uniform(-0.5, 1.0))
        params["tilt"] = round(g, 3)
        hp = sosfilt(butter(1, 1500, btype="highpass", fs=sr, output="sos"), y)
        y = y + g * hp
    return np.asarray(y, dtype=np.float32), params


def augment(y: np.ndarray, rng: np.random.Generator, profile: str, sr: int = SR) -> tuple[np.ndarray, dict]:
    """Apply the channel augmentations of `profile` ("train" | "validation" | "test" | "none")."""
    p = PROFILES[profile]
    params: dict = {}
    y = y.astype(np.float32)
    if rng.random() < p["p_eq"]:
        y, eq = equalize(y, rng, sr)
        params.update(eq)
    if rng.random() < p["p_reverb"]:
        rt60, wet = float(rng.uniform(*p["rt60"])), float(rng.uniform(*p["wet"]))
        params.update(rt60_s=round(rt60, 3), reverb_wet=round(wet, 3))
        y = reverberate(y, rng, rt60, wet, sr)
    if rng.random() < p["p_noise"]:
        snr = float(rng.uniform(*p["snr"]))
        color = str(rng.choice(["white", "pink", "brown"]))
        params.update(snr_db=round(snr, 2), noise=color)
        y = add_noise(y, rng, snr, color)
    target = float(rng.uniform(*p["level"]))
    y = y * 10 ** ((target - active_rms_db(y, sr)) / 20)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 0.98:                       # never clip: lower the level instead
        y = y * (0.98 / peak)
    params["level_target_dbfs"] = round(target, 2)
    return y.astype(np.float32), params
