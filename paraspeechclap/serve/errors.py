"""Every error is JSON, ``{"error": "<what went wrong>", "code": "<machine-readable>"}``, with a 4xx status (5xx only
for server faults)."""
from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Answered as ``{"error": message, "code": code}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: an error message quoting a client's text (even a lone
    surrogate) always renders."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return AsciiJSONResponse({"error": message, "code": code}, status_code=status, headers=headers)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError):
        return error_response(err.status, err.code, err.message, err.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException):
        return error_response(err.status_code, "http_error", str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError):
        where = [".".join(str(p) for p in e.get("loc", ())) for e in err.errors()]
        return error_response(422, "invalid_request", f"invalid {', '.join(where) or 'request'}: "
                                                      f"{err.errors()[0].get('msg', '') if err.errors() else ''}")
