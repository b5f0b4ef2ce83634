"""scripts/diagnose_range_tags.py: the per-clip share of range tags and the best any thresholds reach."""
from __future__ import annotations

import numpy as np
from repo_scripts import load_script


def _clips():
    return {"gold": np.array(["monotonous", "singsong", "none", "singsong", "none"], dtype=object),
            "p": np.array([[0.99, 0.01], [0.1, 0.9], [0.2, 0.8], [0.4, 0.6], [0.05, 0.95]]),
            "tagged_whisper": np.array([False, False, False, False, True])}


def test_per_clip_counts_untagged_unclaimed_clips_right_and_gates_whispers():
    script = load_script("diagnose_range_tags")
    d = _clips()
    assert script.per_clip(d, 0.9, 0.85) == 4 / 5   # the 0.6 singsong untagged; the whisper gated
    assert script.per_clip(d, 0.9, 0.5) == 4 / 5    # now the unclaimed 0.8 clip is tagged singsong
    assert script.per_clip(d, 1.01, 1.01) == 2 / 5  # no tags: only the unclaimed clips are right
    predicted = np.array(["monotonous", "singsong", "none", "singsong", "singsong"], dtype=object)
    assert script.per_clip(d, 0, 0, predicted) == 1.0


def test_ceiling_finds_the_best_thresholds_on_the_corpus():
    script = load_script("diagnose_range_tags")
    d = _clips()
    d["p"][2] = [0.5, 0.5]  # the unclaimed clip now below every singsong clip
    best = script.ceiling(d)
    assert best["per_clip"] == 1.0 and 0.5 < best["singsong"] <= 0.6
