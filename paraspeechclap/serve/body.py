"""Reading a request body: JSON (bounded in values and depth, parsed off the event loop when large) or a multipart
form, as ``{field: value | [values]}`` with files as :class:`~.inputs.Upload`."""
from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.concurrency import run_in_threadpool

from .config import ServeConfig
from .errors import ApiError
from .inputs import Upload

INLINE_JSON = 64 * 1024  # smaller bodies are parsed on the event loop (a thread hop would cost more than the parse)
COUNT_PIECE = 2**20      # a large body's values are counted this many bytes at a time, letting the GIL go between


def count_values(raw: bytes | bytearray) -> int:
    """An upper bound on the JSON values in ``raw``: every value past the first follows a ',' or ':' or opens with
    '[' / '{' (checked before parsing: a body of 16 million tiny values would take gigabytes once parsed)."""
    view = memoryview(raw)
    total = 0
    for start in range(0, len(raw), COUNT_PIECE):
        piece = bytes(view[start:start + COUNT_PIECE])
        total += piece.count(b",") + piece.count(b":") + piece.count(b"[") + piece.count(b"{")
    return total


LONG_STRING = 2**16      # string literals longer than this (base64 audio) are cut out before the JSON parser runs


def _string_end(raw: bytes | bytearray, start: int) -> int:
    """The index of the quote closing the string literal opened at ``start`` (-1 when it is not closed)."""
    end = raw.find(b'"', start + 1)
    while end != -1:
        slashes = 0
        while raw[end - 1 - slashes] == 0x5C:
            slashes += 1
        if slashes % 2 == 0:
            return end
        end = raw.find(b'"', end + 1)
    return -1


def lift_long_strings(raw: bytes | bytearray, mark: str) -> tuple[bytes, list[memoryview]]:
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
        if end - start > LONG_STRING and raw.find(b"\\", start, end) == -1:
            pieces += [raw[copied:start], b'"%s%d"' % (mark.encode("ascii"), len(cut))]
            cut.append(view[start + 1:end])   # no copy: the body's bytes stay until the request ends
            copied = end + 1
        start = raw.find(b'"', end + 1)
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


def _join_and_parse(chunks: list[bytes], config: ServeConfig) -> Any:
    raw = b"".join(chunks)
    chunks.clear()   # the pieces go as soon as they are joined
    return _parse_body(raw, config)


def _parse_body(raw: bytes | bytearray, config: ServeConfig) -> Any:
    values = count_values(raw)
    if values > config.max_json_values:
        raise ApiError(413, "too_many_values", f"the body holds up to {values} JSON values; the limit is "
                                               f"{config.max_json_values}")
    if len(raw) <= INLINE_JSON:
        return parse_json(raw, "the body", config.max_json_depth)
    mark = f"long-{secrets.token_hex(8)}:"
    text, cut = lift_long_strings(raw, mark)
    return _put_back(parse_json(text, "the body", config.max_json_depth), cut, mark)


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


async def _read_json(request, config: ServeConfig) -> dict[str, Any]:
    chunks, size = [], 0
    async for chunk in request.stream():   # joined once, not grown on the event loop (each growth a copy)
        chunks.append(chunk)
        size += len(chunk)
    if size <= INLINE_JSON:
        body = _parse_body(b"".join(chunks), config)
    else:
        body = await run_in_threadpool(_join_and_parse, chunks, config)
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
