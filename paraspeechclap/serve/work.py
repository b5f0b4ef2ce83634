"""One admitted request's work: its leases (items and work in flight, decoded-audio memory), its audio decoded a
bounded number at a time, its jobs on the model worker in chunks, and its deadline. Between chunks, and every
:data:`POLL` seconds while it waits, the request checks its deadline and whether its client is still there: a 504 or
a client that left cancels the chunks not yet run, so the worker is free again within one chunk."""
from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import Future
from typing import Any, Callable, Sequence

from starlette.concurrency import run_in_threadpool

from ..kernels.malloc import release_freed_memory
from .admission import check_request_cost
from .batcher import EXPRESS, QueueFull, TooSlow
from .config import SAMPLE_BYTES
from .errors import ApiError
from .inputs import decode
from .metrics import request_timing
from .yielding import GATE

POLL = 0.25  # seconds between checks of the deadline and the client while a request waits for the worker
# Where a piece of work runs, by its size: on the event loop when it takes about a millisecond (under load a hop to a
# thread costs more than that, waiting for the GIL), in the thread pool up to a few tens of milliseconds, and beyond
# that on the request's model lane, where it is scheduled and charged like model work and takes no core of its own.
INLINE_SAMPLES = 2**18    # samples (frames x channels) to decode: 16 s of 16 kHz mono
INLINE_BYTES = 256 * 1024  # bytes (or base64 characters) of an audio file to read
SMALL_DECODE = 2**21      # samples: about 20 s of 48 kHz stereo


def spec_size(spec: Any) -> int:
    """Bytes an audio field holds (a server-side path counts as large: the file system may be slow)."""
    from .inputs import Upload

    if isinstance(spec, Upload):
        return len(spec.data)
    if isinstance(spec, dict) and isinstance(spec.get("base64"), (str, bytes, bytearray, memoryview)):
        return len(spec["base64"])
    return INLINE_BYTES + 1 if isinstance(spec, dict) and "path" in spec else 0


def inline_spec(*specs: Any) -> bool:
    """Whether audio fields are small enough to be read (base64, header) on the event loop."""
    return sum(spec_size(spec) for spec in specs) <= INLINE_BYTES


