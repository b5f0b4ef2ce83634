"""``/v1/search`` over an index (``--index``) and ``/v1/clip/{row}``, the audio of a hit: only rows that decoded,
only regular files whose real path is inside the corpus or annotation folder."""
from __future__ import annotations

import os
import pathlib
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse

from .. import schemas
from ..admission import SEARCH_COST, SEARCH_HIT_COST
from ..deps import guard, request_body, serve_state
from ..errors import ApiError
from ..inputs import number, string_list
from ..state import ServeState
from ..work import admitted

router = APIRouter(tags=["search"], dependencies=[Depends(guard)])
AUDIO_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".opus": "audio/ogg",
               ".mp3": "audio/mpeg", ".aiff": "audio/aiff", ".aif": "audio/aiff", ".au": "audio/basic"}
MAX_ROW = 2**62  # rows are int64 keys; a larger number cannot be one


def need_index(state: ServeState) -> Any:
    if state.index is None:
        raise ApiError(404, "no_index", "no index loaded (start the server with --index DIR)")
    return state.index


def where_clause(body: dict, attributes: dict[str, list[str]]) -> str | None:
    """A SQL condition built only from known attribute names, their classes and numbers (never the client's SQL)."""
    parts = []
    filters = body.get("filters") or {}
    if not isinstance(filters, dict):
        raise ApiError(400, "bad_field", "'filters' must be an object {attribute: class}")
    for name, value in filters.items():
        if name not in attributes:
            raise ApiError(400, "bad_field", f"'filters': unknown attribute {name[:60]!r}; known: {sorted(attributes)}")
        if not isinstance(value, str) or value not in attributes[name]:
            raise ApiError(400, "bad_field", f"'filters.{name}' has no class {str(value)[:60]!r}; classes: "
                                             f"{attributes[name]}")
        parts.append(f'"{name}" = \'{value.replace(chr(39), chr(39) * 2)}\'')
    for key, op in (("min_duration", ">="), ("max_duration", "<=")):
        if body.get(key) is not None:
            parts.append(f"duration {op} {number(body, key, 0.0, 0.0, 1e7)!r}")
    return " AND ".join(parts) or None


@router.post("/v1/search", openapi_extra=schemas.body(schemas.SEARCH, multipart=False), responses=schemas.RESPONSES)
async def search(request: Request, body: dict = Depends(request_body), state: ServeState = Depends(serve_state)):
    """Clips of the index (--index) nearest to a style description, optionally filtered by attribute classes
    ({"filters": {"pitch": "deep"}}) and duration; each hit has an ``audio_url`` to play it. 404 without an index."""
    index = need_index(state)
    c = state.config
    query = string_list(body, "text", 1, c.max_caption_chars, max_depth=c.max_json_depth)[0]
    k = body.get("k", 10)
    if isinstance(k, bool) or not isinstance(k, (int, float)) or k != int(k):
        raise ApiError(400, "bad_field", f"'k' must be a whole number, got {str(k)[:60]!r}")
    k = int(number(body, "k", 10, 1, c.max_search_k))
    where = where_clause(body, state.index_attributes)
    async with admitted(state, request, "this search", SEARCH_COST + SEARCH_HIT_COST * k) as work:
        hits = await work.call(lambda: index.search(text=query, where=where, top=k, model=state.model))
    results = []
    for hit in hits:
        hit = plain(hit)
        audio = hit.pop("audio", None) if isinstance(hit, dict) else None
        if audio and hit.get("row") is not None:
            hit["name"], hit["audio_url"] = pathlib.Path(str(audio)).name, f"/v1/clip/{int(hit['row'])}"
        results.append(hit)
    return {"text": query, "where": where, "results": results, "provenance": state.provenance}


@router.get("/v1/clip/{row}", responses=schemas.RESPONSES)
async def clip(request: Request, row: int = Path(ge=0, le=MAX_ROW, description="a row number from /v1/search"),
               state: ServeState = Depends(serve_state)):
    """The audio file of one indexed clip (rows come from /v1/search); a row that is not a number in range is 422."""
    index = need_index(state)
    number_ = int(row)
    async with admitted(state, request, "this clip", SEARCH_COST) as work:
        found = await work.call(lambda: index.rows([number_], ["row", "audio", "status"]))
    record = found.get(number_) or {}
    path = clip_path(record, state.roots) if record.get("status", "ok") == "ok" else None
    if path is None:
        raise ApiError(404, "no_such_clip", f"row {number_} is not a decoded clip of the index, or its audio file is "
                                            f"gone or outside the corpus")
    return FileResponse(path, media_type=AUDIO_TYPES.get(path.suffix.lower(), "application/octet-stream"))


def clip_path(record: dict, roots: list[pathlib.Path]) -> pathlib.Path | None:
    """The clip's file if it is a regular file whose real path (symlinks resolved) is inside one of ``roots``."""
    audio = record.get("audio")
    if not audio or not roots:
        return None
    path = pathlib.Path(str(audio))
    candidates = [path] if path.is_absolute() else [root / path for root in roots]
    for candidate in candidates:
        real = pathlib.Path(os.path.realpath(candidate))
        if real.is_file() and any(real == root or root in real.parents for root in roots):
            return real
    return None


def plain(hit: Any) -> Any:
    """A search hit as JSON-able values."""
    if isinstance(hit, dict):
        return {k: plain(v) for k, v in hit.items()}
    if isinstance(hit, (list, tuple)):
        return [plain(v) for v in hit]
    if isinstance(hit, np.generic):
        return hit.item()
    if isinstance(hit, np.ndarray):
        return hit.tolist()
    return hit if isinstance(hit, (str, int, float, bool, type(None))) else str(hit)
