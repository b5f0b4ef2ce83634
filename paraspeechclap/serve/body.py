"""Reading a request body: JSON (bounded in values and depth, parsed off the event loop when large) or a multipart
form, as ``{field: value | [values]}`` with files as :class:`~.inputs.Upload`."""
from __future__ import annotations

import json
import mmap
import secrets
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool

from .config import ServeConfig
from .errors import ApiError
from .inputs import Upload

INLINE_JSON = 256 * 1024  # smaller bodies are parsed on the event loop (a thread hop would cost more than the parse)
COUNT_PIECE = 2**20      # a large body's values are counted this many bytes at a time, letting the GIL go between
MAPPED_BODY = 8 * 2**20  # a body over this is read into an mmap (smaller: a bytearray, whose heap pages are reused)
OPENERS = b",:[{"        # every JSON value past the first follows or opens with one of these


def count_bytes(raw, chars: bytes) -> int:
    """How many bytes of ``raw`` (bytes, bytearray or a body's mmap) are any of ``chars``: vector compares over
    views of :data:`COUNT_PIECE` bytes at a time, so nothing is copied (``bytes.count`` over copied pieces took
    several times longer) and the GIL is let go between pieces."""
    total = 0
    for start in range(0, len(raw), COUNT_PIECE):
        piece = np.frombuffer(raw, np.uint8, count=min(COUNT_PIECE, len(raw) - start), offset=start)
        total += sum(int(np.count_nonzero(piece == char)) for char in chars)
    return total


def count_values(raw) -> int:
    """An upper bound on the JSON values in ``raw``: every value past the first follows a ',' or ':' or opens with
    '[' / '{' (checked before parsing: a body of 16 million tiny values would take gigabytes once parsed)."""
    return count_bytes(raw, OPENERS)


def body_buffer(size: int):
    """A buffer for a body of ``size`` bytes. Over :data:`MAPPED_BODY`, private anonymous memory: zeroed by the
    kernel as the pieces arrive, where ``bytearray(n)`` would zero it all at once with the GIL held, and private,
    whose page faults cost less than a shared mapping's (``benchmarks/body_gil.py``; huge pages were faster still
    but for their compaction stalls). Smaller, a bytearray, whose heap pages are reused (a fresh mapping per body
    would fault in every page)."""
    if size <= MAPPED_BODY:
        return bytearray(size)
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


LONG_STRING = 2**16      # string literals longer than this (base64 audio) are cut out before the JSON parser runs


def _find(raw, byte: bytes, start: int, end: int | None = None) -> int:
    """``raw.find(byte, start, end)`` for one byte, searched :data:`COUNT_PIECE` bytes at a time (the GIL let go
    between pieces)."""
    end = len(raw) if end is None else end
    while start < end:
        stop = min(start + COUNT_PIECE, end)
        found = raw.find(byte, start, stop)
        if found != -1:
            return found
        start = stop
    return -1


def _string_end(raw, start: int) -> int:
    """The index of the quote closing the string literal opened at ``start`` (-1 when it is not closed)."""
    end = _find(raw, b'"', start + 1)
    while end != -1:
        slashes = 0
        while raw[end - 1 - slashes] == 0x5C:
            slashes += 1
        if slashes % 2 == 0:
            return end
        end = _find(raw, b'"', end + 1)
    return -1


def lift_long_strings(raw, mark: str) -> tuple[bytes, list[memoryview]]:
    """``raw`` with every string literal over :data:`LONG_STRING` bytes and free of escapes replaced by ``mark``
    and its number (``mark`` is random per body, so a client cannot forge one), and views of the cut strings.

    The stdlib parser holds the GIL for the whole of a long string, stalling the event loop; cut out, a long string
    costs a few searches (memchr) and one copy. Outside string literals JSON has no quotes, so quote pairs are
    found by search; for text that is not valid JSON the result is not either, and the parser says so."""
    pieces, cut = [], []
    view = memoryview(raw)
    copied, start = 0, raw.find(b'"')
    while start != -1:
        end = _string_end(raw, start)
        if end == -1:
            break
        if end - start > LONG_STRING and _find(raw, b"\\", start, end) == -1:
            pieces += [raw[copied:start], b'"%s%d"' % (mark.encode("ascii"), len(cut))]
            cut.append(view[start + 1:end])   # no copy: the body's bytes stay until the request ends
            copied = end + 1
        start = _find(raw, b'"', end + 1)
    if not cut:
        return raw, cut
    return b"".join(pieces + [raw[copied:]]), cut


def _put_back(value: Any, cut: list[memoryview], mark: str) -> Any:
    """The cut strings put back (as memoryviews of the body) where their markers are."""
    if isinstance(value, str):
        return cut[int(value[len(mark):])] if value.startswith(mark) else value
    stack = [value]
    while stack:
        item = stack.pop()
        pairs = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        for key, child in list(pairs):
            if isinstance(child, str) and child.startswith(mark):
                item[key] = cut[int(child[len(mark):])]
            elif isinstance(child, (dict, list)):
                stack.append(child)
    return value


