"""Dynamic batching with backpressure: two model lanes, bounded items and work in flight, deadlines kept.

Requests are admitted with :meth:`Batcher.admit` (``n`` items costing ``cost`` seconds of work; past
``max_queue_items`` or ``max_queue_cost`` in flight, or when the work ahead could not be done before the request's
deadline at the lane's measured rate, it raises :class:`QueueFull`, which the app answers with 429 and Retry-After;
a request that could not finish in time even alone raises :class:`TooSlow`, a 413) and then :meth:`submit` their
decoded audio as jobs. A request costing at most ``express_cost`` runs on the **express lane**, a model thread of
its own, so a cheap request never waits behind an expensive one's batch; the rest share the **bulk lane**. Within a
lane jobs run in the order of their key: the request's admission time plus its cost at the lane's measured rate (the
time it would be done if it ran alone at once), so cheap requests overtake expensive ones admitted a little earlier,
and no admitted request waits for ever behind a stream of cheaper ones.

Each lane's worker takes the first waiting job and gathers more until it holds ``max_batch_items`` items or
``max_batch_seconds`` of audio or ``max_wait_ms`` has passed, whichever first, taking only jobs of a similar cost (it
waits only while more admitted work is on its way), runs the project's one bulk loop
(:func:`paraspeechclap.inference.embed_items`) over all of them at once, then gives each job its own results and runs
the job's ``after`` step (text embeddings, cosines, softmax) on the same thread. A :meth:`call` job runs alone. A job
whose future was cancelled (its request timed out or its client left) is dropped when the worker reaches it. Torch
releases the GIL, so the event loop keeps answering meanwhile.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..inference import ItemResult, embed_items
from .metrics import Metrics
from .yielding import GATE

log = logging.getLogger(__name__)

EXPRESS, BULK = "express", "bulk"
DEFAULT_RATE = 100.0     # seconds of work per second a lane is assumed to do before it has measured its own
ESTIMATE_SHARE = 0.5     # admitted work must be estimated done within this share of the timeout (the rest: slack)


class QueueFull(Exception):
    """More items or work in flight than the bounds allow; ``retry_after`` is a whole number of seconds."""

    def __init__(self, retry_after: int, what: str):
        super().__init__(f"the server is busy ({what}); retry after {retry_after} s")
        self.retry_after = retry_after


class TooSlow(Exception):
    """A request that could not be done within the timeout even on an idle lane, at its measured rate."""


class Ticket:
    """Admission of ``items`` items and ``cost`` seconds of work on ``lane``; released once (when the request
    ends). ``key`` orders its jobs in the lane."""

    def __init__(self, batcher: "Batcher", items: int, cost: float, lane: "_Lane", key: float):
        self.batcher, self.items, self.cost, self.lane, self.key = batcher, items, cost, lane, key
        self.submitted = self.released = False

    def release(self) -> None:
        batcher = self.batcher
        with batcher._lock:
            if not self.released:
                self.released = True
                batcher._in_flight -= self.items
                batcher._cost -= self.cost
                self.lane.cost -= self.cost
                if not self.submitted:
                    batcher._incoming = max(0, batcher._incoming - 1)


@dataclass
class _Job:
    items: Sequence[Any]
    after: Callable[[list[ItemResult]], Any] | None
    future: Future
    seconds: float = 0.0
    cost: float = 0.0
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class _Call:
    fn: Callable[[], Any]
    future: Future
    cost: float = 0.0
    enqueued: float = field(default_factory=time.perf_counter)


SIMILAR_SLACK = 8.0  # seconds of work under which any two requests count as alike


def similar(a: float, b: float) -> bool:
    """Whether requests costing ``a`` and ``b`` may share a batch: within a factor of two (plus a slack), so that a
    cheap request is never held up by an expensive one gathered with it."""
    return max(a, b) + SIMILAR_SLACK <= 2 * (min(a, b) + SIMILAR_SLACK)


def item_seconds(item: Any) -> float:
    """Seconds of a decoded ``(wave, rate)`` item (0 for anything else: it is not known before decoding)."""
    if isinstance(item, tuple) and len(item) == 2 and hasattr(item[0], "__len__") and item[1]:
        return len(item[0]) / float(item[1])
    return 0.0


def thread_clock() -> tuple[int, int] | None:
    """This thread's CPU time and time spent runnable but waiting for a core (ns; Linux schedstat, else None): what
    a slow model job lost to other threads and processes."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as stat:
            cpu, waited = stat.read().split()[:2]
        return int(cpu), int(waited)
    except (OSError, ValueError):
        return None


