"""Agreement with people, on a synthetic human file whose agreement is known."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from paraspeechclap.ttseval.agreement import agreement, read_human

SYSTEMS = ["s1", "s2", "s3"]


def _scores(n: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    quality = np.array([0.8, 0.6, 0.4])[:, None]
    metric = quality + rng.normal(0, 0.15, (3, n))
    prompts = [SimpleNamespace(id=f"q{i}") for i in range(n)]
    return SimpleNamespace(prompts=prompts, systems=SYSTEMS, cosine=metric, contrastive=metric.copy(),
                           attribute=np.full((3, n), np.nan)), rng


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_pairwise_accuracy_of_a_synthetic_preference_file(tmp_path):
    scores, rng = _scores()
    human = scores.cosine + rng.normal(0, 0.1, scores.cosine.shape)  # people: the same signal, noisier
    rows, expected = [], []
    for p in range(len(scores.prompts)):
        a, b = rng.choice(3, 2, replace=False)
        pref = "a" if human[a, p] > human[b, p] else "b"
        rows.append({"prompt": f"q{p}", "system_a": SYSTEMS[a], "system_b": SYSTEMS[b], "preferred": pref})
        expected.append((scores.cosine[a, p] > scores.cosine[b, p]) == (pref == "a"))
    rows += [{"prompt": "q0", "system_a": "s1", "system_b": "s2", "preferred": "tie"},
             {"prompt": "q1", "system_a": "s1", "system_b": "s9", "preferred": "a"},
             {"system_a": "s1", "system_b": "s2", "preferred": "a"}]
    problems = []
    prefs, ratings = read_human(_write(tmp_path / "h.jsonl", rows), SYSTEMS, problems)
    assert len(prefs) == len(scores.prompts) + 1 and ratings == [] and len(problems) == 2
    out = agreement(scores, prefs, ratings, n_boot=500, seed=0, level=0.95)
    pw = out["scores"]["cosine"]["pairwise"]
    assert pw["n"] == len(scores.prompts) and pw["ties_skipped"] == 1
    assert pw["pairwise_accuracy"]["mean"] == pytest.approx(np.mean(expected))
    assert pw["pairwise_accuracy"]["lo"] < np.mean(expected) < pw["pairwise_accuracy"]["hi"]
    assert pw["pairwise_accuracy"]["lo"] > 0.6  # a real signal, clearly above chance
    assert "pairwise" not in out["scores"]["attribute"] or out["scores"]["attribute"]["pairwise"]["n"] == 0


def test_random_preferences_agree_at_chance(tmp_path):
    scores, rng = _scores(seed=1)
    rows = [{"prompt": f"q{p}", "system_a": "s1", "system_b": "s3", "preferred": str(rng.choice(["s1", "s3"]))}
            for p in range(len(scores.prompts))]
    prefs, _ = read_human(_write(tmp_path / "h.jsonl", rows), SYSTEMS, [])
    acc = agreement(scores, prefs, [], n_boot=500, seed=0, level=0.95)["scores"]["cosine"]["pairwise"]
    assert acc["pairwise_accuracy"]["lo"] < 0.5 < acc["pairwise_accuracy"]["hi"]


def test_ratings_give_scipys_correlations_with_intervals(tmp_path):
    scores, rng = _scores()
    human = scores.cosine + rng.normal(0, 0.2, scores.cosine.shape)
    rows = [{"prompt": f"q{p}", "system": SYSTEMS[s], "rating": float(human[s, p] + d)}
            for s in range(3) for p in range(len(scores.prompts)) for d in (-0.05, 0.05)]
    rows.append({"prompt": "q0", "system": "s1", "rating": "five"})
    problems = []
    prefs, ratings = read_human(_write(tmp_path / "r.jsonl", rows), SYSTEMS, problems)
    assert len(ratings) == 2 * 3 * len(scores.prompts) and problems[0].kind == "bad_human_row"
    out = agreement(scores, prefs, ratings, n_boot=300, seed=0, level=0.95)["scores"]["cosine"]
    x, y = scores.cosine.ravel(), human.ravel()
    assert out["clip_level"]["spearman"]["mean"] == pytest.approx(spearmanr(x, y)[0])
    assert out["clip_level"]["kendall"]["mean"] == pytest.approx(kendalltau(x, y)[0])
    assert out["clip_level"]["spearman"]["lo"] < out["clip_level"]["spearman"]["mean"] < out["clip_level"]["spearman"]["hi"]
    assert out["system_level"]["spearman"]["mean"] == pytest.approx(1.0) and out["system_level"]["n"] == 3
