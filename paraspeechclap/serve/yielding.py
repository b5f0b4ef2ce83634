"""Bulk work steps aside while cheap requests are computed, within a bounded share of its time.

**Large uploads.** Receiving a large body keeps the event loop copying (and, with the sender on the same machine,
another core sending). While that runs, a cheap request's forward pass shares a core with it and takes up to twice
as long. So the front counts the express requests in flight (:meth:`PromptGate.prompt`), and a body past its
first :data:`YIELD_BODY` bytes waits (:meth:`PromptGate.wait`) before each further piece while any is: the event
loop stops taking its bytes, uvicorn stops reading the socket, and the sender blocks once the socket's buffers are
full. A body pauses at most
:data:`PAUSE_SHARE` of its time (a :class:`Credit` earned while it is read), so a stream of cheap requests slows a
large upload down but never stops it; the time it paused is added to its ``--body-timeout``.

**Niced forward passes.** In the model process the niced work (``--bulk-nice``) shares the GIL with the express
work: a niced thread preempted while it holds the GIL stalls a cheap request's forward pass until the niced
thread gets a core again. So the niced threads also yield (:class:`YieldGate`, one :data:`GATE` per process): the
front's between decoded blocks (``Work.stop_if_over``), the model process's before each torch operation
(:func:`yield_between_ops`); each waits while its process's other model work runs, at most :data:`THREAD_SHARE` of
its time. The front publishes its count of such work (:class:`SharedCount`), and the model process's niced thread
waits for that too, so it steps aside as soon as an express job starts, before the job reaches the model process.
``/metrics`` counts the front's pauses: ``paraspeechclap_yield_pauses_total`` and
``paraspeechclap_yield_seconds_total``, by ``work`` (``upload``, ``decode``).
"""
from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
import struct
import threading
import time
from typing import Iterator

YIELD_BODY = 2**20   # bytes of a body read at full speed; past them it yields to express requests
PAUSE_SHARE = 0.75   # at most this share of a body's reading is spent paused
PAUSE_CAP = 0.25     # seconds of pause a body may save up (and has at its start)
THREAD_SHARE = 0.75  # at most this share of a yielding thread's time is spent paused
THREAD_CAP = 0.5     # seconds of pause a yielding thread may save up (and has at its start)
WATCH_POLL = 0.002   # seconds between looks at another process's count while only it is busy


class Credit:
    """Seconds of pause a reader may still take: ``share / (1 - share)`` earned per second it is not paused, up to
    ``cap``."""

    def __init__(self, share: float = PAUSE_SHARE, cap: float = PAUSE_CAP):
        if not 0 <= share < 1 or cap < 0:
            raise ValueError("share must be in [0, 1) and cap >= 0")
        self.ratio, self.cap, self.left, self.since = share / (1 - share), float(cap), float(cap), time.monotonic()

    def available(self) -> float:
        now = time.monotonic()
        self.left, self.since = min(self.cap, self.left + self.ratio * (now - self.since)), now
        return self.left

    def spend(self, seconds: float) -> None:
        self.left, self.since = self.left - seconds, time.monotonic()


class PromptGate:
    """Express requests in flight, counted on the event loop; readers of large bodies wait while there are any."""

    def __init__(self):
        self.active = 0
        self._clear: asyncio.Event | None = None   # made in the running loop (an app may be served by another later)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.pauses, self.paused = 0, 0.0          # how often bodies paused, and for how long (s)

    def _event(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._clear is None or self._loop is not loop:
            self._clear, self._loop = asyncio.Event(), loop
            if not self.active:
                self._clear.set()
        return self._clear

    @contextlib.contextmanager
    def prompt(self) -> Iterator[None]:
        """An express request in flight inside (on the event loop)."""
        self.active += 1
        self._event().clear()
        try:
            yield
        finally:
            self.active -= 1
            if not self.active:
                self._event().set()

    async def wait(self, credit: Credit) -> float:
        """Wait while express requests are in flight, as long as ``credit`` lasts; the seconds waited."""
        if not self.active:
            return 0.0
        budget = credit.available()
        if budget <= 0:
            return 0.0
        start = time.monotonic()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._event().wait(), budget)
        waited = time.monotonic() - start
        credit.spend(waited)
        self.pauses, self.paused = self.pauses + 1, self.paused + waited
        return waited


