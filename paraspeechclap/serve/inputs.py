"""Reading requests: JSON or multipart bodies, audio as upload / base64 / server-side path, and clear 4xx errors."""
from __future__ import annotations

import base64
import binascii
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .config import ServeConfig


class ApiError(Exception):
    """Answered as ``{"error": message, "code": code}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class Upload:
    """The bytes of one uploaded file (multipart)."""

    def __init__(self, data: bytes, filename: str | None):
        self.data, self.filename = data, filename or "upload"


async def read_body(request) -> dict[str, Any]:
    """A JSON object, or a multipart form as {field: value | [values]} with files as :class:`Upload`."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError) as err:
            raise ApiError(400, "bad_json", f"the body is not valid JSON: {err}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "bad_json", f"the body must be a JSON object, got {type(body).__name__}")
        return body
    if kind == "multipart/form-data":
        try:
            form = await request.form(max_files=256, max_fields=1024)
        except Exception as err:  # noqa: BLE001 - malformed multipart
            raise ApiError(400, "bad_form", f"the multipart body could not be parsed: {err}") from None
        fields: dict[str, Any] = {}
        for key in form.keys():
            values = []
            for value in form.getlist(key):
                if hasattr(value, "read"):
                    values.append(Upload(await value.read(), getattr(value, "filename", None)))
                else:
                    values.append(value)
            fields[key] = values[0] if len(values) == 1 else values
        return fields
    raise ApiError(415, "unsupported_media_type",
                   f"send application/json or multipart/form-data, got {kind or 'no content-type'!r}")


def string_list(body: dict, key: str, limit: int, max_chars: int, required: bool = True) -> list[str]:
    """A non-empty list of non-empty strings (multipart: repeated fields, or one field holding a JSON list)."""
    value = body.get(key)
    if value is None:
        if required:
            raise ApiError(400, "missing_field", f"'{key}' is required (a list of strings)")
        return []
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ApiError(400, "bad_field", f"'{key}' must be a non-empty list of strings, got {type(value).__name__}")
    if len(value) > limit:
        raise ApiError(413, "too_many", f"'{key}' has {len(value)} entries; the limit is {limit}")
    for i, text in enumerate(value):
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "bad_field", f"'{key}[{i}]' must be a non-empty string, got {text!r:.60}")
        if len(text) > max_chars:
            raise ApiError(413, "too_long", f"'{key}[{i}]' has {len(text)} characters; the limit is {max_chars}")
    return list(value)


def number(body: dict, key: str, default: float, low: float, high: float) -> float:
    value = body.get(key, default)
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ApiError(400, "bad_field", f"'{key}' must be a number, got {value!r:.60}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ApiError(400, "bad_field", f"'{key}' must be between {low} and {high}, got {value}")
    return value


def audio_source(spec: Any, config: ServeConfig, where: str = "audio") -> bytes | str:
    """What the engine decodes: bytes (upload or base64) or a path under the allowed root."""
    if isinstance(spec, Upload):
        data = spec.data
    elif isinstance(spec, dict) and "base64" in spec:
        if not isinstance(spec["base64"], str):
            raise ApiError(400, "bad_audio", f"{where}.base64 must be a string")
        text = spec["base64"]
        if text.startswith("data:") and "," in text:   # a data: URL from a browser
            text = text.split(",", 1)[1]
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as err:
            raise ApiError(400, "bad_base64", f"{where}.base64 is not valid base64: {err}") from None
    elif isinstance(spec, dict) and "path" in spec:
        return allowed_path(spec["path"], config, where)
    elif spec is None:
        raise ApiError(400, "missing_field", f"'{where}' is required: a multipart file, {{\"base64\": ...}} "
                                             f"or {{\"path\": ...}}")
    else:
        raise ApiError(400, "bad_audio", f"'{where}' must be a multipart file, {{\"base64\": \"...\"}} or "
                                         f"{{\"path\": \"...\"}}, got {type(spec).__name__}")
    if not data:
        raise ApiError(400, "bad_audio", f"{where} is empty")
    if len(data) > config.max_upload_bytes:
        raise ApiError(413, "too_large", f"{where} has {len(data)} bytes; the limit is {config.max_upload_bytes}")
    return data


def allowed_path(path: Any, config: ServeConfig, where: str) -> str:
    if config.allow_root is None:
        raise ApiError(403, "paths_disabled", "server-side paths are off (start the server with --allow-root DIR)")
    if not isinstance(path, str) or not path or "\x00" in path:
        raise ApiError(400, "bad_path", f"{where}.path must be a non-empty string")
    root = Path(os.path.realpath(config.allow_root))
    candidate = Path(path) if os.path.isabs(path) else root / path
    real = Path(os.path.realpath(candidate))
    if real != root and root not in real.parents:
        raise ApiError(403, "path_outside_root", f"{where}.path is outside the allowed root")
    if not real.is_file():
        raise ApiError(404, "no_such_file", f"{where}.path does not exist under the allowed root: {path}")
    if real.stat().st_size > config.max_upload_bytes:
        raise ApiError(413, "too_large", f"{where}.path has {real.stat().st_size} bytes; the limit is "
                                         f"{config.max_upload_bytes}")
    return str(real)


def decode(model: Any, source: bytes | str, max_seconds: float, where: str = "audio") -> tuple[np.ndarray, int]:
    """Decoded 16 kHz mono ``(wave, rate)`` as the engine reads it; corrupt or too long audio is a 4xx (a file whose
    header already says it is too long is refused before it is decoded)."""
    from ..audio import file_seconds

    try:
        seconds = file_seconds(source)
        if seconds is not None and seconds > max_seconds + 1.0:  # resampling may add a few samples: decode near it
            raise ApiError(413, "audio_too_long", f"{where} lasts {seconds:.1f} s; the limit is {max_seconds:g} s")
        wave = model.engine.decode(source)
    except ApiError:
        raise
    except Exception as err:  # noqa: BLE001 - AudioError (or anything the decoder raised): the client's file
        problem = getattr(err, "problem", None) or f"{type(err).__name__}: {err}"
        raise ApiError(400, "bad_audio", f"{where} could not be decoded: {problem}") from None
    rate = int(model.engine.sampling_rate)
    if len(wave) > max_seconds * rate:
        raise ApiError(413, "audio_too_long", f"{where} lasts {len(wave) / rate:.1f} s; the limit is {max_seconds:g} s")
    return wave, rate