def _start(futures: list[Future], clock: Callable = thread_clock) -> tuple[float, tuple[int, int] | None]:
    """The jobs' start on each future (``started``, perf_counter), which the request's Server-Timing reads; returns
    it and the lane thread's ``clock()`` for :func:`_stamp`."""
    now, clock = time.perf_counter(), clock()
    for future in futures:
        future.started = now
    return now, clock


def _stamp(futures: list[Future], before: tuple[int, int] | None, clock: Callable = thread_clock) -> None:
    """The job's end on each future: ``finished`` (perf_counter) and the lane thread's CPU and run-queue time since
    ``before`` (s), which the request turns into Server-Timing phases."""
    after, now = clock(), time.perf_counter()
    for future in futures:
        future.finished = now
        if before is not None and after is not None:
            future.cpu, future.runq = (after[0] - before[0]) / 1e9, (after[1] - before[1]) / 1e9


def thread_priority() -> int:
    """The calling thread's nice value (Linux schedules threads one by one); 0 where it cannot be read."""
    import os

    try:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except (AttributeError, OSError):
        return 0


def lower_thread_priority(nice: int) -> bool:
    """Give the calling thread a lower CPU priority (``setpriority`` on its thread id), never a higher one; False
    where that is not possible."""
    import os

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), max(nice, thread_priority()))
        return True
    except (AttributeError, OSError):
        return False


def _niced_thread(nice: int) -> None:
    """The niced thread's start: its priority lowered, its work yielding to the lanes' (:mod:`.yielding`)."""
    lower_thread_priority(nice)
    GATE.yielding()


class _Lane:
    """One model thread and the jobs waiting for it, in key order."""

    def __init__(self, name: str):
        self.name = name
        self.heap: list = []
        self.ready = threading.Condition()
        self.cost = 0.0            # seconds of work admitted to this lane and not yet answered
        self.rate = 0.0            # seconds of audio per second its recent batches did (0: not measured yet)
        self.thread: threading.Thread | None = None

    @property
    def speed(self) -> float:
        return self.rate or DEFAULT_RATE


