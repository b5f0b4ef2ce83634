"""The embedded `mini` model on recorded human voices: raising a voice never makes it sound deeper.

Recordings: Debian's ``fillets-ng-data-nl`` (the Dutch voice actors of the game Fish Fillets NG: the big fish, a man
at ~130 Hz, and the small fish, a woman at ~210 Hz), installed by ``scripts/install_synth_deps.sh``. Both speakers
are held out of `mini`'s training (``scripts/real_speech.py: HELDOUT``). Skipped where the package is missing.

Each clip is shifted by -500..+500 cents in 5 steps, with formants moving along (sox ``pitch``) and with formants
kept (WORLD resynthesis when pyworld is installed, else Praat PSOLA). Pitch words are gender-relative (as in the
corpus and ParaSpeechCaps), so the absolute checks use formant-kept shifts, which keep the speaker recognisable: a
man lowered 5 semitones is a deep man, raised 5 a high-pitched man; likewise for the woman.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from paraspeechclap import load_audio

FILLETS_NL = Path("/usr/share/games/fillets-ng/sound")
CLIPS = {
    "male": ["kitchen/nl/kuch-v-obavam.ogg", "reef/nl/uts-v-sam.ogg"],
    "female": ["snowman/nl/tr-m-chlad1.ogg", "turtle/nl/zel-m-tazelva.ogg"],
}
CENTS = [-500, -250, 0, 250, 500]
TEMPLATE = "A person is speaking in a {} style."
needs_recordings = pytest.mark.skipif(
    not all((FILLETS_NL / c).is_file() for clips in CLIPS.values() for c in clips) or shutil.which("sox") is None,
    reason="needs sox and Debian's fillets-ng-data-nl (scripts/install_synth_deps.sh)")


@pytest.fixture(scope="module")
def mini():
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    from paraspeechclap import ParaSpeechCLAP

    yield ParaSpeechCLAP.from_pretrained("mini", device="cpu", precision="fp32")
    mp.undo()


def shifted(gender: str, method: str) -> list[list[np.ndarray]]:
    """Per clip: the versions at CENTS."""
    from paraspeechclap.synth.voice_shift import formant_kept_pitch, sox_pitch, trim_silence

    out = []
    for clip in CLIPS[gender]:
        y = trim_silence(load_audio(FILLETS_NL / clip))
        shift = sox_pitch if method == "sox" else formant_kept_pitch
        out.append([shift(y, c if c else 1e-3) for c in CENTS])
    return out


def deep_minus_high(model, waves: list[np.ndarray]) -> np.ndarray:
    sims = model.embed_waveforms(waves) @ model.embed_prompts(["deep", "high-pitched"], TEMPLATE).T
    return sims[:, 0] - sims[:, 1]


# Measured with the shipped `mini` (stage 2: the soup of three fine-tunes with the order loss on recorded speech of
# other speakers, MODEL_CARD.md), pyworld installed:
#   male sox:         deep - high at -500..+500 cents [0.512 0.267 0.055 -0.048 -0.152], [0.473 0.334 0.23 -0.058 -0.14]
#   male formants:    [0.417 0.179 0.026 -0.055 -0.117], [0.529 0.202 0.194 -0.113 -0.282] (the closest step: 0.008)
#   female sox:       [0.095 -0.122 -0.243 -0.289 -0.624], [0.044 -0.225 -0.268 -0.681 -0.695]
#   female formants:  [0.047 -0.201 -0.322 -0.491 -0.756], [0.059 -0.128 -0.327 -0.513 -0.666]
# (the synthetic-only stage 1 was monotone on none of these; scripts/eval_real_speech.py: MODEL_CARD.md)


@needs_recordings
@pytest.mark.parametrize("method", ["sox", "formants-kept"])
@pytest.mark.parametrize("gender", ["male", "female"])
def test_raising_a_real_voice_never_makes_it_deeper(mini, gender, method):
    for versions in shifted(gender, method):
        score = deep_minus_high(mini, versions)
        assert (np.diff(score) < 0).all(), f"deep - high-pitched at {CENTS} cents: {np.round(score, 4)}"


@needs_recordings
@pytest.mark.parametrize("gender", ["male", "female"])
def test_real_voice_lowered_is_deep_and_raised_is_high(mini, gender):
    for versions in shifted(gender, "formants-kept"):
        score = deep_minus_high(mini, [versions[0], versions[-1]])
        assert score[0] > 0 > score[1], f"{gender}: deep - high-pitched at -500 / +500 cents: {np.round(score, 4)}"


def _harmonic(f0: float, seconds: float = 1.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    wave = sum(np.sin(2 * np.pi * k * f0 * (1 + 0.02 * np.sin(2 * np.pi * 3 * t)) * t) / k
               for k in range(1, int(3800 / f0)))
    return (0.1 * wave).astype(np.float32)


@pytest.mark.parametrize("band", ["full", "telephone"])
def test_pitch_stats_front_end_rises_with_f0(band):
    """mel-mini-f0's log-F0 channels (last 4) increase with F0, also without the fundamental (300-3400 Hz)."""
    import torch

    from paraspeechclap.encoders.mel import PITCH_STATS_CHANNELS, LogMelFrontEnd, MelEncoderConfig
    from paraspeechclap.encoders.mini import MEL_PRESETS
    from paraspeechclap.synth.voice_shift import telephone_band

    config = MelEncoderConfig(**MEL_PRESETS["mel-mini-f0"])
    assert config.feature_size == MelEncoderConfig(**MEL_PRESETS["mel-mini"]).feature_size + PITCH_STATS_CHANNELS
    front = LogMelFrontEnd(config)
    means = []
    for f0 in (90.0, 130.0, 190.0, 280.0):
        y = _harmonic(f0)
        y = telephone_band(y) if band == "telephone" else y
        feats, _ = front(torch.tensor(y)[None], torch.tensor([len(y)]))
        means.append(float(feats[0, -PITCH_STATS_CHANNELS, 0]))
    assert all(b > a for a, b in zip(means, means[1:])), means


def test_real_speech_labels_follow_the_shifted_f0():
    """A version's pitch tag is the gender-relative bin of its shifted F0: raising never gives a deeper tag."""
    from paraspeechclap.synth.real import draw_version, offset_st, pitch_level

    order = {"low": 0, "medium": 1, "high": 2}
    rng = np.random.default_rng(0)
    for gender, f0 in (("male", 132.0), ("female", 215.0)):
        versions = [draw_version(f0, gender, rng) for _ in range(200)]
        assert {v["pitch"] for v in versions} == set(order)
        for v in versions:
            assert pitch_level(offset_st(f0 * 2 ** (v["shift_cents"] / 1200), gender)) == v["pitch"]
        by_shift = sorted(versions, key=lambda v: v["shift_cents"])
        assert all(order[a["pitch"]] <= order[b["pitch"]] for a, b in zip(by_shift, by_shift[1:]))
