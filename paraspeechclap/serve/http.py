"""The HTTP layer below the app: body size, memory and read deadline (an ASGI middleware), a header deadline and a
head-size cap (uvicorn protocols: uvicorn itself never times out a request whose headers trickle in, and its httptools
protocol buffers a head of any size), and the uvicorn settings.

uvicorn's own limits cover the rest: ``timeout_keep_alive`` (an idle connection between requests),
``limit_concurrency`` (open connections; 503 past it).
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Callable

from uvicorn.protocols.http.h11_impl import H11Protocol

from ..kernels.malloc import M_ARENA_MAX, mallopt, release_freed_memory
from .admission import Budget
from .config import MB, ServeConfig
from .errors import ApiError, error_response
from .metrics import Metrics, request_timing, server_timing
from .pacing import RefusalPacer
from .yielding import YIELD_BODY, Credit, PromptGate

ENDPOINTS = ("/v1/score", "/v1/classify", "/v1/embed", "/v1/reward", "/v1/timeline", "/v1/search", "/v1/attributes",
             "/health", "/metrics", "/", "/docs", "/openapi.json")
BODY_CHARGE = 2            # bytes of memory per body byte: the bytes (long strings stay views of them), the audio file
SMALL_BODY = 1 * MB        # bodies up to this size may use the reserve that large bodies leave free ...
SMALL_RESERVE = 8 * MB     # ... so that small requests are never starved by large uploads
KEEP_ALIVE_SECONDS = 5     # an idle keep-alive connection is closed after this (shorter than the header deadline)
MAX_HEAD_BYTES = 16 * 1024  # a request line and headers past this are refused (431), as h11's default incomplete event
TRIM_AFTER = 1 * MB        # after a body this large, freed heap pages go back to the OS ...
TRIM_EVERY = 1.0           # ... at most once a second
MALLOC_ARENAS = 2          # glibc gives each thread that allocates at once an arena of its own; each keeps freed memory


def limit_malloc_arenas(count: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas (``mallopt(M_ARENA_MAX)``; call before threads start): with one arena per busy
    thread, each holding the freed remains of large bodies, a server's RSS grows with its thread count. The trim
    threshold stays where the engine sets it: lowering it faults the towers' blocks in afresh on every forward pass."""
    return mallopt(M_ARENA_MAX, count)


def body_budget(config: ServeConfig) -> Budget:
    return Budget("request-body memory", config.max_body_memory, "bytes", small=BODY_CHARGE * SMALL_BODY,
                  reserve=SMALL_RESERVE)


def refusal_pacer(config: ServeConfig) -> RefusalPacer | None:
    """The service's pacing of refusals (:mod:`.pacing`); None when it is off. Half the connections may wait."""
    if config.refusal_rate <= 0 or config.refusal_delay <= 0:
        return None
    return RefusalPacer(config.refusal_rate, config.refusal_delay, config.max_connections // 2)


class Guard:
    """Pure ASGI: every request's status and latency into the metrics; its body refused past the size limit (413, by
    Content-Length or while it streams in), charged to the body-memory budget before it is read (429 when it does
    not fit), and read within ``body_timeout`` seconds (408, connection closed). ``GET /health`` is answered here,
    from ``health()``, without the app's routing and dependencies: a monitor's probe costs the event loop as little
    as it can while the server is under load."""

    def __init__(self, app, metrics: Metrics, config: ServeConfig, budget: Budget,
                 health: Callable[[], dict] | None = None, pacer: RefusalPacer | None = None,
                 gate: PromptGate | None = None):
        self.app, self.metrics, self.config, self.budget, self.health = app, metrics, config, budget, health
        self.pacer, self.gate = pacer, gate
        self.readers = 0   # requests whose body is being received (one event loop: no lock needed)
        self.trimmed = 0.0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path == "/health" and scope.get("method") == "GET" and self.health is not None:
            return await self._health(send)
        endpoint = path if path in ENDPOINTS else ("/static" if path.startswith(("/static/", "/docs/")) else
                                                  "/v1/clip" if path.startswith("/v1/clip/") else "other")
        start = time.perf_counter()
        state = {"status": 500}
        phases = request_timing(scope)
        phases["start"] = start
        held: list = []   # a refusal's messages, sent when its turn comes (after the app has let go of the request)

        async def recording_send(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                timing = (b"server-timing", server_timing(phases, time.perf_counter() - start))
                message = {**message, "headers": [*message.get("headers", []), timing]}
                if self.pacer is not None and _paced(message["status"]):
                    held.append(message)
                    return
            if held:
                held.append(message)
                return
            await send(message)

        try:
            await self._run(scope, receive, recording_send)
            if held:
                await self._answer_held(held, send, start)
        finally:
            self.metrics.request(endpoint, state["status"], time.perf_counter() - start)

    async def _run(self, scope, receive, send) -> None:
        """The app on the request, its body read through a :class:`BodyReader` (or refused before it is read)."""
        reader = BodyReader(self, scope, receive, time.perf_counter() + self.config.body_timeout)
        try:
            refusal = reader.refusal()
            if refusal is not None:
                return await refusal(scope, receive, send)
            await self.app(scope, reader.receive, send)
        finally:
            reader.release()
            if reader.received >= TRIM_AFTER and time.perf_counter() - self.trimmed > TRIM_EVERY:
                self.trimmed = time.perf_counter()
                asyncio.get_running_loop().run_in_executor(None, release_freed_memory)

    async def _answer_held(self, held: list, send, arrived: float) -> None:
        """A refusal's answer, once its turn comes (:mod:`.pacing`); its body and buffers are given back by now."""
        self.metrics.paced(await self.pacer.pace(arrived))
        for message in held:
            await send(message)


    async def _health(self, send) -> None:
        start = time.perf_counter()
        body = health_body(self.health)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})
        self.metrics.request("/health", 200, time.perf_counter() - start)


