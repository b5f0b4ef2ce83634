import numpy as np
import pytest

from paraspeechclap.rerank.shaping import shape_rewards


def test_cosine_and_logit_shaping():
    rewards, parts = shape_rewards([0.1, 0.3], 20.0, "cosine")
    np.testing.assert_allclose(rewards, [0.1, 0.3], atol=1e-7)
    rewards, _ = shape_rewards([0.1, 0.3], 20.0, "logit")
    np.testing.assert_allclose(rewards, [2.0, 6.0], atol=1e-6)
    assert parts[1] == pytest.approx({"cosine": 0.3, "logit": 6.0})


def test_group_norm_is_per_prompt_and_skips_failed_items():
    cos = [0.1, 0.3, np.nan, 0.5, 0.2]
    rewards, parts = shape_rewards(cos, 20.0, "group_norm", groups=["a", "a", "a", "b", "c"])
    np.testing.assert_allclose(rewards[:2], [-1.0, 1.0], atol=1e-4)  # (x - mean) / std within group a
    assert np.isnan(rewards[2]) and rewards[3] == 0.0  # failed stays NaN; a group of one gets 0
    assert parts[0]["group_mean"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="group"):
        shape_rewards(cos, 20.0, "group_norm")
    with pytest.raises(ValueError, match="shaping must be"):
        shape_rewards(cos, 20.0, "rank")


def test_contrastive_shaping_takes_the_benchmarks_scores():
    from types import SimpleNamespace

    cos = np.array([0.4, 0.1, np.nan])
    contrast = SimpleNamespace(scores=np.array([0.8, np.nan, 0.3]), win=np.array([1.0, np.nan, 0.0]),
                               cosines=np.array([0.4, 0.1, np.nan]),
                               problems=[None, "the caption names no attribute", "no audio embedding"],
                               contrast=SimpleNamespace(item=np.array([0, 0, 2])))
    rewards, parts = shape_rewards(cos, 20.0, "contrastive", contrast=contrast)
    assert rewards[0] == pytest.approx(0.8) and np.isnan(rewards[1]) and np.isnan(rewards[2])
    assert parts[0] == pytest.approx({"cosine": 0.4, "logit": 8.0, "contrastive": 0.8, "contrastive_win": 1.0,
                                      "counterfactuals": 2})
    assert parts[1]["contrastive_problem"] == "the caption names no attribute"
    assert parts[1]["contrastive"] is None and parts[1]["contrastive_win"] is None  # JSON-safe: no NaN
    with pytest.raises(ValueError, match="contrast="):
        shape_rewards(cos, 20.0, "contrastive")
    with pytest.raises(ValueError, match="other items"):
        shape_rewards([0.2, 0.1, np.nan], 20.0, "contrastive", contrast=contrast)
    with pytest.raises(ValueError, match="3 items but a contrastive result for 2"):
        shape_rewards(cos, 20.0, "contrastive", contrast=SimpleNamespace(scores=np.zeros(2)))
