"""Worker processes that die with the process that started them, and never commit work after it is gone.

A worker calls :func:`die_with_parent` first thing: on Linux the kernel then sends it SIGKILL the moment its parent
exits, SIGKILL of the parent included (``prctl(PR_SET_PDEATHSIG)``; the signal follows the parent *thread* that
created the worker, so pools must be started from a thread that outlives them, as ``with ProcessPoolExecutor(...)``
in the calling thread does). Elsewhere, and for the instant between a parent's death and the signal, the worker asks
:class:`ParentWatch` before every commit: a worker whose parent changed (it was re-parented to init or a
subreaper) raises :class:`ParentGone` instead of committing.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys

__all__ = ["ParentGone", "ParentWatch", "die_with_parent"]

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class ParentGone(RuntimeError):
    """The process that started this worker has exited: the worker stops without committing anything."""


class ParentWatch:
    """Whether the parent that started this process (pid ``parent``) is still its parent."""

    def __init__(self, parent: int | None = None):
        self.parent = os.getppid() if parent is None else int(parent)

    def alive(self) -> bool:
        return os.getppid() == self.parent

    def check(self, what: str = "work") -> None:
        """Raise :class:`ParentGone` (naming ``what`` was not committed) when the parent has exited."""
        if not self.alive():
            raise ParentGone(f"the parent process {self.parent} has exited; {what} not committed")


def die_with_parent(parent: int | None = None, sig: int = signal.SIGKILL) -> ParentWatch:
    """Have the kernel send ``sig`` to this process when its parent exits (Linux), then exit at once if the parent
    ``parent`` (default: the current one) is already gone (it died before the request). Returns the watch that
    the worker consults before every commit (the only guard off Linux)."""
    watch = ParentWatch(parent)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(err)}")
    if not watch.alive():
        os._exit(1)
    return watch
