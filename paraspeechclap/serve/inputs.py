"""Fields of a request: strings and numbers checked with errors naming the field, audio as upload / base64 /
server-side path, its header probed against the service's ceilings before anything is decoded."""
from __future__ import annotations

import base64
import binascii
import math
import os
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

from ..audio import AudioError, check_format, file_info
from ..prompts import check_template, fill_template
from .admission import decode_cost
from .config import ServeConfig
from .errors import ApiError

__all__ = ["ApiError", "Upload", "string_list", "text", "number", "template", "audio_source", "allowed_path",
           "probe", "Probe", "read_audio", "decode"]

B64_PIECE = 2**20       # base64 is decoded this many characters at a time, so the GIL is let go between pieces


class Upload:
    """The bytes of one uploaded file (multipart)."""

    def __init__(self, data: bytes, filename: str | None):
        self.data, self.filename = data, filename or "upload"


def text(value: Any, where: str, max_chars: int) -> str:
    """A non-empty string that encodes as UTF-8 (a lone surrogate does not) and is at most ``max_chars`` long."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "bad_field", f"'{where}' must be a non-empty string, got {_show(value)}")
    if len(value) > max_chars:
        raise ApiError(413, "too_long", f"'{where}' has {len(value)} characters; the limit is {max_chars}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ApiError(400, "bad_field", f"'{where}' is not valid Unicode text ({err.reason} at {err.start})") from None
    return value


def string_list(body: dict, key: str, limit: int, max_chars: int, required: bool = True,
                max_depth: int = 32) -> list[str]:
    """A non-empty list of non-empty strings (multipart: repeated fields, or one field holding a JSON list)."""
    from .body import parse_json_field

    value = body.get(key)
    if value is None:
        if required:
            raise ApiError(400, "missing_field", f"'{key}' is required (a list of strings)")
        return []
    if isinstance(value, str) and value.strip().startswith("["):
        value = parse_json_field(value, key, max_depth, fallback=value)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ApiError(400, "bad_field", f"'{key}' must be a non-empty list of strings, got {type(value).__name__}")
    if len(value) > limit:
        raise ApiError(413, "too_many", f"'{key}' has {len(value)} entries; the limit is {limit}")
    return [text(item, f"{key}[{i}]", max_chars) for i, item in enumerate(value)]


def number(body: dict, key: str, default: float, low: float, high: float) -> float:
    value = body.get(key, default)
    if isinstance(value, bool):
        raise ApiError(400, "bad_field", f"'{key}' must be a number, got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ApiError(400, "bad_field", f"'{key}' must be a number, got {_show(value)}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ApiError(400, "bad_field", f"'{key}' must be between {low:g} and {high:g}, got {value:g}")
    return value


def template(value: Any, labels: list[str], max_chars: int) -> str | None:
    """The classification template (None: the model's own), checked and filled with every label once so that a bad
    template is a 400 naming the field before any work is admitted."""
    if value is None or value == "":
        return None
    value = text(value, "template", max_chars)
    try:
        check_template(value)
        for label in labels:
            fill_template(value, label, max_chars=max_chars * 2)
    except ValueError as err:
        raise ApiError(400, "bad_field", f"'template': {err}") from None
    return value


def audio_source(spec: Any, config: ServeConfig, where: str = "audio") -> bytes | str:
    """What the engine decodes: bytes (upload or base64) or a path under the allowed root."""
    if isinstance(spec, Upload):
        data = spec.data
    elif isinstance(spec, dict) and "base64" in spec:
        data = _base64(spec["base64"], where, config.max_upload_bytes)
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


def _base64(value: Any, where: str, max_bytes: int) -> bytes | bytearray:
    """Base64 text (a str, or a view of a long string the body parser cut out) decoded a piece at a time into one
    buffer (the GIL is let go between pieces); text that would decode to more than ``max_bytes`` is a 413 before
    any of it is decoded."""
    if not isinstance(value, (str, bytes, bytearray, memoryview)):
        raise ApiError(400, "bad_audio", f"{where}.base64 must be a string")
    head = value[:256] if isinstance(value, str) else bytes(value[:256]).decode("latin-1")
    if head.startswith("data:") and "," in head:   # a data: URL from a browser
        value = value[head.index(",") + 1:]
    size = len(value) // 4 * 3
    if size - 2 > max_bytes:
        raise ApiError(413, "too_large", f"{where} has about {size} bytes; the limit is {max_bytes}")
    try:
        if len(value) <= B64_PIECE:
            return base64.b64decode(value, validate=True)
        if len(value) % 4:
            raise ValueError("the length is not a multiple of 4")
        out, end = bytearray(size), 0
        for start in range(0, len(value), B64_PIECE):
            piece = base64.b64decode(value[start:start + B64_PIECE], validate=True)
            out[end:end + len(piece)] = piece
            end += len(piece)
        del out[end:]   # the padding
        return out
    except (binascii.Error, ValueError) as err:
        raise ApiError(400, "bad_base64", f"{where}.base64 is not valid base64: {err}") from None


def allowed_path(path: Any, config: ServeConfig, where: str) -> str:
    if config.allow_root is None:
        raise ApiError(403, "paths_disabled", "server-side paths are off (start the server with --allow-root DIR)")
    if not isinstance(path, str) or not path or "\x00" in path or len(path) > 4096:
        raise ApiError(400, "bad_path", f"{where}.path must be a non-empty string")
    root = Path(os.path.realpath(config.allow_root))
    try:
        real = Path(os.path.realpath(Path(path) if os.path.isabs(path) else root / path))
    except (OSError, ValueError) as err:
        raise ApiError(400, "bad_path", f"{where}.path cannot be resolved: {err}") from None
    if real != root and root not in real.parents:
        raise ApiError(403, "path_outside_root", f"{where}.path is outside the allowed root")
    if not real.is_file():
        raise ApiError(404, "no_such_file", f"{where}.path does not exist under the allowed root: {path[:200]!r}")
    if real.stat().st_size > config.max_upload_bytes:
        raise ApiError(413, "too_large", f"{where}.path has {real.stat().st_size} bytes; the limit is "
                                         f"{config.max_upload_bytes}")
    return str(real)


class Probe(NamedTuple):
    """What a file's header says it will cost: seconds of audio, and samples to decode (frames x channels at its own
    rate)."""

    seconds: float
    samples: int

    @property
    def cost(self) -> float:
        """Its work: its seconds through the model plus its decoding (:func:`.admission.decode_cost`)."""
        return self.seconds + decode_cost(self.samples)


def probe(source: bytes | str, config: ServeConfig, max_seconds: float, where: str = "audio") -> Probe:
    """Seconds of audio the file holds, by its header (``max_seconds`` when the header does not say), checked against
    the service's rate and channel ceilings and ``max_seconds``: nothing is decoded."""
    try:
        info = file_info(source, where)
        check_format(where, info.rate, info.channels, config.max_sample_rate, config.max_channels)
    except AudioError as err:
        raise ApiError(400, "bad_audio", f"{where} could not be decoded: {err.problem}") from None
    seconds = info.seconds
    if seconds is not None and seconds > max_seconds + 1.0:  # resampling may add a few samples: decode near it
        raise ApiError(413, "audio_too_long", f"{where} lasts {seconds:.1f} s; the limit is {max_seconds:g} s")
    if seconds is None:
        return Probe(max_seconds, int(max_seconds * info.rate * info.channels))
    return Probe(min(seconds, max_seconds + 1.0), info.frames * info.channels)


