"""Dependencies of the routes: the shared state, access (bearer token, or Host and Origin on a tokenless server),
an early 429 when the worker's queue is full, and the parsed body. All are coroutines: FastAPI runs a plain function
dependency in the thread pool, where it would queue behind parsing and decoding."""
from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, Request

from .body import read_body
from .errors import ApiError
from .state import ServeState

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


async def serve_state(request: Request) -> ServeState:
    return request.app.state.serve


def _host_name(value: str) -> str:
    """The name part of a Host header or URL netloc: no port, no brackets, lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def host_allowed(name: str, allowed: tuple[str, ...]) -> bool:
    return (name in LOOPBACK_NAMES or name.endswith(".localhost") or "*" in allowed
            or name in {_host_name(a) for a in allowed})


def check_origin(request: Request, state: ServeState) -> None:
    """On a server without a token: the Host header (DNS rebinding) and any Origin header (a cross-site form or
    script) must name this machine or an ``--allowed-hosts`` name."""
    allowed = state.config.allowed_hosts
    host = _host_name(request.headers.get("host", ""))
    if not host_allowed(host, allowed):
        raise ApiError(403, "bad_host", f"Host {host[:100]!r} is not served here (loopback names only; start the "
                                        f"server with --allowed-hosts NAME or a token to serve others)")
    origin = request.headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin.strip())
        if parts.scheme not in ("http", "https") or not host_allowed(_host_name(parts.netloc), allowed):
            raise ApiError(403, "bad_origin", f"requests from origin {origin[:100]!r} are refused (cross-site)")


async def guard(request: Request, state: ServeState = Depends(serve_state)) -> None:
    """Bearer token when one is set (timing-safe compare); otherwise the Host / Origin allow-list."""
    token = state.config.token
    if token is None:
        check_origin(request, state)
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(401, "unauthorized", "a valid 'Authorization: Bearer <token>' header is required",
                       {"WWW-Authenticate": "Bearer"})


async def refuse_when_full(state: ServeState = Depends(serve_state)) -> None:
    """A full queue refuses before the body is read or parsed, so that 429s stay cheap under overload."""
    if state.batcher.full():
        try:
            state.batcher.admit(1).release()   # raises the 429 (or, if room was freed meanwhile, lets it go on)
        except Exception as err:  # noqa: BLE001 - QueueFull
            raise ApiError(429, "busy", str(err), {"Retry-After": str(getattr(err, "retry_after", 1))}) from None


async def request_body(request: Request, state: ServeState = Depends(serve_state),
                       _: None = Depends(refuse_when_full)) -> dict[str, Any]:
    return await read_body(request, state.config)