class SharedCount:
    """A count one process keeps and another reads: eight bytes of a memfd mapping, its descriptor handed to the
    reader (``pass_fds``), so nothing is left in a file system. :meth:`create` is None where there is no memfd."""

    def __init__(self, fd: int):
        self.fd = fd
        self._map = mmap.mmap(fd, 8)

    @classmethod
    def create(cls) -> "SharedCount | None":
        try:
            fd = os.memfd_create("paraspeechclap-prompt", os.MFD_CLOEXEC)
        except (AttributeError, OSError):
            return None
        os.ftruncate(fd, 8)
        return cls(fd)

    def add(self, amount: int) -> None:   # one writer (under its gate's lock)
        struct.pack_into("q", self._map, 0, struct.unpack_from("q", self._map)[0] + amount)

    def __bool__(self) -> bool:
        return struct.unpack_from("q", self._map)[0] > 0


class YieldGate:
    """Prompt work is counted while it runs (:meth:`prompt`, any thread); a thread marked :meth:`yielding` pauses at
    each :meth:`checkpoint` while any runs, as long as its :class:`Credit` lasts. ``publish``: a
    :class:`SharedCount` this process's prompt work is also counted in (the front's, for the model process);
    ``watch``: another process's count, whose prompt work the yielding threads here also wait for (the model
    process's niced thread then steps aside as soon as the front starts an express job, before the job reaches
    it)."""

    def __init__(self, share: float = THREAD_SHARE, cap: float = THREAD_CAP):
        Credit(share, cap)   # checks them
        self.share, self.cap = share, cap
        self._ready = threading.Condition()
        self._prompt = 0
        self._local = threading.local()
        self.publish: SharedCount | None = None
        self.watch: SharedCount | None = None
        self.pauses, self.paused = 0, 0.0   # how often yielding threads paused, and for how long (s)

    def yielding(self) -> None:
        """Mark the calling thread as one whose work yields (for good: a niced thread stays niced)."""
        self._local.credit = Credit(self.share, self.cap)

    def is_yielding(self) -> bool:
        return getattr(self._local, "credit", None) is not None

    def shared(self) -> SharedCount | None:
        """The count this process's prompt work is published in (made on first use; None without memfd)."""
        with self._ready:
            if self.publish is None:
                self.publish = SharedCount.create()
                if self.publish is not None and self._prompt:
                    self.publish.add(self._prompt)
            return self.publish

    @contextlib.contextmanager
    def prompt(self) -> Iterator[None]:
        """Prompt work runs inside: yielding threads pause at their checkpoints meanwhile."""
        with self._ready:
            self._prompt += 1
            if self.publish is not None:
                self.publish.add(1)
        try:
            yield
        finally:
            with self._ready:
                self._prompt -= 1
                if self.publish is not None:
                    self.publish.add(-1)
                if not self._prompt:
                    self._ready.notify_all()

    def _busy(self) -> bool:
        return self._prompt > 0 or bool(self.watch)

    def checkpoint(self) -> None:
        """On a yielding thread: wait while prompt work runs (here, or in the watched process: looked at every
        :data:`WATCH_POLL` s), for as long as its credit lasts; else nothing."""
        credit = getattr(self._local, "credit", None)
        if credit is None or not self._busy():
            return
        budget = credit.available()
        if budget <= 0:
            return
        start = time.monotonic()
        deadline = start + budget
        with self._ready:
            while self._busy():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._ready.wait(left if self._prompt else min(left, WATCH_POLL))
        waited = time.monotonic() - start
        credit.spend(waited)
        self.pauses, self.paused = self.pauses + 1, self.paused + waited


GATE = YieldGate()   # the process's own (the front's niced thread and the model process's each yield to their own)


def yield_between_ops() -> None:
    """From now on, every torch call of the calling thread first passes :meth:`YieldGate.checkpoint` of
    :data:`GATE` (a thread-local torch function mode: a model's every operation, whatever its layers, and nothing
    on any other thread)."""
    from torch.overrides import TorchFunctionMode

    class Checkpoints(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            GATE.checkpoint()
            return func(*args, **(kwargs or {}))

    Checkpoints().__enter__()
