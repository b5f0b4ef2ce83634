"""The offline best-of-N demonstration (scripts/rerank_demo.py): its measurement and gain logic,
and (with espeak-ng and the `mini` model) that reranking beats random picks on a small run."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from repo_scripts import load_script

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def demo():
    return load_script("rerank_demo")


def test_gain_summary_on_a_constructed_case(demo):
    quality = np.array([[0.0, 1.0, 2.0, 3.0], [3.0, 2.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    perfect = demo.summarise(quality.copy(), quality)
    assert perfect["random"] == pytest.approx(1.5 * 2 / 3 + 1 / 3)
    assert perfect["picked"] == pytest.approx(perfect["oracle"]) == pytest.approx(7 / 3)
    assert perfect["gain"] == pytest.approx(1.0) and perfect["fraction_of_oracle_gain"] == pytest.approx(1.0)
    assert perfect["prompts_pick_beats_random"] == 2  # the flat prompt gains nothing
    assert perfect["curve"][0] == pytest.approx(perfect["random"])
    assert perfect["curve"] == pytest.approx(perfect["oracle_curve"])
    assert np.all(np.diff(perfect["curve"]) > 0)
    # a random scorer matches gain 1.0 only by picking the best of prompts 0 and 1: p = 1/16
    assert perfect["p_value_vs_random_scorer"] == pytest.approx(1 / 16, abs=0.02)

    # a scorer that prefers the worst candidate of prompt 0 and the best of prompt 1
    scores = np.array([[3.0, 2.0, 1.0, 0.0], [3.0, 2.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    mixed = demo.summarise(scores, quality)
    assert mixed["gain_per_prompt"] == pytest.approx([-1.5, 1.5, 0.0])
    assert mixed["gain"] == pytest.approx(0.0)
    assert mixed["gain_ci95"][0] < 0 < mixed["gain_ci95"][1]
    assert mixed["p_value_vs_random_scorer"] == pytest.approx(10 / 16, abs=0.04)  # P(null gain >= 0)
    # exact curve for prompt 0 with reversed scores: best of n by score is the lowest-quality drawn
    assert mixed["curve"][1] == pytest.approx((np.mean([0, 0, 0, 1, 1, 2]) + np.mean([3, 3, 3, 2, 2, 1]) + 1) / 3)


def test_caption_blind_control_is_subtracted(demo):
    quality = np.array([[0.0, 1.0, 2.0, 3.0], [3.0, 2.0, 1.0, 0.0]])
    scores = quality.copy()  # the model picks the best candidate of both prompts: gain 1.5
    same = np.stack([scores[:, None, :]] * 2, axis=1)[:, :, 0, :]  # other captions rank the same way
    blind = demo.summarise(scores, quality, control_scores=same)
    assert blind["gain"] == pytest.approx(1.5) and blind["control_gain"] == pytest.approx(1.5)
    assert blind["caption_specific_gain"] == pytest.approx(0.0)
    reversed_ = -same  # other captions pick the worst: control gain -1.5, specific +3.0
    specific = demo.summarise(scores, quality, control_scores=reversed_)
    assert specific["control_gain"] == pytest.approx(-1.5)
    assert specific["caption_specific_gain"] == pytest.approx(3.0)
    assert specific["caption_specific_gain_ci95"] == pytest.approx([3.0, 3.0])
    assert specific["control_curve"][0] == pytest.approx(specific["random"])


def test_match_scores_sign_and_undefined_values(demo):
    # features: f0, rate, range, voicing (z-scores); NaN (no F0 in a whisper) counts 0
    z = np.array([[-1.0, -2.0, 0.5, 0.0], [1.0, 1.0, np.nan, -3.0], [np.nan, 0.0, np.nan, -2.0]])
    targets = [{"f0": -1, "rate": -1}, {"range": +1, "f0": +1}, {"voicing": -1}]
    q = demo.match_scores(z, targets, np.array([0, 1, 2]))
    assert q == pytest.approx([1.5, 0.5, 2.0])
    q0 = demo.match_scores(z, targets, np.array([0, 0, 0]))
    assert q0 == pytest.approx([1.5, -1.0, 0.0])


def test_standardise_and_attribute_gains(demo):
    values = np.array([[1.0, np.nan], [3.0, 2.0], [5.0, 4.0]])
    z = demo.standardise(values)
    assert np.nanmean(z, axis=0) == pytest.approx([0.0, 0.0]) and np.isnan(z[0, 1])
    # one prompt asking for low f0 and slow rate; candidates' f0 [0, 6] st, rate [5, 3] syl/s
    feats = np.full((1, 2, 4), np.nan)
    feats[0, :, 0] = [0.0, 6.0]
    feats[0, :, 1] = [5.0, 3.0]
    gains = demo.attribute_gains(feats, [{"f0": -1, "rate": -1}], np.array([0]))
    assert gains["f0"]["mean_gain"] == pytest.approx(3.0)  # picked 0 st vs mean 3 st, lower requested
    assert gains["rate"]["mean_gain"] == pytest.approx(-1.0)
    assert "range" not in gains


@needs_espeak
def test_measurement_orders_espeak_styles(demo):
    text = demo.SENTENCES[0]
    low_slow = demo.measure(*demo.synthesize(text, {"voice": "en-us+m3", "pitch": 5, "wpm": 90, "range": "0%"}), text)
    high_fast = demo.measure(
        *demo.synthesize(text, {"voice": "en-us+f4", "pitch": 95, "wpm": 300, "range": "250%"}), text
    )
    whisper = demo.measure(
        *demo.synthesize(text, {"voice": "en-us+whisper", "pitch": 50, "wpm": 150, "range": "100%"}), text
    )
    assert high_fast["f0"] - low_slow["f0"] > 12  # more than an octave apart
    assert high_fast["rate"] > 2 * low_slow["rate"]
    assert high_fast["range"] > low_slow["range"] + 1.5
    assert whisper["voicing"] < 0.2 < low_slow["voicing"] and math.isnan(whisper["f0"])
    feats = np.array([[low_slow[f] for f in demo.FEATURES], [high_fast[f] for f in demo.FEATURES],
                      [whisper[f] for f in demo.FEATURES]])
    z = demo.standardise(feats)
    deep_slow = demo.match_scores(z, [demo.CAPTIONS[0][1]], np.zeros(3, int))
    high_fast_q = demo.match_scores(z, [demo.CAPTIONS[1][1]], np.zeros(3, int))
    whisper_q = demo.match_scores(z, [demo.CAPTIONS[4][1]], np.zeros(3, int))
    assert deep_slow[0] > deep_slow[1] and high_fast_q[1] > high_fast_q[0]
    assert np.argmax(whisper_q) == 2


@pytest.fixture(scope="module")
def mini_model():
    try:
        from paraspeechclap import ParaSpeechCLAP

        return ParaSpeechCLAP.from_pretrained("mini")
    except Exception as exc:  # noqa: BLE001 - any failure means the model is not available here
        pytest.skip(f"the `mini` model is not available ({type(exc).__name__}: {exc}); "
                    "the demonstration's gain needs it")


@pytest.mark.slow
@needs_espeak
def test_demonstration_gain_over_random_is_positive(demo, mini_model, tmp_path):
    args = demo.parse_args(["--out", str(tmp_path), "--repeats", "1", "--n", "8", "--seed", "0"])
    doc = demo.run_demo(args, model=mini_model)
    summary = doc["summary"]
    assert summary["prompts"] == len(demo.CAPTIONS) and len(summary["curve"]) == 8
    assert summary["gain"] > 0, demo.markdown(doc)
    assert summary["picked"] > summary["random"]
    assert summary["caption_specific_gain"] > 0, demo.markdown(doc)  # not a caption-blind preference
    assert summary["rerank_vs_direct_max_abs_diff"] < 1e-4
    assert (tmp_path / "curve.png").stat().st_size > 0 and (tmp_path / "demo.json").is_file()
    assert len(list((tmp_path / "rerank" / "audios").iterdir())) == len(demo.CAPTIONS)