class Batcher:
    def __init__(self, model: Any, max_batch_items: int = 32, max_wait_ms: float = 10.0, max_queue_items: int = 256,
                 batch_size: int | None = None, metrics: Metrics | None = None, max_batch_seconds: float = math.inf,
                 max_queue_cost: float = math.inf, express_cost: float = 0.0, timeout: float = math.inf,
                 bulk_nice: int = 0, nice_cost: float = 0.0):
        if max_batch_items < 1 or max_queue_items < 1 or max_wait_ms < 0 or max_batch_seconds <= 0:
            raise ValueError("max_batch_items, max_queue_items and max_batch_seconds must be positive, max_wait_ms >= 0")
        self.model = model
        # the lane's clock: a model in another process adds the time its forward passes took there
        self.clock = getattr(model, "thread_clock", None) or thread_clock
        self.max_batch_items, self.max_wait = int(max_batch_items), float(max_wait_ms) / 1000.0
        self.max_batch_seconds, self.max_queue_cost = float(max_batch_seconds), float(max_queue_cost)
        self.max_queue_items, self.batch_size = int(max_queue_items), batch_size
        self.express_cost, self.timeout, self.bulk_nice = float(express_cost), float(timeout), int(bulk_nice)
        self.nice_cost = float(nice_cost)
        # the bulk lane's most expensive work runs niced on a thread of its own, which the lane waits for: a thread
        # cannot raise its own priority back without privileges, so cheaper bulk work keeps the lane's priority
        self._niced = (ThreadPoolExecutor(1, thread_name_prefix="paraspeechclap-model-niced",
                                          initializer=_niced_thread, initargs=(self.bulk_nice,))
                       if self.bulk_nice > 0 else None)
        self.metrics = metrics or Metrics()
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._in_flight = 0        # items admitted and not yet answered
        self._cost = 0.0           # seconds of work admitted and not yet answered
        self._incoming = 0         # admitted requests not yet submitted (decoding): worth waiting for
        self._stop = threading.Event()
        self.lanes = {name: _Lane(name) for name in (EXPRESS, BULK)}
        for lane in self.lanes.values():
            lane.thread = threading.Thread(target=self._run, args=(lane,), name=f"paraspeechclap-model-{lane.name}",
                                           daemon=True)
            lane.thread.start()

    # ------------------------------------------------------------------ admission
    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def cost_in_flight(self) -> float:
        return self._cost

    @property
    def queue_depth(self) -> int:
        return sum(len(lane.heap) for lane in self.lanes.values())

    def lane_for(self, cost: float) -> _Lane:
        """The express lane for a request costing at most ``express_cost``, else the bulk lane."""
        return self.lanes[EXPRESS if cost <= self.express_cost else BULK]

    def full(self) -> bool:
        return self._in_flight >= self.max_queue_items or self._cost >= self.max_queue_cost

    def admit(self, items: int = 1, cost: float = 0.0) -> Ticket:
        """Reserve room for ``items`` items and ``cost`` seconds of work or raise :class:`QueueFull` (or
        :class:`TooSlow`: it could not be done within the timeout even alone)."""
        items, cost = max(1, int(items)), max(0.0, float(cost))
        lane = self.lane_for(cost)
        with self._lock:
            over_items = self._in_flight + items > self.max_queue_items
            over_cost = self._cost + cost > self.max_queue_cost
            if over_items or over_cost:
                retry = int(min(60, max(1, math.ceil(self._cost / self.lanes[BULK].speed))))
                what = (f"{self._in_flight} items in flight, limit {self.max_queue_items}" if over_items else
                        f"{self._cost:.0f} s of work in flight, limit {self.max_queue_cost:g}")
                raise QueueFull(retry, what)
            self._check_deadline(lane, cost)
            self._in_flight += items
            self._cost += cost
            lane.cost += cost
            self._incoming += 1
            return Ticket(self, items, cost, lane, time.monotonic() + cost / lane.speed)

    def _check_deadline(self, lane: _Lane, cost: float) -> None:
        """Refuse work the lane could not finish before the request's deadline at its measured rate: the work in
        flight there, plus twice its own (as much again may overtake it, being cheaper)."""
        if not lane.rate or not math.isfinite(self.timeout):
            return
        allowed = ESTIMATE_SHARE * self.timeout
        alone = 2 * cost / lane.rate
        if alone > allowed:
            raise TooSlow(f"at this server's measured rate ({lane.rate:.0f} s of audio per second) it would take "
                          f"about {alone:.0f} s, over {allowed:g} s (half the --timeout)")
        estimate = (lane.cost + 2 * cost) / lane.rate
        if estimate > allowed:
            raise QueueFull(int(min(60, max(1, math.ceil(estimate - allowed)))),
                            f"{lane.cost:.0f} s of work ahead on the {lane.name} lane could not be done in time")

    def mark_submitted(self, ticket: Ticket | None) -> None:
        """The request holding ``ticket`` has handed its first job over (the gatherer no longer waits for it)."""
        if ticket is not None:
            with self._lock:
                if not ticket.submitted and not ticket.released:
                    ticket.submitted = True
                    self._incoming = max(0, self._incoming - 1)

    # ------------------------------------------------------------------ jobs
    def submit(self, items: Sequence[Any], after: Callable[[list[ItemResult]], Any] | None = None,
               ticket: Ticket | None = None, priority: float = 0.0, owner: Ticket | None = None) -> Future:
        """Embed ``items`` (as the bulk loop takes them) in a coming batch; the future gets ``after(results)`` (or the
        list of :class:`ItemResult` when ``after`` is None). ``priority``: the request's cost (which jobs may share a
        batch). The job takes the lane and order of ``owner`` (or of ``ticket``, which is released when the job
        ends); without either, the lane its ``priority`` picks, ordered as if admitted now."""
        items = list(items)
        job = _Job(items, after, Future(), sum(item_seconds(item) for item in items), float(priority))
        return self._put(job, ticket, owner)

    def call(self, fn: Callable[[], Any], ticket: Ticket | None = None, priority: float = 0.0,
             owner: Ticket | None = None) -> Future:
        """Run ``fn()`` on a model worker (the request's lane), alone."""
        return self._put(_Call(fn, Future(), float(priority)), ticket, owner)

    def _put(self, job, ticket: Ticket | None, owner: Ticket | None) -> Future:
        if ticket is not None:   # released when this job ends (a request of several jobs releases it itself)
            job.future.add_done_callback(lambda _: ticket.release())
        owner = owner or ticket
        self.mark_submitted(owner)
        lane = owner.lane if owner is not None else self.lane_for(job.cost)
        key = owner.key if owner is not None else time.monotonic() + job.cost / lane.speed
        with lane.ready:
            heapq.heappush(lane.heap, (key, next(self._order), job))
            lane.ready.notify()
        return job.future

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for lane in self.lanes.values():
            with lane.ready:
                lane.ready.notify_all()
        for lane in self.lanes.values():
            lane.thread.join(timeout)
        if self._niced is not None:
            self._niced.shutdown(wait=False)

    # ------------------------------------------------------------------ the workers
    def _take(self, lane: _Lane, timeout: float | None, fits: Callable[[tuple], bool] | None = None):
        """The waiting ``(key, order, job)`` with the lowest key (only if it ``fits``), waiting up to ``timeout``
        for one."""
        with lane.ready:
            if not lane.heap and timeout != 0 and not self._stop.is_set():
                lane.ready.wait(timeout)
            if not lane.heap or (fits is not None and not fits(lane.heap[0])):
                return None
            return heapq.heappop(lane.heap)

    def _run(self, lane: _Lane) -> None:
        while not self._stop.is_set():
            entry = self._take(lane, 0.5)
            if entry is None:
                continue
            if isinstance(entry[2], _Call):
                self._on_lane(lane, entry[2].cost, self._run_call, entry[2])
                continue
            jobs = self._gather(lane, entry[2])
            self._on_lane(lane, max(job.cost for job in jobs), self._run_batch, lane, jobs)

    def _on_lane(self, lane: _Lane, cost: float, work: Callable, *args) -> None:
        """``work(*args)`` on the lane's thread, or for bulk work of requests costing over ``nice_cost``, on the
        niced thread while the lane waits (so the lane still runs one thing at a time)."""
        if self._niced is not None and lane.name == BULK and cost > self.nice_cost:
            self._niced.submit(work, *args).result()
        else:
            with GATE.prompt():   # the niced thread's work pauses at its checkpoints meanwhile
                work(*args)

    def _gather(self, lane: _Lane, first: _Job) -> list[_Job]:
        jobs, count, seconds = [first], len(first.items), first.seconds
        deadline = time.perf_counter() + self.max_wait

        def fits(entry) -> bool:
            job = entry[2]
            return (isinstance(job, _Job) and count + len(job.items) <= self.max_batch_items
                    and seconds + job.seconds <= self.max_batch_seconds and similar(job.cost, first.cost))

        while count < self.max_batch_items and seconds < self.max_batch_seconds:
            remaining = deadline - time.perf_counter()
            if lane.heap:
                taken = self._take(lane, 0, fits)
                if taken is None:
                    break   # the next job does not fit this batch: it runs next
            elif remaining <= 0 or self._incoming == 0:
                break
            else:
                taken = self._take(lane, min(remaining, 0.002), fits)
                if taken is None:
                    continue
            job = taken[2]
            jobs.append(job)
            count, seconds = count + len(job.items), seconds + job.seconds
        return jobs

    def _run_call(self, job: _Call) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        _, clock = _start([job.future], self.clock)
        try:
            result = job.fn()
            _stamp([job.future], clock, self.clock)
            job.future.set_result(result)
        except BaseException as err:  # noqa: BLE001 - handed to the request
            job.future.set_exception(err)

    def _run_batch(self, lane: _Lane, jobs: list[_Job]) -> None:
        jobs = [job for job in jobs if job.future.set_running_or_notify_cancel()]  # timed-out requests drop out
        if not jobs:
            return
        flat = [item for job in jobs for item in job.items]
        start, clock = _start([job.future for job in jobs], self.clock)
        try:
            results = list(embed_items(self.model, flat, batch_size=self.batch_size))
        except BaseException as err:  # noqa: BLE001 - the whole batch failed: every job learns why
            log.exception("a batch of %d items failed", len(flat))
            for job in jobs:
                job.future.set_exception(err)
            return
        took = time.perf_counter() - start
        _stamp([job.future for job in jobs], clock, self.clock)
        self.metrics.batch(len(flat), sum(1 for r in results if not r.ok), took)
        audio = sum(job.seconds for job in jobs)
        if took > 0 and audio > 0:
            rate = audio / took
            lane.rate = rate if not lane.rate else 0.8 * lane.rate + 0.2 * rate
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
