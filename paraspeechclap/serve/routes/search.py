"""``/v1/search`` over an index (``--index``): by a style description, an example clip (uploaded, or a row of the
index: "more like this"), or both; and ``/v1/clip/{row}``, the audio of a hit: only rows that decoded, only regular
files whose real path is inside the corpus or annotation folder."""
from __future__ import annotations

import os
import pathlib
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from .. import schemas
from ..admission import SEARCH_COST, SEARCH_HIT_COST
from ..deps import guard, request_body, serve_state
from ..errors import ApiError
from ..inputs import number, read_audio, string_list
from ..schemas import MAX_ROW
from ..state import ServeState
from ..work import admitted

router = APIRouter(tags=["search"], dependencies=[Depends(guard)])
AUDIO_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".opus": "audio/ogg",
               ".mp3": "audio/mpeg", ".aiff": "audio/aiff", ".aif": "audio/aiff", ".au": "audio/basic"}


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


def whole_number(body: dict, key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ApiError(400, "bad_field", f"'{key}' must be a whole number, got {str(value)[:60]!r}")
    return int(number(body, key, default, low, high))


class Example:
    """The model, with the example clip's embedding already made: :meth:`Index.search` asks it for the clip's
    vector, so its rule for joining a text and an example stays the one rule."""

    def __init__(self, model: Any, vector: np.ndarray):
        self.model, self.vector = model, unit(vector)

    def embed_text(self, texts):
        return self.model.embed_text(texts)

    def embed_audio(self, items):
        return self.vector[None, :]

    def __getattr__(self, name: str) -> Any:  # the rest (provenance, config) is the model's, for Index.check_model
        return getattr(self.model, name)


def unit(vector: Any) -> np.ndarray:
    vector = np.asarray(vector, np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("the example clip's embedding is zero or not finite")
    return vector / norm


@router.post("/v1/search", openapi_extra=schemas.body(schemas.SEARCH, multipart=False), responses=schemas.RESPONSES)
async def search(request: Request, body: dict = Depends(request_body), state: ServeState = Depends(serve_state)):
    """Clips of the index (--index) nearest to a style description (``text``), an example clip (``like``: an
    uploaded clip, or the row of an indexed one for "more like this", which leaves that clip out), or both;
    optionally filtered by attribute classes ({"filters": {"pitch": "deep"}}) and duration. Each hit has an
    ``audio_url`` to play it. 404 without an index."""
    index = need_index(state)
    c = state.config
    texts = string_list(body, "text", 1, c.max_caption_chars, required=False, max_depth=c.max_json_depth)
    query, like = (texts[0] if texts else None), body.get("like")
    if query is None and like is None:
        raise ApiError(400, "missing_field", "give 'text' (a style description) and/or 'like' (an example clip: "
                                             "{\"base64\": ...}, or the row of an indexed clip)")
    k = whole_number(body, "k", 10, 1, c.max_search_k)
    where = where_clause(body, state.index_attributes)
    if like is None:
        async with admitted(state, request, "this search", SEARCH_COST + SEARCH_HIT_COST * k) as work:
            hits = await work.call(lambda: index.search(text=query, where=where, top=k, model=state.model))
    elif isinstance(like, (int, float)) and not isinstance(like, bool):
        like = whole_number(body, "like", 0, 0, MAX_ROW)
        hits = await like_row(state, request, like, query, where, k)
    else:
        like = "clip"
        hits = await like_clip(state, request, body["like"], query, where, k)
    return {"text": query, "like": like, "where": where, "results": [public(hit) for hit in hits],
            "provenance": state.provenance}


async def like_row(state: ServeState, request: Request, row: int, query: str | None, where: str | None,
                   k: int) -> list:
    """More like an indexed clip: its stored embedding is the example; the clip itself is left out of the hits."""
    index = state.index
    async with admitted(state, request, "this search", SEARCH_COST + SEARCH_HIT_COST * (k + 2)) as work:
        found = await work.call(lambda: index.rows([row], ["row", "embedding", "status"]))
        record = found.get(row) or {}
        if record.get("status", "ok") != "ok" or record.get("embedding") is None:
            raise ApiError(404, "no_such_clip", f"'like': row {row} is not a decoded clip of the index")
        try:
            example = Example(state.model, record["embedding"])
        except ValueError as err:
            raise ApiError(404, "no_such_clip", f"'like': row {row} has no usable embedding ({err})") from None
        hits = await work.call(lambda: index.search(text=query, like=row, where=where, top=k + 1, model=example))
    hits = [hit for hit in hits if hit.get("row") != row][:k]
    return [{**hit, "rank": rank} for rank, hit in enumerate(hits, 1)]


async def like_clip(state: ServeState, request: Request, like: Any, query: str | None, where: str | None,
                    k: int) -> list:
    """More like an uploaded clip: its header checked and its cost charged like any clip, then decoded and embedded
    on the model worker (batched with other requests' clips)."""
    c = state.config
    source, header = await run_in_threadpool(read_audio, like, c, c.max_audio_seconds, "like")
    async with admitted(state, request, "this search", header.seconds + SEARCH_COST + SEARCH_HIT_COST * k,
                        audio_seconds=header.seconds) as work:
        wave = await work.decode(source, c.max_audio_seconds, "like", samples=header.samples)
        example = Example(state.model, await work.embed([wave], example_embedding))
        return await work.call(lambda: state.index.search(text=query, like="like", where=where, top=k, model=example))


def example_embedding(results) -> np.ndarray:
    result = results[0]
    if not result.ok:
        raise ApiError(400, "bad_audio", f"'like' could not be embedded: {result.error}")
    return result.embedding


def public(hit: Any) -> Any:
    """A hit as JSON-able values, its audio path replaced by a file name and the URL that plays it."""
    hit = plain(hit)
    audio = hit.pop("audio", None) if isinstance(hit, dict) else None
    if audio and hit.get("row") is not None:
        hit["name"], hit["audio_url"] = pathlib.Path(str(audio)).name, f"/v1/clip/{int(hit['row'])}"
    return hit


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
