"""scripts/tts_eval_second_clone.py: the comparison of two reports (the clone run itself is a script people run)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from repo_scripts import load_script  # noqa: E402

clone = load_script("tts_eval_second_clone")


def _report(*clips):
    return {"clips": [dict(zip(("system", "prompt", "cosine", "contrastive", "attribute"), c)) for c in clips]}


def test_differences_are_the_largest_per_score_over_matching_clips():
    a = _report(("s", "p0", 0.5, 0.7, 1.0), ("s", "p1", 0.25, 0.1, 0.0), ("t", "p0", 0.1, 0.2, 0.5))
    b = _report(("t", "p0", 0.1, 0.2, 0.5), ("s", "p1", 0.25 + 3e-6, 0.1, 0.0), ("s", "p0", 0.5, 0.7 - 2e-4, 1.0))
    worst = clone.differences(a, b)
    assert math.isclose(worst["cosine"], 3e-6, rel_tol=1e-6) and math.isclose(worst["contrastive"], 2e-4, rel_tol=1e-6)
    assert worst["attribute"] == 0.0 and worst["contrastive"] > clone.TOLERANCE["contrastive"]


def test_a_clip_scored_in_one_report_only_is_an_infinite_difference():
    a = _report(("s", "p0", 0.5, 0.7, 1.0))
    b = _report(("s", "p0", None, None, None))
    assert clone.differences(a, b) == {"cosine": math.inf, "contrastive": math.inf, "attribute": math.inf}
    assert clone.differences(b, b) == {"cosine": 0.0, "contrastive": 0.0, "attribute": 0.0}
