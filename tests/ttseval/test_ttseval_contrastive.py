"""The contrastive adherence score: the formula on known numbers, attribute balancing, failures, and one function
behind the benchmark, the reward API and reward shaping."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from paraspeechclap.ttseval.contrastive import contrast_set, contrastive_from_cosines, contrastive_scores


def test_formula_on_known_cosines():
    # item 0: two counterfactuals of one attribute (weights 1/2) ; item 1: none ; item 2: one, tied
    prob, win = contrastive_from_cosines([0.5, 0.2, 0.3], [0.4, 0.6, 0.3], [0, 0, 2], [0.5, 0.5, 1.0], 10.0)
    assert prob[0] == pytest.approx(0.5 * expit(1.0) + 0.5 * expit(-1.0))
    assert win[0] == pytest.approx(0.5) and np.isnan(prob[1]) and np.isnan(win[1])
    assert prob[2] == pytest.approx(0.5) and win[2] == pytest.approx(0.5)
    prob, _ = contrastive_from_cosines([np.nan], [0.1], [0], [1.0], 10.0)
    assert np.isnan(prob[0])


def test_every_named_attribute_weighs_the_same():
    c = contrast_set(["A medium-pitched man speaks.", "Somebody talks."])
    # pitch: two opposites (1/4 each), gender: one (1/2); the second caption has none
    assert sorted(c.weight.tolist()) == [0.25, 0.25, 0.5]
    assert c.problems[0] is None and "names no attribute" in c.problems[1]
    assert set(c.attribute) == {"pitch", "gender"}


class AxisModel:
    """Text embeddings from word counts on fixed axes, so cosines are known: 'deep' and 'slow' point one way,
    'high-pitched' and 'quickly' the other; audio rows are given directly."""

    logit_scale = 20.0

    def __init__(self):
        self.calls = []

    def embed_text(self, texts):
        self.calls.append(list(texts))
        rows = []
        for t in texts:
            v = np.array([1.0, 0.0, 0.0])
            v[1] += t.count("deep") - t.count("high-pitched")
            v[2] += t.count("slowly") - t.count("quickly")
            rows.append(v / np.linalg.norm(v))
        return np.array(rows)


def test_contrastive_scores_with_known_embeddings():
    model = AxisModel()
    audio = np.array([[1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [np.nan] * 3]) / np.sqrt(3)
    captions = ["A deep voice speaks slowly."] * 3
    r = contrastive_scores(model, audio, captions)
    text = model.embed_text(["A deep voice speaks slowly.", "A high-pitched voice speaks slowly.",
                             "A deep voice speaks quickly."])
    cos = audio[0] @ text.T
    want = 0.5 * expit(20 * (cos[0] - cos[1])) + 0.5 * expit(20 * (cos[0] - cos[2]))
    assert r.scores[0] == pytest.approx(want) and r.scores[0] > 0.9 and r.scores[1] < 0.1
    assert np.isnan(r.scores[2]) and r.problems[2] == "no audio embedding"
    assert len(model.calls[0]) == 3  # the caption and its two counterfactuals, each embedded once
    assert [d["to"] for d in r.details(0)] == ["high-pitched", "fast"]


def test_a_model_without_logit_scale_is_refused():
    class NoScale(AxisModel):
        logit_scale = None

    with pytest.raises(ValueError, match="logit_scale"):
        contrastive_scores(NoScale(), np.ones((1, 3)) / np.sqrt(3), ["A deep voice."])


def test_reward_and_shaping_give_the_benchmark_numbers(mini, bench):
    """reward(score="contrastive"), shape_rewards("contrastive") and the benchmark's per-clip scores agree."""
    from paraspeechclap.rerank import reward
    from paraspeechclap.rerank.shaping import shape_rewards
    from paraspeechclap.ttseval import evaluate_systems

    result = evaluate_systems(bench / "prompts.jsonl", {"good": bench / "good"}, mini, cache_dir=None, n_boot=50,
                              n_permutations=50)
    paths = [str(bench / "good" / f"p{i}.wav") for i in range(6)]
    captions = [p.caption for p in result.scores.prompts]
    got = reward(mini, paths, captions, score="contrastive")
    np.testing.assert_allclose(got, result.scores.contrastive[0], atol=1e-6)
    emb = mini.embed_audio(paths)
    contrast = contrastive_scores(mini, emb, captions)
    cos = reward(mini, paths, captions)
    shaped, parts = shape_rewards(cos, mini.logit_scale, "contrastive", contrast=contrast)
    np.testing.assert_allclose(shaped, result.scores.contrastive[0], atol=1e-6)
    assert parts[0]["counterfactuals"] == 3 and 0 <= parts[0]["contrastive"] <= 1
    with pytest.raises(ValueError, match="contrast="):
        shape_rewards(cos, mini.logit_scale, "contrastive")
    with pytest.raises(ValueError, match="other items"):
        shape_rewards(cos[::-1], mini.logit_scale, "contrastive", contrast=contrast)
