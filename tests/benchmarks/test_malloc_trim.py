"""benchmarks/malloc_trim.py: one setting's per-call figures (a short run; the comparison is the script's)."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_one_setting_reports_per_call_time_and_faults():
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    one = importlib.import_module("malloc_trim").one_setting("mini", 64, clips=2, seconds=1.0, calls=2)
    assert one["threshold_mb"] == 64
    assert one["wall_ms"] > 0 and one["user_ms"] + one["sys_ms"] > 0 and one["faults"] >= 0