def _paced(status: int) -> bool:
    """Refusals wait their turn; a 408 has waited for its client already."""
    return 400 <= status < 500 and status != 408


def health_body(health: Callable[[], dict]) -> bytes:
    """``/health``'s JSON, as both the Guard and the httptools front answer it."""
    return json.dumps(health(), separators=(",", ":")).encode()


class BodyReader:
    """One request's body as it streams in: size, budget and deadline."""

    def __init__(self, guard: Guard, scope, receive, deadline: float):
        self.guard, self.scope, self._receive, self.deadline = guard, scope, receive, deadline
        self.limit = guard.config.max_body_bytes
        self.received = self.charged = 0
        self.done = scope.get("method") in ("GET", "HEAD", "OPTIONS")
        self.reading = False
        self.credit: Credit | None = None   # a large body's pauses for express requests (:mod:`.yielding`)

    def refusal(self):
        """A response for a body refused before it is read (declared too large, too many bodies being received, or
        no memory for it now)."""
        headers = dict(self.scope.get("headers") or [])
        length = headers.get(b"content-length")
        declared = int(length) if length is not None and length.isdigit() else None
        if self.done or (declared in (None, 0) and b"transfer-encoding" not in headers):
            self.done = True   # no body to receive
            return None
        if declared is not None and declared > self.limit:
            return _refuse(413, "too_large", f"the request body is over the limit ({self.guard.config.max_upload_bytes} "
                                             f"bytes of audio, {self.limit} bytes of body)")
        if self.guard.readers >= self.guard.config.max_body_readers:
            return _refuse(429, "busy", f"the server is receiving {self.guard.readers} request bodies, its limit; "
                                        f"retry later", {"Retry-After": "1"})
        if declared is not None and not self.guard.budget.try_take(BODY_CHARGE * declared):
            return _refuse(429, "busy", f"the server is reading too many request bodies to take {declared} more "
                                        f"bytes now; retry later", {"Retry-After": "1"})
        self.charged = BODY_CHARGE * (declared or 0)
        self.guard.readers += 1
        self.reading = True
        return None

    async def receive(self):
        if self.done:
            return await self._receive()
        if self.guard.gate is not None and self.received >= YIELD_BODY:
            self.credit = self.credit or Credit()
            self.deadline += await self.guard.gate.wait(self.credit)   # its own pauses never count against it
        remaining = self.deadline - time.perf_counter()
        try:
            message = await asyncio.wait_for(self._receive(), max(remaining, 0.001))
        except asyncio.TimeoutError:
            raise ApiError(408, "body_timeout", f"the request body did not arrive within "
                                                f"{self.guard.config.body_timeout:g} s",
                           {"Connection": "close"}) from None
        if message["type"] != "http.request":
            self.done = True
            return message
        self.received += len(message.get("body", b""))
        if not message.get("more_body", False):
            self.done = True
            self._stop_reading()
        if self.received > self.limit:
            raise ApiError(413, "too_large", f"the request body is over the limit of {self.limit} bytes",
                           {"Connection": "close"})
        owed = BODY_CHARGE * self.received - self.charged
        if owed > 0:   # a body without Content-Length is charged as it arrives
            if not self.guard.budget.try_take(owed):
                raise ApiError(429, "busy", "the server is reading too many request bodies; retry later",
                               {"Retry-After": "1", "Connection": "close"})
            self.charged += owed
        return message

    def _stop_reading(self) -> None:
        if self.reading:
            self.reading = False
            self.guard.readers -= 1

    def release(self) -> None:
        self._stop_reading()
        self.guard.budget.give(self.charged)
        self.charged = 0


