"""benchmarks/sched_waits.py: a thread's waits for a core, what ran meanwhile and who woke it, read from a small
hand-written `perf sched timehist --state -w` text."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

HEAD = """           time    cpu  task name                       wait time  sch delay   run time  state
                        [tid/pid]                          (msec)     (msec)     (msec)
--------------- ------  ------------------------------  ---------  ---------  ---------  -----
"""
# thread 7 runs 3 ms on core 0 and is preempted by the loop (5) for 2 ms while 9 runs on core 1; then it runs 1 ms,
# sleeps, is woken by 9 after 0.5 ms and waits 0.25 ms (scheduling delay) behind 5
TRACE = HEAD + """\
  100.003000 [0000]  python[7/6]                        0.000      0.000      3.000      R
  100.005000 [0000]  python[5]                          0.000      0.000      2.000      S
  100.005000 [0001]  python[9/6]                          0.000      0.000      5.000      R
  100.006000 [0000]  python[7/6]                        2.000      0.000      1.000      S
  100.006500 [0001]  python[9/6]                                                  awakened: python[7/6]
  100.006750 [0000]  python[5]                          1.000      0.000      0.750      S
  100.007750 [0000]  python[7/6]                        0.750      0.250      1.000      S
"""


@pytest.fixture(scope="module")
def waits():
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module("sched_waits")


def test_a_preemption_and_a_scheduling_delay_are_the_waits(waits):
    switches, wakeups = waits.parse(TRACE.splitlines())
    assert len(switches) == 6 and [w.waker for w in wakeups] == ["python[9/6]"]
    found = waits.waits(switches, "7")
    assert [(round(a, 6), round(b, 6), q) for a, b, q, _ in found] == [(100.003, 100.005, 0), (100.0065, 100.00675, 0)]
    same, other = waits.occupants(switches, found, "7")
    assert same["python[5]"] == pytest.approx(0.00225) and other["python[9/6]"] == pytest.approx(0.002)


def test_who_woke_it_and_after_how_long_a_sleep(waits):
    switches, wakeups = waits.parse(TRACE.splitlines())
    assert waits.wakers(switches, wakeups, "7") == {"python[9/6]": [pytest.approx(0.0005)]}
    text = waits.report(switches, wakeups, "7")
    assert "runnable without a core 2 ms in 2 waits" in text and "1 x python[9/6]" in text
