"""Processes by /proc: the tree under a pid, alive or not (for the tests that SIGKILL a parent)."""
from __future__ import annotations

import os
from pathlib import Path


def children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    tree, out, todo = children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for init to reap it: it runs nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill_when_ready(proc, ready, timeout: float, poll: float = 0.05) -> tuple[list[int], dict[int, str]]:
    """SIGKILL the running ``proc`` (a Popen) once ``ready()`` holds; (its descendants, their command lines) then.
    Fails (AssertionError) when it ended first or ``timeout`` seconds passed."""
    import signal
    import time

    try:
        deadline = time.monotonic() + timeout
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(poll)
        assert proc.poll() is None, "the run ended (or failed) before the kill"
        assert ready(), f"not ready after {timeout} s"
        family = descendants(proc.pid)
        names = {p: cmdline(p) for p in family}
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return family, names


def still_running(family: list[int], within: float) -> list[int]:
    """The processes of ``family`` still running after waiting up to ``within`` seconds for all to end."""
    import time

    deadline = time.monotonic() + within
    while any(running(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in family if running(p)]