def _refuse(status: int, code: str, message: str, headers: dict | None = None):
    return error_response(status, code, message, {"Connection": "close", **(headers or {})})


class HeaderDeadline:
    """A deadline on each request's headers, for either of uvicorn's HTTP protocols: a connection that has not sent a
    whole request head ``header_timeout`` seconds after it opened (or after the previous response) gets a 408 and is
    closed. uvicorn's keep-alive timer is cancelled by any byte received, so it does not bound slow headers."""

    header_timeout = 10.0
    _header_timer = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_timer()

    def connection_lost(self, exc) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return   # closed already, or a request's head arrived and it is being answered
        self._refuse_head(408, "Request Timeout", "header_timeout",
                          f"the request headers did not arrive within {self.header_timeout:g} s")

    def _refuse_head(self, status: int, reason: str, code: str, message: str) -> None:
        body = json.dumps({"error": message, "code": code}).encode()
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\nconnection: close\r\n"
                             b"content-length: %d\r\n\r\n" % (status, reason.encode(), len(body)) + body)
        self.transport.close()


class TimedH11Protocol(HeaderDeadline, H11Protocol):
    """uvicorn's pure-Python protocol (h11 caps a request head at ``h11_max_incomplete_event_size``)."""


def _httptools_protocol():
    """uvicorn's httptools protocol (a C parser: a fraction of h11's event-loop time per request) with the header
    deadline and a cap on a request head's size, which h11 has and uvicorn's httptools protocol lacks; None when
    httptools is not installed."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return None

    class TimedHttpToolsProtocol(HeaderDeadline, HttpToolsProtocol):
        health: Callable[[], dict] | None = None   # the service's /health, answered in the parser's callback
        metrics: Metrics | None = None
        _head_bytes = 0        # bytes received since the current request began, until its head is complete
        _in_head = True

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                self._head_bytes += len(data)
            super().data_received(data)
            if self._in_head and self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
                self._refuse_head(431, "Request Header Fields Too Large", "headers_too_large",
                                  f"the request head is over {MAX_HEAD_BYTES} bytes")

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_head, self._head_bytes = True, 0
            super().on_message_complete()

        def _start_asgi_task(self, cycle, app) -> None:
            scope = cycle.scope
            if self.health is None or app is not self.app or scope["path"] != "/health" or scope["method"] != "GET":
                return super()._start_asgi_task(cycle, app)
            _answer_health(cycle, self.health, self.metrics)

    return TimedHttpToolsProtocol


def _answer_health(cycle, health: Callable[[], dict], metrics: Metrics | None) -> None:
    """``GET /health`` answered in the parser's callback, as the Guard would answer it but without an ASGI task:
    under a flood the event loop runs a new task only after every callback queued before it, so a monitor's probe
    waited one whole loop iteration more than it had to (uvicorn's own cycle then handles keep-alive and pipelining)."""
    start = time.perf_counter()
    body = health_body(health)
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % len(body)
    cycle.transport.write(head + (b"" if cycle.keep_alive else b"connection: close\r\n") + b"\r\n" + body)
    cycle.response_started = cycle.response_complete = True
    cycle.message_event.set()
    if not cycle.keep_alive:
        cycle.transport.close()
    cycle.on_response()
    if metrics is not None:
        metrics.request("/health", 200, time.perf_counter() - start)


def uvicorn_config(app, config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"):
    """The uvicorn settings the service runs with (the CLI, the tests and the benchmarks share them)."""
    import uvicorn

    base = _httptools_protocol() if config.http in ("auto", "httptools") else None
    if base is None and config.http == "httptools":
        raise ValueError("--http httptools needs the httptools package (pip install httptools)")
    base = base or TimedH11Protocol
    serve = getattr(getattr(app, "state", None), "serve", None)   # the service's state: /health in the parser
    protocol = type(base.__name__, (base,), {"header_timeout": float(config.header_timeout),
                                             "health": staticmethod(serve.health) if serve is not None else None,
                                             "metrics": getattr(serve, "metrics", None)})
    # loop "auto": uvloop when installed (its transports are C too), else asyncio
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, http=protocol, loop="auto",
                          timeout_keep_alive=KEEP_ALIVE_SECONDS, limit_concurrency=config.max_connections)
