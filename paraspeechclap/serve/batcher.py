"""Dynamic batching with backpressure: one model worker thread, a bounded number of items in flight.

Requests are admitted with :meth:`Batcher.admit` (``n`` items; past ``max_queue_items`` in flight it raises
:class:`QueueFull`, which the app answers with 429 and Retry-After) and then :meth:`submit` their decoded audio as a
job. The worker takes the first waiting job and gathers more until it holds ``max_batch_items`` items or
``max_wait_ms`` has passed, whichever first (it waits only while more admitted work is on its way), runs the
project's one bulk loop (:func:`paraspeechclap.inference.embed_items`) over all of them at once, then gives each job
its own results and runs the job's ``after`` step (text embeddings, cosines, softmax) on the same thread, so that
every model call happens on one thread. A :meth:`call` job (e.g. a timeline) runs alone. Torch releases the GIL, so
the event loop keeps answering (and rejecting) while the worker computes.
"""
from __future__ import annotations

import logging
import math
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..inference import ItemResult, embed_items
from .metrics import Metrics

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """More items in flight than the bound allows; ``retry_after`` is a whole number of seconds."""

    def __init__(self, retry_after: int, in_flight: int, limit: int):
        super().__init__(f"the server is busy ({in_flight} items in flight, limit {limit}); retry after {retry_after} s")
        self.retry_after = retry_after


class Ticket:
    """Admission of ``items`` items; released once (when the job ends, or when the request gives up)."""

    def __init__(self, batcher: "Batcher", items: int):
        self.batcher, self.items = batcher, items
        self.submitted = self.released = False

    def release(self) -> None:
        batcher = self.batcher
        with batcher._lock:
            if not self.released:
                self.released = True
                batcher._in_flight -= self.items
                if not self.submitted:
                    batcher._incoming = max(0, batcher._incoming - 1)


@dataclass
class _Job:
    items: Sequence[Any]
    after: Callable[[list[ItemResult]], Any] | None
    future: Future
    ticket: Ticket | None
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class _Call:
    fn: Callable[[], Any]
    future: Future
    ticket: Ticket | None
    enqueued: float = field(default_factory=time.perf_counter)


class Batcher:
    def __init__(self, model: Any, max_batch_items: int = 32, max_wait_ms: float = 10.0, max_queue_items: int = 256,
                 batch_size: int | None = None, metrics: Metrics | None = None):
        if max_batch_items < 1 or max_queue_items < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_items and max_queue_items must be >= 1, max_wait_ms >= 0")
        self.model = model
        self.max_batch_items, self.max_wait = int(max_batch_items), float(max_wait_ms) / 1000.0
        self.max_queue_items, self.batch_size = int(max_queue_items), batch_size
        self.metrics = metrics or Metrics()
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._in_flight = 0        # items admitted and not yet answered
        self._incoming = 0         # admitted requests not yet submitted (decoding): worth waiting for
        self._rate = 0.0           # items per second of recent batches (for Retry-After)
        self._carry: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="paraspeechclap-model-worker", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ admission
    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize() + len(self._carry)

    def admit(self, items: int = 1) -> Ticket:
        """Reserve room for ``items`` items or raise :class:`QueueFull`."""
        items = max(1, int(items))
        with self._lock:
            if self._in_flight + items > self.max_queue_items:
                rate = self._rate or 10.0
                retry = int(min(60, max(1, math.ceil(self._in_flight / rate))))
                raise QueueFull(retry, self._in_flight, self.max_queue_items)
            self._in_flight += items
            self._incoming += 1
            return Ticket(self, items)

    def _submitted(self, ticket: Ticket | None) -> None:
        if ticket is not None:
            with self._lock:
                if not ticket.submitted and not ticket.released:
                    ticket.submitted = True
                    self._incoming = max(0, self._incoming - 1)

    # ------------------------------------------------------------------ jobs
    def submit(self, items: Sequence[Any], after: Callable[[list[ItemResult]], Any] | None = None,
               ticket: Ticket | None = None) -> Future:
        """Embed ``items`` (as the bulk loop takes them) in the next batch; the future gets ``after(results)`` (or the
        list of :class:`ItemResult` when ``after`` is None). The ticket is released when the job ends."""
        future: Future = Future()
        if ticket is not None:
            future.add_done_callback(lambda _: ticket.release())
        self._submitted(ticket)
        self._queue.put(_Job(list(items), after, future, ticket))
        return future

    def call(self, fn: Callable[[], Any], ticket: Ticket | None = None) -> Future:
        """Run ``fn()`` on the model worker, alone."""
        future: Future = Future()
        if ticket is not None:
            future.add_done_callback(lambda _: ticket.release())
        self._submitted(ticket)
        self._queue.put(_Call(fn, future, ticket))
        return future

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._queue.put(None)
        self._thread.join(timeout)

    # ------------------------------------------------------------------ the worker
    def _next(self, timeout: float | None):
        if self._carry:
            return self._carry.pop(0)
        try:
            return self._queue.get(timeout=timeout) if timeout is None or timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return None

    def _run(self) -> None:
        while not self._stop.is_set():
            first = self._next(None)
            if first is None:
                continue
            if isinstance(first, _Call):
                self._run_call(first)
                continue
            jobs, count = [first], len(first.items)
            deadline = time.perf_counter() + self.max_wait
            while count < self.max_batch_items:
                remaining = deadline - time.perf_counter()
                if remaining <= 0 or (self._queue.empty() and not self._carry and self._incoming == 0):
                    break
                job = self._next(min(remaining, 0.002) if self._queue.empty() else 0)
                if job is None:
                    continue
                if isinstance(job, _Call) or count + len(job.items) > self.max_batch_items:
                    self._carry.append(job)   # runs next, in order
                    break
                jobs.append(job)
                count += len(job.items)
            self._run_batch(jobs)

    def _run_call(self, job: _Call) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            job.future.set_result(job.fn())
        except BaseException as err:  # noqa: BLE001 - handed to the request
            job.future.set_exception(err)

    def _run_batch(self, jobs: list[_Job]) -> None:
        jobs = [job for job in jobs if job.future.set_running_or_notify_cancel()]  # timed-out requests drop out
        if not jobs:
            return
        flat = [item for job in jobs for item in job.items]
        start = time.perf_counter()
        try:
            results = list(embed_items(self.model, flat, batch_size=self.batch_size))
        except BaseException as err:  # noqa: BLE001 - the whole batch failed: every job learns why
            log.exception("a batch of %d items failed", len(flat))
            for job in jobs:
                job.future.set_exception(err)
            return
        seconds = time.perf_counter() - start
        self.metrics.batch(len(flat), sum(1 for r in results if not r.ok), seconds)
        if seconds > 0:
            rate = len(flat) / seconds
            self._rate = rate if not self._rate else 0.8 * self._rate + 0.2 * rate
        offset = 0
        for job in jobs:
            mine = results[offset:offset + len(job.items)]
            offset += len(job.items)
            for position, result in enumerate(mine):
                result.index = position
            try:
                job.future.set_result(job.after(mine) if job.after is not None else mine)
            except BaseException as err:  # noqa: BLE001
                job.future.set_exception(err)
