import numpy as np
import pytest

from paraspeechclap.data.samplers import (BalancedBatchSampler, ShuffleBatchSampler, TagStatistics, sample_weights,
                                          tag_weights)


def _corpus(n=400, seed=0):
    """Common tags a/b (frequent), c (5%), rare r1 (2%) and r2 (1%)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        t = ["a"] if rng.random() < 0.6 else ["b"]
        if i % 20 == 0:
            t.append("c")
        if i % 50 == 1:
            t = ["r1"]
        if i % 100 == 2:
            t = ["r2", "b"]
        if i % 37 == 3:
            t = []
        rows.append(t)
    return rows


@pytest.mark.parametrize("strategy", ["inverse_frequency", "sqrt_inverse", "log_inverse"])
def test_weights(strategy):
    counts = {"a": 100, "b": 10, "c": 1}
    w = tag_weights(counts, strategy)
    assert abs(sum(w.values()) - 3) < 1e-9
    f = {"inverse_frequency": lambda c: 1 / c, "sqrt_inverse": lambda c: c ** -0.5,
         "log_inverse": lambda c: 1 / np.log(c + 1)}[strategy]
    assert abs(w["a"] / w["c"] - f(100) / f(1)) < 1e-9
    sw = sample_weights([["a"], ["a", "c"], []], w)
    assert sw[0] == w["a"] and sw[1] == (w["a"] + w["c"]) / 2 and sw[2] == min(w.values())


@pytest.mark.parametrize("world", [1, 2, 3])
def test_rare_guarantee_every_rank_batch(world):
    tags = _corpus()
    B = 8
    samplers = [BalancedBatchSampler(tags, B, world_size=world, rank=r, seed=7, min_rare_per_batch=3,
                                     rare_tag_threshold=0.05) for r in range(world)]
    rare = samplers[0].rare
    assert {"r1", "r2"} <= rare and not {"a", "b"} & rare
    for epoch in range(3):
        per_rank = []
        for s in samplers:
            s.set_epoch(epoch)
            batches = list(s)
            assert len(batches) == len(s) and all(len(b) == B for b in batches)
            for b in batches:
                assert sum(any(t in rare for t in tags[i]) for i, _ in b) >= 3
            per_rank.append(batches)
        # every rank sees the same number of batches and its own slots (different seeds per item)
        seeds = [seed for batches in per_rank for b in batches for _, seed in b]
        assert len(set(seeds)) == len(seeds)
    # all ranks computed the same plan
    assert all((a == b).all() for a, b in zip(samplers[0].plan(1)[0], samplers[-1].plan(1)[0]))


@pytest.mark.parametrize("strategy", ["inverse_frequency", "sqrt_inverse"])
def test_oversampling_follows_weights(strategy):
    tags = _corpus(600, seed=3)
    s = BalancedBatchSampler(tags, 16, seed=123, weighting=strategy, min_rare_per_batch=0, num_samples=6000)
    stats = TagStatistics.from_column(tags)
    drawn = np.concatenate([np.concatenate([b[0] for b in s.plan(e)]) for e in range(5)])
    freq = np.bincount(drawn, minlength=len(tags)) / len(drawn)
    # expected share of each tag under the sample weights
    p = s.probabilities
    for tag in ("a", "r1", "r2", "c"):
        rows = [i for i, t in enumerate(stats.row_tags) if tag in t]
        exp, got = p[rows].sum(), freq[rows].sum()
        assert abs(got - exp) < 4 * np.sqrt(exp * (1 - exp) / len(drawn)) + 1e-3, (tag, got, exp)
    # rare tags are over-sampled relative to their frequency, frequent ones under-sampled
    share = lambda tag: freq[[i for i, t in enumerate(stats.row_tags) if tag in t]].sum()  # noqa: E731
    assert share("r2") > 3 * stats.counts["r2"] / len(tags)
    assert share("a") < stats.counts["a"] / len(tags)
    if strategy == "inverse_frequency":  # every tag about equally likely
        assert share("r1") / share("a") > 0.5


def test_plan_is_seeded_per_epoch_and_resumable():
    tags = _corpus()
    s = BalancedBatchSampler(tags, 8, seed=1)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2)
    s.set_position(3)
    assert list(s) == full[3:]
    s.set_epoch(3)
    assert list(s) != full
    s2 = BalancedBatchSampler(tags, 8, seed=1)
    s2.load_state_dict({"epoch": 2, "position": 0})
    assert list(s2) == full


@pytest.mark.parametrize("world,n,B,drop", [(1, 10, 4, False), (2, 11, 3, False), (3, 20, 4, True)])
def test_shuffle_sampler_partition(world, n, B, drop):
    ss = [ShuffleBatchSampler(n, B, world_size=world, rank=r, seed=5, drop_last=drop) for r in range(world)]
    for s in ss:
        s.set_epoch(1)
    lists = [[i for b in s for i, _ in b] for s in ss]
    assert len({len(list(s)) for s in ss}) == 1
    flat = sorted(i for l in lists for i in l)
    if not drop:
        assert set(flat) == set(range(n)) and len(flat) == -(-n // world) * world
    assert all(len(b) <= B for s in ss for b in s)
    ss[0].set_epoch(2)
    assert [i for b in ss[0] for i, _ in b] != lists[0] or n < 3
