"""What the export checks its graphs on: seeded speech-like probe clips and style captions, and how agreement with the
torch engine is measured (centred cosines, as the benchmarks measure bf16 and int8 against fp32)."""
from __future__ import annotations

import numpy as np

PROBE_SECONDS = (0.7, 1.3, 1.9, 2.6, 3.2, 4.1)
PROBE_TEXTS = ("A person is speaking in a calm style.", "A woman whispers in a high-pitched, breathy voice.",
               "The speaker sounds angry and talks fast with a loud, booming voice.", "a deep, slow voice",
               "A man speaks in a cheerful, animated style.", "A person is speaking in a sad style.")


def probe_clips(sampling_rate: int = 16000, seed: int = 0) -> list[np.ndarray]:
    """Harmonic tones with a moving pitch, syllable-rate loudness and breath noise, one per ``PROBE_SECONDS``."""
    rng = np.random.default_rng(seed)
    clips = []
    for seconds in PROBE_SECONDS:
        t = np.arange(int(seconds * sampling_rate)) / sampling_rate
        f0 = rng.uniform(90, 260) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.3, 1.5) * t))
        phase = 2 * np.pi * np.cumsum(f0) / sampling_rate
        voice = sum(np.sin(k * phase) / k for k in range(1, 8))
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 6) * t) ** 2
        clips.append((0.3 * voice * envelope + 0.02 * rng.standard_normal(len(t))).astype(np.float32))
    return clips


def probe_texts() -> list[str]:
    return list(PROBE_TEXTS)


def agreement(reference: np.ndarray, other: np.ndarray) -> dict:
    """Rows of ``other`` against ``reference``, both centred on the reference mean (with random or tiny models every
    raw embedding points nearly the same way, so the centred cosine is the one that tells rows apart): the smallest
    centred cosine, the largest absolute difference, and how many rows keep themselves as nearest neighbour."""
    reference, other = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)  # noqa: E731
    mean = reference.mean(axis=0, keepdims=True)
    centred_ref, centred_other = unit(reference - mean), unit(other - mean)
    kept = int(((centred_other @ centred_ref.T).argmax(axis=1) == np.arange(len(reference))).sum())
    return {"max_abs_diff": float(np.abs(reference - other).max()),
            "centred_min_cos": float((centred_ref * centred_other).sum(axis=1).min()),
            "nn_kept": kept, "nn_preserved": kept == len(reference)}