INLINE_VALUES = 4096     # ... holding at most this many values (a parse of well under a millisecond)


def _parse_body(raw: bytes | bytearray, config: ServeConfig, values: int | None = None) -> Any:
    """A JSON body to Python, its values counted first (``values``: counted already). A large body's long strings
    (base64 audio) are cut out before parsing; the string literals it may hold are bounded by its quotes first, so
    the cutting is bounded."""
    if len(raw) <= INLINE_JSON:
        _check_values(count_values(raw) if values is None else values, config)
        return parse_json(raw, "the body", config.max_json_depth)
    _check_values(count_bytes(raw, b'"') // 2, config)
    mark = f"long-{secrets.token_hex(8)}:"
    text, cut = lift_long_strings(raw, mark)
    if not isinstance(text, (bytes, bytearray)):
        text = bytes(text)   # a body read into an mmap, with no long string to cut: the parser takes bytes only
    _check_values(count_values(text), config)   # the long strings hold no values
    return _put_back(parse_json(text, "the body", config.max_json_depth), cut, mark)


def _check_values(values: int, config: ServeConfig) -> None:
    if values > config.max_json_values:
        raise ApiError(413, "too_many_values", f"the body holds up to {values} JSON values; the limit is "
                                               f"{config.max_json_values}")


def _depth_ok(value: Any, limit: int) -> bool:
    """Whether ``value`` nests at most ``limit`` lists / objects deep (iteratively: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return True


def parse_json(data: bytes | bytearray | str, where: str, max_depth: int) -> Any:
    """JSON text to Python; a 400 naming ``where`` for text that is not JSON or nests deeper than ``max_depth``."""
    try:
        value = json.loads(data)
    except RecursionError:
        value = None
        deep = True
    except (ValueError, UnicodeDecodeError) as err:
        raise ApiError(400, "bad_json", f"{where} is not valid JSON: {err}") from None
    else:
        deep = not _depth_ok(value, max_depth)
    if deep:
        raise ApiError(400, "too_deep", f"{where} nests deeper than {max_depth} levels")
    return value


def parse_json_field(value: str, where: str, max_depth: int, fallback: Any = None) -> Any:
    """A multipart field holding JSON text; text that is not JSON is kept as ``fallback`` (a plain string field)."""
    try:
        return parse_json(value, f"'{where}'", max_depth)
    except ApiError as err:
        if err.code == "too_deep":
            raise
        return fallback


async def read_body(request, config: ServeConfig) -> dict[str, Any]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        return await _read_json(request, config)
    if kind == "multipart/form-data":
        return await _read_form(request)
    raise ApiError(415, "unsupported_media_type",
                   f"send application/json or multipart/form-data, got {kind[:60] or 'no content-type'!r}")


async def read_all(request) -> bytes | bytearray | mmap.mmap:
    """The whole body, read into one buffer of its declared length (no list of pieces joined at the end: that would
    hold it twice; see :func:`body_buffer`); a body without Content-Length is joined from its pieces."""
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        return b"".join([chunk async for chunk in request.stream()])
    size = int(length)
    buffer, position = body_buffer(size), 0
    async for chunk in request.stream():
        end = position + len(chunk)
        if end > len(buffer):
            raise ApiError(400, "bad_request", "the body is longer than its Content-Length")
        buffer[position:end] = chunk
        position = end
    return buffer if position == len(buffer) else bytes(buffer[:position])


async def _read_json(request, config: ServeConfig) -> dict[str, Any]:
    raw = await read_all(request)
    values = count_values(raw) if len(raw) <= INLINE_JSON else None
    if values is not None:
        _check_values(values, config)   # refused at once: no thread is woken for a body that is not parsed
    if values is not None and values <= INLINE_VALUES:
        body = _parse_body(raw, config, values)
    else:
        body = await run_in_threadpool(_parse_body, raw, config)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", f"the body must be a JSON object, got {type(body).__name__}")
    return body


async def _read_form(request) -> dict[str, Any]:
    try:
        form = await request.form(max_files=256, max_fields=1024)
    except ApiError:
        raise
    except Exception as err:  # noqa: BLE001 - malformed multipart
        raise ApiError(400, "bad_form", f"the multipart body could not be parsed: {err}") from None
    fields: dict[str, Any] = {}
    try:
        for key in form.keys():
            values = []
            for value in form.getlist(key):
                if hasattr(value, "read"):
                    values.append(Upload(await value.read(), getattr(value, "filename", None)))
                else:
                    values.append(value)
            fields[key] = values[0] if len(values) == 1 else values
    finally:
        await form.close()
    return fields
