"""A small paper-shaped model (the WavLM-Large conv stack under 4 x 256 layers, the fixture's text tower: the
benchmark harness's ``small`` kind), speech-like clips and the centred agreement metric, for the kernels tests that
hold whole paths to the stock fp32 reference."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np

from paraspeechclap.prompts import DEFAULT_TEMPLATE, fill_template

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
H = importlib.import_module("harness")

PROMPTS = [fill_template(DEFAULT_TEMPLATE, tag) for tag in H.STYLE_TAGS[:11]]


def small_model(precision: str):
    """The small paper-shaped model, seed 0, prepared on CPU in ``precision`` (never ``auto``)."""
    return H.build_model("small", precision, seed=0, device="cpu")


def clips(count: int = 6, seed: int = 1) -> list[np.ndarray]:
    """Harmonic, syllable-modulated clips of 0.5-2 s (speech-like enough to tell apart)."""
    rng = np.random.default_rng(seed)
    out = []
    for seconds in rng.uniform(0.5, 2.0, size=count):
        t = np.arange(int(seconds * 16000)) / 16000
        f0 = rng.uniform(90, 230) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t))
        phase = 2 * np.pi * np.cumsum(f0) / 16000
        wave = sum(np.sin(k * phase) / k for k in range(1, 12)) * np.clip(np.sin(2 * np.pi * rng.uniform(3, 6) * t), 0, None)
        out.append((0.1 * wave / np.abs(wave).max() + 0.002 * rng.standard_normal(len(t))).astype(np.float32))
    return out


def centred(reference: np.ndarray, other: np.ndarray) -> tuple[float, bool]:
    """Minimum centred cosine to the reference and whether every row's nearest centred reference row is its own."""
    agreement = H.agreement(reference, other)
    return agreement["centred_min_cos"], agreement["nn_preserved"]
