"""The HTTP layer below the app: body size, memory and read deadline (an ASGI middleware), a header deadline (a
uvicorn protocol: uvicorn itself never times out a request whose headers trickle in), and the uvicorn settings.

uvicorn's own limits cover the rest: ``h11_max_incomplete_event_size`` (16 KiB of headers), ``timeout_keep_alive``
(an idle connection between requests), ``limit_concurrency`` (open connections; 503 past it).
"""
from __future__ import annotations

import asyncio
import json
import time

from uvicorn.protocols.http.h11_impl import H11Protocol

from ..kernels.malloc import release_freed_memory
from .admission import Budget
from .config import MB, ServeConfig
from .errors import ApiError, error_response
from .metrics import Metrics

ENDPOINTS = ("/v1/score", "/v1/classify", "/v1/embed", "/v1/reward", "/v1/timeline", "/v1/search", "/v1/attributes",
             "/health", "/metrics", "/", "/docs", "/openapi.json")
BODY_CHARGE = 2            # bytes of memory per body byte: the bytes (long strings stay views of them), the audio file
SMALL_BODY = 1 * MB        # bodies up to this size may use the reserve that large bodies leave free ...
SMALL_RESERVE = 8 * MB     # ... so that small requests are never starved by large uploads
KEEP_ALIVE_SECONDS = 5     # an idle keep-alive connection is closed after this (shorter than the header deadline)
TRIM_AFTER = 1 * MB        # after a body this large, freed heap pages go back to the OS ...
TRIM_EVERY = 1.0           # ... at most once a second
MALLOC_ARENAS = 2          # glibc gives each thread that allocates at once an arena of its own; each keeps freed memory


def limit_malloc_arenas(count: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas (``mallopt(M_ARENA_MAX)``; call before threads start): with one arena per busy
    thread, each holding the freed remains of large bodies, a server's RSS grows with its thread count."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(-8, int(count)))   # -8: M_ARENA_MAX
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False


def body_budget(config: ServeConfig) -> Budget:
    return Budget("request-body memory", config.max_body_memory, "bytes", small=BODY_CHARGE * SMALL_BODY,
                  reserve=SMALL_RESERVE)


class Guard:
    """Pure ASGI: every request's status and latency into the metrics; its body refused past the size limit (413, by
    Content-Length or while it streams in), charged to the body-memory budget before it is read (429 when it does
    not fit), and read within ``body_timeout`` seconds (408, connection closed)."""

    def __init__(self, app, metrics: Metrics, config: ServeConfig, budget: Budget):
        self.app, self.metrics, self.config, self.budget = app, metrics, config, budget
        self.readers = 0   # requests whose body is being received (one event loop: no lock needed)
        self.trimmed = 0.0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else ("/static" if path.startswith(("/static/", "/docs/")) else
                                                  "/v1/clip" if path.startswith("/v1/clip/") else "other")
        start = time.perf_counter()
        state = {"status": 500}

        async def recording_send(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            await send(message)

        reader = BodyReader(self, scope, receive, start + self.config.body_timeout)
        try:
            refusal = reader.refusal()
            if refusal is not None:
                await refusal(scope, receive, recording_send)
                return
            await self.app(scope, reader.receive, recording_send)
        finally:
            reader.release()
            self.metrics.request(endpoint, state["status"], time.perf_counter() - start)
            if reader.received >= TRIM_AFTER and time.perf_counter() - self.trimmed > TRIM_EVERY:
                self.trimmed = time.perf_counter()
                asyncio.get_running_loop().run_in_executor(None, release_freed_memory)


class BodyReader:
    """One request's body as it streams in: size, budget and deadline."""

    def __init__(self, guard: Guard, scope, receive, deadline: float):
        self.guard, self.scope, self._receive, self.deadline = guard, scope, receive, deadline
        self.limit = guard.config.max_body_bytes
        self.received = self.charged = 0
        self.done = scope.get("method") in ("GET", "HEAD", "OPTIONS")
        self.reading = False

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


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's headers: a connection that has not sent a whole
    request head ``header_timeout`` seconds after it opened (or after the previous response) gets a 408 and is
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
        body = json.dumps({"error": f"the request headers did not arrive within {self.header_timeout:g} s",
                           "code": "header_timeout"}).encode()
        self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                             b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        self.transport.close()


def uvicorn_config(app, config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"):
    """The uvicorn settings the service runs with (the CLI, the tests and the benchmarks share them)."""
    import uvicorn

    protocol = type("TimedH11Protocol", (TimedH11Protocol,), {"header_timeout": float(config.header_timeout)})
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, http=protocol,
                          timeout_keep_alive=KEEP_ALIVE_SECONDS, limit_concurrency=config.max_connections)
