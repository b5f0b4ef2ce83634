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
from .batcher import QueueFull
from .config import SAMPLE_BYTES
from .errors import ApiError
from .inputs import decode

POLL = 0.25  # seconds between checks of the deadline and the client while a request waits for the worker
SMALL_DECODE = 2**21  # samples (frames x channels): about 20 s of 48 kHz stereo; larger decodes are bounded in number


class Work:
    def __init__(self, state, request, ticket, priority: float):
        self.state, self.request, self.ticket, self.priority = state, request, ticket, priority
        self.deadline = time.monotonic() + state.config.request_timeout
        self.pending: list[Future] = []
        self.audio_bytes = 0

    # ------------------------------------------------------------------ memory for decoded audio
    def hold_audio(self, seconds: float, what: str) -> None:
        """Charge ``seconds`` of decoded 16 kHz audio to the memory budget (429 when it does not fit)."""
        amount = int(seconds * SAMPLE_BYTES)
        self.audio_bytes += self.state.audio_budget.take(amount, what)

    async def decode(self, source, max_seconds: float, where: str = "audio", samples: int = 0):
        """``(wave, rate)``, decoded in the thread pool; a large file (``samples`` to decode, by its header) waits
        for one of ``max_decoders`` places, a small one does not queue behind it."""
        return await self.in_thread(lambda: decode(self.state.model, source, max_seconds, where), samples)

    async def in_thread(self, fn: Callable[[], Any], samples: int = 0) -> Any:
        """``fn()`` in the thread pool (a large decode under the decoder bound), within the request's deadline."""
        try:
            return await asyncio.wait_for(self._in_thread(fn, samples), max(0.001, self.deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise ApiError(504, "timeout", f"the request did not finish within {self.state.config.request_timeout:g} s "
                                           f"(decoding)") from None

    async def _in_thread(self, fn: Callable[[], Any], samples: int) -> Any:
        if samples <= SMALL_DECODE:
            return await run_in_threadpool(fn)
        async with self.state.decoders:
            return await run_in_threadpool(_then_trim, fn)


    # ------------------------------------------------------------------ jobs on the model worker
    async def embed(self, items: Sequence[Any], after: Callable | None = None) -> Any:
        return (await self.embed_chunks([(items, after)]))[0]

    async def embed_chunks(self, chunks: Sequence[tuple[Sequence[Any], Callable | None]]) -> list:
        """Every chunk submitted at once (the worker may batch them together), their results in order."""
        batcher = self.state.batcher
        batcher.mark_submitted(self.ticket)
        futures = [batcher.submit(items, after, priority=self.priority) for items, after in chunks]
        return await self._wait(futures)

    async def call(self, fn: Callable[[], Any]) -> Any:
        self.state.batcher.mark_submitted(self.ticket)
        return (await self._wait([self.state.batcher.call(fn, priority=self.priority)]))[0]

    async def _wait(self, futures: list[Future]) -> list:
        self.pending.extend(futures)
        waiting = {asyncio.wrap_future(f): i for i, f in enumerate(futures)}
        try:
            while not all(w.done() for w in waiting):
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    raise ApiError(504, "timeout", f"the request did not finish within "
                                                   f"{self.state.config.request_timeout:g} s")
                await asyncio.wait([w for w in waiting if not w.done()], timeout=min(POLL, remaining),
                                   return_when=asyncio.FIRST_EXCEPTION)
                await self.check_client()
            return [w.result() for w in waiting]
        except ValueError as err:
            raise ApiError(400, "bad_request", str(err)) from None
        finally:
            self.cancel()

    async def check_client(self) -> None:
        if await self.request.is_disconnected():
            raise ApiError(499, "client_closed", "the client closed the connection")
        if time.monotonic() > self.deadline:
            raise ApiError(504, "timeout", f"the request did not finish within {self.state.config.request_timeout:g} s")

    def cancel(self) -> None:
        for future in self.pending:
            future.cancel()
        self.pending = [f for f in self.pending if not f.done()]

    def close(self) -> None:
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
    work = Work(state, request, ticket, priority=cost)
    try:
        if audio_seconds:
            work.hold_audio(audio_seconds, what)
        yield work
    finally:
        work.close()


def _then_trim(fn: Callable[[], Any]) -> Any:
    """``fn()``, then freed heap pages back to the OS: a large decode's blocks would otherwise stay with its thread's
    malloc arena."""
    try:
        return fn()
    finally:
        release_freed_memory()
