"""Dynamic batching with backpressure: one model worker thread, bounded items and work in flight, cheapest first.

Requests are admitted with :meth:`Batcher.admit` (``n`` items costing ``cost`` seconds of work; past
``max_queue_items`` or ``max_queue_cost`` in flight it raises :class:`QueueFull`, which the app answers with 429 and
Retry-After) and then :meth:`submit` their decoded audio as jobs, each carrying a priority (the request's cost:
lower runs first, ties in arrival order). The worker takes the first waiting job and gathers more until it holds
``max_batch_items`` items or ``max_batch_seconds`` of audio or ``max_wait_ms`` has passed, whichever first, taking
only jobs of a similar cost (it waits only while more admitted work is on its way), runs the project's one bulk loop
(:func:`paraspeechclap.inference.embed_items`) over all of them at once, then gives each job its own results and runs
the job's ``after`` step (text embeddings, cosines, softmax) on the same thread, so that every model call happens on
one thread. A :meth:`call` job runs alone. A job whose future was cancelled (its request timed out or its client
left) is dropped when the worker reaches it. Torch releases the GIL, so the event loop keeps answering meanwhile.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..inference import ItemResult, embed_items
from .metrics import Metrics

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """More items or work in flight than the bounds allow; ``retry_after`` is a whole number of seconds."""

    def __init__(self, retry_after: int, what: str):
        super().__init__(f"the server is busy ({what}); retry after {retry_after} s")
        self.retry_after = retry_after


class Ticket:
    """Admission of ``items`` items and ``cost`` seconds of work; released once (when the request ends)."""

    def __init__(self, batcher: "Batcher", items: int, cost: float):
        self.batcher, self.items, self.cost = batcher, items, cost
        self.submitted = self.released = False

    def release(self) -> None:
        batcher = self.batcher
        with batcher._lock:
            if not self.released:
                self.released = True
                batcher._in_flight -= self.items
                batcher._cost -= self.cost
                if not self.submitted:
                    batcher._incoming = max(0, batcher._incoming - 1)


@dataclass
class _Job:
    items: Sequence[Any]
    after: Callable[[list[ItemResult]], Any] | None
    future: Future
    seconds: float = 0.0
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class _Call:
    fn: Callable[[], Any]
    future: Future
    enqueued: float = field(default_factory=time.perf_counter)


SIMILAR_SLACK = 8.0  # seconds of work under which any two requests count as alike


def similar(a: float, b: float) -> bool:
    """Whether requests costing ``a`` and ``b`` may share a batch: within a factor of two (plus a slack), so that a
    cheap request is never held up by an expensive one gathered with it."""
    return max(a, b) + SIMILAR_SLACK <= 2 * (min(a, b) + SIMILAR_SLACK)


def _seconds(item: Any) -> float:
    """Seconds of a decoded ``(wave, rate)`` item (0 for anything else: it is not known before decoding)."""
    if isinstance(item, tuple) and len(item) == 2 and hasattr(item[0], "__len__") and item[1]:
        return len(item[0]) / float(item[1])
    return 0.0


class Batcher:
    def __init__(self, model: Any, max_batch_items: int = 32, max_wait_ms: float = 10.0, max_queue_items: int = 256,
                 batch_size: int | None = None, metrics: Metrics | None = None, max_batch_seconds: float = math.inf,
                 max_queue_cost: float = math.inf):
        if max_batch_items < 1 or max_queue_items < 1 or max_wait_ms < 0 or max_batch_seconds <= 0:
            raise ValueError("max_batch_items, max_queue_items and max_batch_seconds must be positive, max_wait_ms >= 0")
        self.model = model
        self.max_batch_items, self.max_wait = int(max_batch_items), float(max_wait_ms) / 1000.0
        self.max_batch_seconds, self.max_queue_cost = float(max_batch_seconds), float(max_queue_cost)
        self.max_queue_items, self.batch_size = int(max_queue_items), batch_size
        self.metrics = metrics or Metrics()
        self._heap: list = []
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._lock = threading.Lock()
        self._in_flight = 0        # items admitted and not yet answered
        self._cost = 0.0           # seconds of work admitted and not yet answered
        self._incoming = 0         # admitted requests not yet submitted (decoding): worth waiting for
        self._rate = 0.0           # items per second of recent batches (for Retry-After)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="paraspeechclap-model-worker", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ admission
    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def cost_in_flight(self) -> float:
        return self._cost

    @property
    def queue_depth(self) -> int:
        return len(self._heap)

    def full(self) -> bool:
        return self._in_flight >= self.max_queue_items or self._cost >= self.max_queue_cost

    def admit(self, items: int = 1, cost: float = 0.0) -> Ticket:
        """Reserve room for ``items`` items and ``cost`` seconds of work or raise :class:`QueueFull`."""
        items, cost = max(1, int(items)), max(0.0, float(cost))
        with self._lock:
            over_items = self._in_flight + items > self.max_queue_items
            over_cost = self._cost + cost > self.max_queue_cost
            if over_items or over_cost:
                rate = self._rate or 10.0
                retry = int(min(60, max(1, math.ceil(self._in_flight / rate))))
                what = (f"{self._in_flight} items in flight, limit {self.max_queue_items}" if over_items else
                        f"{self._cost:.0f} s of work in flight, limit {self.max_queue_cost:g}")
                raise QueueFull(retry, what)
            self._in_flight += items
            self._cost += cost
            self._incoming += 1
            return Ticket(self, items, cost)

    def mark_submitted(self, ticket: Ticket | None) -> None:
        """The request holding ``ticket`` has handed its first job over (the gatherer no longer waits for it)."""
        if ticket is not None:
            with self._lock:
                if not ticket.submitted and not ticket.released:
                    ticket.submitted = True
                    self._incoming = max(0, self._incoming - 1)

    # ------------------------------------------------------------------ jobs
    def submit(self, items: Sequence[Any], after: Callable[[list[ItemResult]], Any] | None = None,
               ticket: Ticket | None = None, priority: float = 0.0) -> Future:
        """Embed ``items`` (as the bulk loop takes them) in a coming batch; the future gets ``after(results)`` (or the
        list of :class:`ItemResult` when ``after`` is None). Lower ``priority`` runs first."""
        items = list(items)
        return self._put(_Job(items, after, Future(), sum(_seconds(item) for item in items)), ticket, priority)

    def call(self, fn: Callable[[], Any], ticket: Ticket | None = None, priority: float = 0.0) -> Future:
        """Run ``fn()`` on the model worker, alone."""
        return self._put(_Call(fn, Future()), ticket, priority)

    def _put(self, job, ticket: Ticket | None, priority: float) -> Future:
        if ticket is not None:   # released when this job ends (a request of several jobs releases it itself)
            job.future.add_done_callback(lambda _: ticket.release())
        self.mark_submitted(ticket)
        with self._ready:
            heapq.heappush(self._heap, (float(priority), next(self._order), job))
            self._ready.notify()
        return job.future

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._ready:
            self._ready.notify_all()
        self._thread.join(timeout)

    # ------------------------------------------------------------------ the worker
    def _take(self, timeout: float | None, fits: Callable[[tuple], bool] | None = None):
        """The waiting ``(priority, order, job)`` with the lowest priority (only if it ``fits``), waiting up to
        ``timeout`` for one."""
        with self._ready:
            if not self._heap and timeout != 0 and not self._stop.is_set():
                self._ready.wait(timeout)
            if not self._heap or (fits is not None and not fits(self._heap[0])):
                return None
            return heapq.heappop(self._heap)

    def _run(self) -> None:
        while not self._stop.is_set():
            entry = self._take(0.5)
            if entry is None:
                continue
            if isinstance(entry[2], _Call):
                self._run_call(entry[2])
                continue
            self._run_batch(self._gather(entry))

    def _gather(self, entry: tuple) -> list[_Job]:
        first_priority, _, first = entry
        jobs, count, seconds = [first], len(first.items), first.seconds
        deadline = time.perf_counter() + self.max_wait

        def fits(entry) -> bool:
            priority, _, job = entry
            return (isinstance(job, _Job) and count + len(job.items) <= self.max_batch_items
                    and seconds + job.seconds <= self.max_batch_seconds and similar(priority, first_priority))

        while count < self.max_batch_items and seconds < self.max_batch_seconds:
            remaining = deadline - time.perf_counter()
            if self._heap:
                taken = self._take(0, fits)
                if taken is None:
                    break   # the next job does not fit this batch: it runs next
                job = taken[2]
            elif remaining <= 0 or self._incoming == 0:
                break
            else:
                taken = self._take(min(remaining, 0.002), fits)
                if taken is None:
                    continue
                job = taken[2]
            jobs.append(job)
            count, seconds = count + len(job.items), seconds + job.seconds
        return jobs

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