def read_audio(spec: Any, config: ServeConfig, max_seconds: float, where: str = "audio") -> tuple[bytes | str, Probe]:
    """The source (base64 decoded) and its header: run in the thread pool, since a large upload takes a while."""
    source = audio_source(spec, config, where)
    return source, probe(source, config, max_seconds, where)


def decode(model: Any, source: bytes | str, max_seconds: float, where: str = "audio",
           stop: Callable[[], None] | None = None) -> tuple[np.ndarray, int]:
    """Decoded 16 kHz mono ``(wave, rate)`` as the engine reads it; corrupt or too long audio is a 4xx (a file whose
    header already says it is too long is refused before it is decoded). ``stop()`` is called after each decoded
    block and may raise (the request is over: its thread is free again within one block)."""
    from ..audio import describe, file_seconds, load_audio

    try:
        seconds = file_seconds(source)
        if seconds is not None and seconds > max_seconds + 1.0:
            raise ApiError(413, "audio_too_long", f"{where} lasts {seconds:.1f} s; the limit is {max_seconds:g} s")
        if stop is None:
            wave = model.engine.decode(source)
        else:   # the engine's decoding (load_audio, then its length checked), stoppable between blocks
            wave = load_audio(source, int(model.engine.sampling_rate), describe(source), stop=stop)
            model.engine.check_length(wave, describe(source))
    except ApiError:
        raise
    except Exception as err:  # noqa: BLE001 - AudioError (or anything the decoder raised): the client's file
        problem = getattr(err, "problem", None) or f"{type(err).__name__}: {err}"
        raise ApiError(400, "bad_audio", f"{where} could not be decoded: {problem}") from None
    rate = int(model.engine.sampling_rate)
    if len(wave) > max_seconds * rate:
        raise ApiError(413, "audio_too_long", f"{where} lasts {len(wave) / rate:.1f} s; the limit is {max_seconds:g} s")
    return wave, rate


def _show(value: Any) -> str:
    return repr(value)[:60] if isinstance(value, (str, int, float, type(None))) else type(value).__name__
