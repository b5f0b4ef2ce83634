"""The statistics on synthetic numbers with known answers: bootstrap intervals, UAR, paired tests, ranking."""
from __future__ import annotations

import numpy as np
import pytest

from paraspeechclap.ttseval.stats import interval, paired, rank_with_ties, replicates, uar, weighted_mean


def test_replicates_are_deterministic_counts():
    a, b = replicates(50, 200, seed=3), replicates(50, 200, seed=3)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert a.weights.shape == (200, 50) and (a.weights.sum(axis=1) == 50).all()
    assert not np.array_equal(a.weights, replicates(50, 200, seed=4).weights)
    with pytest.raises(ValueError):
        replicates(5, 0, 0)


def test_bootstrap_interval_of_a_mean_matches_the_normal_theory():
    rng = np.random.default_rng(0)
    x = rng.normal(0.6, 0.2, 400)
    reps = replicates(len(x), 4000, seed=1)
    c = interval(float(x.mean()), weighted_mean(x, reps.weights), 0.95)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    assert c["lo"] == pytest.approx(x.mean() - half, abs=0.004)
    assert c["hi"] == pytest.approx(x.mean() + half, abs=0.004)


def test_weighted_mean_skips_undefined_values():
    w = np.array([[1, 1, 1], [0, 2, 1], [3, 0, 0]])
    got = weighted_mean(np.array([1.0, np.nan, 3.0]), w)
    assert got[0] == pytest.approx(2.0) and got[1] == pytest.approx(3.0) and got[2] == pytest.approx(1.0)
    assert np.isnan(weighted_mean(np.array([np.nan, np.nan, np.nan]), w)).all()


def test_uar_is_sklearns_balanced_accuracy():
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(2)
    gold = rng.choice(["deep", "medium", "high"], 60, p=[0.6, 0.3, 0.1])
    pred = np.where(rng.random(60) < 0.7, gold, rng.choice(["deep", "medium", "high"], 60))
    got = uar(list(gold), (pred == gold).astype(float), np.ones((1, 60)))[0]
    assert got == pytest.approx(balanced_accuracy_score(gold, pred))


def test_paired_comparison_finds_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(5)
    base = rng.normal(0.5, 0.2, 200)               # prompt difficulty, shared by both systems
    better = base + 0.03 + rng.normal(0, 0.02, 200)
    reps = replicates(200, 1000, seed=0)
    r = paired(better, base, reps, n_permutations=2000)
    assert r.significant and r.p_value < 0.001 and r.diff["lo"] > 0 and r.win_rate > 0.8 and r.n == 200
    same = base + rng.normal(0, 0.02, 200)
    r = paired(same, base, reps, n_permutations=2000)
    assert not r.significant and r.p_value > 0.05 and r.diff["lo"] < 0 < r.diff["hi"]
    # the marginal intervals of the first pair overlap although the paired one excludes zero: pairing matters
    a = interval(better.mean(), weighted_mean(better, reps.weights), 0.95)
    b = interval(base.mean(), weighted_mean(base, reps.weights), 0.95)
    assert a["lo"] < b["hi"]


def test_paired_leaves_out_prompts_missing_on_either_side():
    a, b = np.array([1.0, np.nan, 0.5, 0.2]), np.array([0.0, 0.3, np.nan, 0.1])
    r = paired(a, b, replicates(4, 100, 0), n_permutations=100)
    assert r.n == 2 and r.diff["mean"] == pytest.approx(0.55) and r.win_rate == 1.0
    r = paired(np.array([np.nan]), np.array([1.0]), replicates(1, 10, 0))
    assert r.n == 0 and r.p_value is None


def test_ranking_reports_ties():
    means = {"a": 0.9, "b": 0.85, "c": 0.5, "d": None}
    better = {("a", "c"): True, ("b", "c"): True}
    r = rank_with_ties(means, better)
    assert r["a"]["rank"] == 1 and r["b"]["rank"] == 1 and r["c"]["rank"] == 3 and r["d"]["rank"] is None
    assert r["a"]["tied_with"] == ["b"] and r["c"]["tied_with"] == []
    assert list(r) == ["a", "b", "c", "d"]
