"""Reading a request body: JSON (bounded in values and depth, parsed off the event loop when large) or a multipart
form, as ``{field: value | [values]}`` with files as :class:`~.inputs.Upload`."""
from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool

from .config import ServeConfig
from .errors import ApiError
from .inputs import Upload

INLINE_JSON = 64 * 1024  # smaller bodies are parsed on the event loop (a thread hop would cost more than the parse)


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
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
    # every JSON value past the first follows a ',' or ':' or opens with '[' / '{': a cheap bound on the count of
    # values, checked before parsing (a body of 16 million tiny values would take gigabytes once parsed)
    values = raw.count(b",") + raw.count(b":") + raw.count(b"[") + raw.count(b"{")
    if values > config.max_json_values:
        raise ApiError(413, "too_many_values", f"the body holds up to {values} JSON values; the limit is "
                                               f"{config.max_json_values}")
    if len(raw) <= INLINE_JSON:
        body = parse_json(bytes(raw), "the body", config.max_json_depth)
    else:
        body = await run_in_threadpool(parse_json, raw, "the body", config.max_json_depth)
    del raw
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