class Work:
    def __init__(self, state, request, ticket, priority: float):
        self.state, self.request, self.ticket, self.priority = state, request, ticket, priority
        self.deadline = time.monotonic() + state.config.request_timeout
        self.pending: list[Future] = []
        self.audio_bytes = 0
        self.over = False   # set when the request ends: work still running for it stops at its next check
        self.timing = request_timing(getattr(request, "scope", None))   # sent back as a Server-Timing header
        self.timing["admit"] = time.perf_counter() - self.timing.get("start", time.perf_counter())

    # ------------------------------------------------------------------ memory for decoded audio
    def hold_audio(self, seconds: float, what: str) -> None:
        """Charge ``seconds`` of decoded 16 kHz audio to the memory budget (429 when it does not fit)."""
        amount = int(seconds * SAMPLE_BYTES)
        self.audio_bytes += self.state.audio_budget.take(amount, what)

    async def decode(self, source, max_seconds: float, where: str = "audio", samples: int = 0):
        """``(wave, rate)``, decoded where its size says (``samples`` to decode, by its header); a decode on the
        model lane stops after the block in which the request ended (504, client gone)."""
        stop = self.stop_if_over if samples > SMALL_DECODE else None
        start = time.perf_counter()
        try:
            return await self.run(lambda: decode(self.state.model, source, max_seconds, where, stop), samples)
        finally:
            self.timing["decode"] = self.timing.get("decode", 0.0) + time.perf_counter() - start

    def timed_out(self, why: str = "") -> ApiError:
        """The 504 of a request past its deadline (``why``: what it was doing, or that its client left)."""
        return ApiError(504, "timeout", f"the request did not finish within {self.state.config.request_timeout:g} s"
                                        f"{why}")

    def stop_if_over(self) -> None:
        """Raise (a 504) when the request has ended or passed its deadline: called by work on a model lane between
        its pieces, so that the lane is free again within one piece. On the niced thread, a piece also waits while
        the lanes run other work (:mod:`.yielding`)."""
        if self.over or time.monotonic() > self.deadline:
            raise self.timed_out(" (or its client left)")
        GATE.checkpoint()

    async def run(self, fn: Callable[[], Any], samples: int = 0) -> Any:
        """``fn()`` (decoding ``samples``) on the event loop, in the thread pool, or on the request's model lane
        (see :data:`INLINE_SAMPLES`, :data:`SMALL_DECODE`), within the request's deadline."""
        if samples <= INLINE_SAMPLES:
            return fn()
        if samples <= SMALL_DECODE:
            return await self.in_thread(fn)
        return await self.call(lambda: _then_trim(fn))

    async def in_thread(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` in the thread pool, within the request's deadline."""
        try:
            return await asyncio.wait_for(run_in_threadpool(fn), max(0.001, self.deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise self.timed_out(" (decoding)") from None

    # ------------------------------------------------------------------ jobs on the model worker
    async def embed(self, items: Sequence[Any], after: Callable | None = None) -> Any:
        return (await self.embed_chunks([(items, after)]))[0]

    async def embed_chunks(self, chunks: Sequence[tuple[Sequence[Any], Callable | None]]) -> list:
        """Every chunk submitted at once (the worker may batch them together), their results in order."""
        batcher = self.state.batcher
        futures = [batcher.submit(items, after, priority=self.priority, owner=self.ticket) for items, after in chunks]
        return await self._wait(futures)

    async def call(self, fn: Callable[[], Any]) -> Any:
        return (await self._wait([self.state.batcher.call(fn, priority=self.priority, owner=self.ticket)]))[0]

    async def _wait(self, futures: list[Future]) -> list:
        self.pending.extend(futures)
        waiting = {asyncio.wrap_future(f): i for i, f in enumerate(futures)}
        submitted = time.perf_counter()
        try:
            while not all(w.done() for w in waiting):
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    raise self.timed_out()
                await asyncio.wait([w for w in waiting if not w.done()], timeout=min(POLL, remaining),
                                   return_when=asyncio.FIRST_EXCEPTION)
                await self.check_client()
            return [w.result() for w in waiting]
        except ValueError as err:
            raise ApiError(400, "bad_request", str(err)) from None
        finally:
            self.cancel()
            self._time_jobs(futures, submitted)

    def _time_jobs(self, futures: list[Future], submitted: float) -> None:
        """queue: waiting for a model lane; model: the lane's work, from the first job's start to the last one's end;
        back: from then until the event loop resumed the request."""
        started = [f.started for f in futures if getattr(f, "started", None) is not None]
        finished = [f.finished for f in futures if getattr(f, "finished", None) is not None]
        if not started or len(finished) != len(futures):
            return
        now = time.perf_counter()
        phases = {"queue": min(started) - submitted, "model": max(finished) - min(started), "back": now - max(finished)}
        batches = {f.started: f for f in futures if hasattr(f, "cpu")}   # jobs of one batch share its clock
        if batches:   # of the model phase: the lane's CPU, and its time runnable but without a core
            phases["cpu"] = sum(f.cpu for f in batches.values())
            phases["runq"] = sum(f.runq for f in batches.values())
        for name, seconds in phases.items():
            self.timing[name] = self.timing.get(name, 0.0) + seconds

    async def check_client(self) -> None:
        if await self.request.is_disconnected():
            raise ApiError(499, "client_closed", "the client closed the connection")
        if time.monotonic() > self.deadline:
            raise self.timed_out()

    def cancel(self) -> None:
        for future in self.pending:
            future.cancel()
        self.pending = [f for f in self.pending if not f.done()]

    def close(self) -> None:
        self.over = True
        self.cancel()
        self.ticket.release()
        self.state.audio_budget.give(self.audio_bytes)
        self.audio_bytes = 0


@contextlib.asynccontextmanager
async def admitted(state, request, what: str, cost: float, items: int = 1, audio_seconds: float = 0.0):
    """The request's :class:`Work`, once its cost passes the per-request limit (413) and fits the work and memory in
    flight (429); everything it holds is given back when the request ends."""
    check_request_cost(cost, state.config.max_request_cost, what)
    try:
        ticket = state.batcher.admit(items, cost)
    except QueueFull as err:
        raise ApiError(429, "busy", str(err), {"Retry-After": str(err.retry_after)}) from None
    except TooSlow as err:
        raise ApiError(413, "too_costly", f"{what} could not be done within the timeout: {err}") from None
    work = Work(state, request, ticket, priority=cost)
    prompt = state.gate.prompt() if ticket.lane.name == EXPRESS else contextlib.nullcontext()
    try:
        with prompt:   # large bodies being received wait meanwhile (:mod:`.yielding`)
            if audio_seconds:
                work.hold_audio(audio_seconds, what)
            yield work
    finally:
        work.close()


def _then_trim(fn: Callable[[], Any]) -> Any:
    """``fn()``, then freed heap pages back to the OS: a large decode's blocks would otherwise stay in the heap."""
    try:
        return fn()
    finally:
        release_freed_memory()
