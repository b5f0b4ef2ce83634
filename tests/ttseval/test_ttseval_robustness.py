"""The robustness set's perturbations: deterministic, what they say they are, and caught by the gates they should be."""
from __future__ import annotations

import numpy as np
import pytest

from paraspeechclap.ttseval.gates import apply, packaged_gates
from paraspeechclap.ttseval.robustness import PERTURBATIONS, perturb

RATE = 16000


def _wave(seconds: float = 1.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.2 * np.sin(2 * np.pi * 150 * t) * np.clip(np.sin(2 * np.pi * 2 * t), 0, None)).astype(np.float32)


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_each_perturbation_is_deterministic_float32(name):
    wave = _wave()
    a, b = perturb(name, wave, RATE, seed=3), perturb(name, wave, RATE, seed=3)
    assert a.dtype == np.float32 and np.array_equal(a, b) and np.all(np.isfinite(a))
    assert not (len(a) == len(wave) and np.array_equal(a, wave))


def test_perturbations_do_what_they_say():
    wave = _wave()
    assert np.array_equal(perturb("time_reversal", wave, RATE, 0), wave[::-1])
    assert len(perturb("silence_pad_2s", wave, RATE, 0)) == len(wave) + 4 * RATE
    assert len(perturb("repeat_x3", wave, RATE, 0)) == 3 * len(wave)
    assert len(perturb("stutter_250ms", wave, RATE, 0)) == 2 * len(wave)
    assert np.max(np.abs(perturb("clipping_x4", wave, RATE, 0))) == pytest.approx(1.0)
    noisy = perturb("noise_10db", wave, RATE, 0)
    snr = 10 * np.log10(np.mean(wave.astype(np.float64) ** 2) / np.mean((noisy - wave).astype(np.float64) ** 2))
    assert snr == pytest.approx(10.0, abs=0.5)
    assert not np.array_equal(noisy, perturb("noise_10db", wave, RATE, 1))


def test_the_gates_catch_the_artefacts_they_are_meant_to():
    gates = packaged_gates()
    wave, text = _wave(3.0), "The old farmer painted the red door."
    flagged = {name: apply(perturb(name, wave, RATE, 0)[:, None], RATE, gates, text).flags for name in PERTURBATIONS}
    assert "clipping" in flagged["clipping_x4"] and "clipping" in flagged["loudness_max"]
    assert flagged["time_reversal"] == [] and flagged["silence_pad_2s"] == []
