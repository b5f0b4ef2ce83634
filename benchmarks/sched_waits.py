"""Where one thread waited: its time runnable without a core, what ran meanwhile, and who woke it (Linux perf).

Record the scheduler while the thread works (root or perf_event_paranoid <= 1), for instance the model process's
express thread during `serve_hostile.py` (its thread ids: ``ls /proc/PID/task``, the niceness in field 19 of each
``stat``):

    perf sched record -o trace.data -- sleep 8
    python benchmarks/sched_waits.py trace.data --tid TID

It reads ``perf sched timehist --state -w`` and prints, for thread TID:
- its time runnable but not running: after a wakeup (scheduling delay) and after being preempted, until it ran
  again;
- what ran during those waits on the core it was queued on and on the others (by thread);
- which threads woke it and how long it had slept before each wakeup: a short sleep ended by another thread of its
  own process is that thread handing back the GIL.
"""
from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import percentile  # noqa: E402

LINE = re.compile(r"^\s*(?P<time>\d+\.\d+)\s+\[(?P<cpu>\d+)\]\s+(?P<task>\S.*?\[[\d/-]+\])\s+"
                  r"(?:awakened:\s+(?P<woken>\S.*?\[[\d/-]+\])|(?P<wait>[\d.]+)\s+(?P<sch>[\d.]+)\s+(?P<run>[\d.]+)"
                  r"\s+(?P<state>\S+))\s*$")


@dataclass
class Switch:
    """A thread leaving a core at ``time`` (s) after running ``run`` s; ``state`` R: preempted, else it slept."""
    time: float
    cpu: int
    task: str
    sch: float
    run: float
    state: str


@dataclass
class Wakeup:
    time: float
    waker: str
    woken: str


def tid(task: str) -> str:
    """The thread id of a timehist task name, ``comm[tid/pid]`` or ``comm[pid]``."""
    return task.rsplit("[", 1)[1].split("/")[0].rstrip("]")


def parse(lines: Iterable[str]) -> tuple[list[Switch], list[Wakeup]]:
    switches, wakeups = [], []
    for line in lines:
        match = LINE.match(line)
        if match is None:
            continue
        time, cpu, task = float(match["time"]), int(match["cpu"]), match["task"].strip()
        if match["woken"]:
            wakeups.append(Wakeup(time, task, match["woken"].strip()))
        else:
            switches.append(Switch(time, cpu, task, float(match["sch"]) / 1000, float(match["run"]) / 1000,
                                   match["state"]))
    return switches, wakeups


def waits(switches: list[Switch], thread: str) -> list[tuple[float, float, int, int]]:
    """``(start, end, queued_cpu, ran_cpu)`` of each time ``thread`` was runnable without a core: from a preemption
    to its next run, or its scheduling delay after a wakeup."""
    out, last = [], None
    for s in switches:
        if tid(s.task) != thread:
            continue
        start = s.time - s.run
        if last is not None and last.state == "R":
            out.append((last.time, start, last.cpu, s.cpu))
        elif s.sch > 0:
            out.append((start - s.sch, start, s.cpu, s.cpu))
        last = s
    return out


def occupants(switches: list[Switch], windows, thread: str) -> tuple[collections.Counter, collections.Counter]:
    """Seconds each other task ran during the windows: on the core the thread was queued on, and on the others."""
    runs = collections.defaultdict(list)
    for s in switches:
        runs[s.cpu].append((s.time - s.run, s.time, s.task))
    same, other = collections.Counter(), collections.Counter()
    for start, end, queued, _ in windows:
        for cpu, spans in runs.items():
            for begin, finish, task in spans:
                overlap = min(end, finish) - max(start, begin)
                if overlap > 0 and tid(task) != thread:
                    (same if cpu == queued else other)[task] += overlap
    return same, other


def wakers(switches: list[Switch], wakeups: list[Wakeup], thread: str) -> dict[str, list[float]]:
    """Per waker, how long ``thread`` had slept before each of its wakeups (s)."""
    events = sorted([(s.time, 0, s) for s in switches if tid(s.task) == thread]
                    + [(w.time, 1, w) for w in wakeups if tid(w.woken) == thread], key=lambda e: (e[0], e[1]))
    slept, out = None, collections.defaultdict(list)
    for time, kind, event in events:
        if kind == 0:
            slept = time if event.state != "R" else None
        elif slept is not None:
            out[event.waker].append(time - slept)
            slept = None
    return dict(out)


def report(switches: list[Switch], wakeups: list[Wakeup], thread: str, top: int = 8) -> str:
    windows = waits(switches, thread)
    same, other = occupants(switches, windows, thread)
    total = sum(end - start for start, end, *_ in windows)
    lines = [f"thread {thread}: runnable without a core {total * 1000:.0f} ms in {len(windows)} waits", "",
             "ran meanwhile on the core it was queued on (ms):",
             *[f"  {seconds * 1000:8.0f}  {task}" for task, seconds in same.most_common(top)],
             "ran meanwhile on the other cores (ms):",
             *[f"  {seconds * 1000:8.0f}  {task}" for task, seconds in other.most_common(top)],
             "", "woken by (the sleep each wakeup ended, ms):"]
    for task, slept in sorted(wakers(switches, wakeups, thread).items(), key=lambda kv: -len(kv[1]))[:top]:
        lines.append(f"  {len(slept):6d} x {task}: total {sum(slept) * 1000:.0f}, p50 {percentile(slept, 50) * 1000:.2f}, "
                     f"p99 {percentile(slept, 99) * 1000:.2f}, max {max(slept) * 1000:.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace", help="a perf.data of `perf sched record`, or a text file of `perf sched timehist "
                                      "--state -w`")
    parser.add_argument("--tid", required=True, help="the thread to follow")
    args = parser.parse_args(argv)
    if args.trace.endswith(".data"):
        text = subprocess.run(["perf", "sched", "timehist", "-i", args.trace, "--state", "-w"], capture_output=True,
                              text=True, check=True).stdout
    else:
        with open(args.trace) as handle:
            text = handle.read()
    print(report(*parse(text.splitlines()), args.tid))
    return 0


if __name__ == "__main__":
    sys.exit(main())
