"""``/v1/embed`` and ``/v1/reward``: many clips per request, each failing only itself, cut into chunks of about
``chunk_seconds`` of audio."""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from ...rerank.shaping import SHAPINGS, shape_rewards
from ...ttseval.contrastive import contrast_set, contrastive_scores
from .. import schemas
from ..admission import PROMPT_COST
from ..deps import guard, request_body, serve_state
from ..errors import ApiError
from ..inputs import Probe, decode, read_audio, string_list, text
from ..state import ServeState
from ..work import SMALL_DECODE, Work, admitted, inline_spec

router = APIRouter(dependencies=[Depends(guard)])


def chunks(positions: list[int], seconds: dict[int, float], limit: float) -> list[list[int]]:
    """``positions`` cut in order into runs of at most ``limit`` seconds (a longer item is a run of its own)."""
    out: list[list[int]] = []
    total = math.inf
    for i in positions:
        if total + seconds[i] > limit:
            out.append([])
            total = 0.0
        out[-1].append(i)
        total += seconds[i]
    return out


def _probe_all(state: ServeState, specs: list, where: str) -> tuple[dict[int, Any], dict[int, Probe], list]:
    sources, headers, errors = {}, {}, [None] * len(specs)
    for i, spec in enumerate(specs):
        if spec is None and where.startswith("items"):
            continue
        try:
            sources[i], headers[i] = read_audio(spec, state.config, state.config.max_audio_seconds, where.format(i))
        except ApiError as err:
            errors[i] = err.message
    return sources, headers, errors


async def probe_items(state: ServeState, specs: list, where: str) -> tuple[dict[int, Any], dict[int, Probe], list]:
    """Per item its source and header, or its error (one bad item fails only itself): on the event loop when every
    item is small, else all in one thread-pool call."""
    if inline_spec(*specs):
        return _probe_all(state, specs, where)
    return await run_in_threadpool(_probe_all, state, specs, where)


def _decode_all(state: ServeState, sources: dict, where: str) -> dict[int, Any]:
    """Each item's ``(wave, rate)`` or its error message (small files, all in one call)."""
    out: dict[int, Any] = {}
    for i, source in sources.items():
        try:
            out[i] = decode(state.model, source, state.config.max_audio_seconds, where.format(i))
        except ApiError as err:
            out[i] = err.message
    return out


async def embed_items(work: Work, state: ServeState, sources: dict, headers: dict, errors: list, where: str,
                      after: Callable[[list[int], list], Any]) -> list:
    """Decode the good items (the small ones together, on the event loop or in one thread-pool call, each large one
    on the request's model lane), then
    embed them chunk by chunk; ``after(positions, results)`` runs on the worker for each chunk. Returns the chunks'
    ``after`` results (decode failures land in ``errors``)."""
    small = {i: source for i, source in sources.items() if headers[i].samples <= SMALL_DECODE}
    samples = sum(headers[i].samples for i in small)
    outcomes = await work.run(lambda: _decode_all(state, small, where), min(samples, SMALL_DECODE)) if small else {}
    for i, source in sources.items():
        if i not in small:
            try:
                outcomes[i] = await work.decode(source, state.config.max_audio_seconds, where.format(i),
                                                headers[i].samples)
            except ApiError as err:
                outcomes[i] = err.message
    waves = {}
    for i in sorted(outcomes):
        if isinstance(outcomes[i], str):
            errors[i] = outcomes[i]
        else:
            waves[i] = outcomes[i]
    runs = chunks(list(waves), {i: h.seconds for i, h in headers.items()}, state.config.chunk_seconds)
    return await work.embed_chunks([([waves[i] for i in run], lambda results, run=run: after(run, results))
                                    for run in runs])


@router.post("/v1/embed", openapi_extra=schemas.body(schemas.EMBED), tags=["embeddings"], responses=schemas.RESPONSES)
async def embed(request: Request, body: dict = Depends(request_body), state: ServeState = Depends(serve_state)):
    """L2-normalised embeddings of clips (``audio``: one or a list) and/or texts (``texts``)."""
    c = state.config
    specs = body.get("audio")
    specs = [] if specs is None else specs if isinstance(specs, list) else [specs]
    texts = string_list(body, "texts", c.max_items, c.max_caption_chars, required=False, max_depth=c.max_json_depth)
    if not specs and not texts:
        raise ApiError(400, "missing_field", "give 'audio' (one or a list) and/or 'texts'")
    if len(specs) > c.max_items:
        raise ApiError(413, "too_many", f"{len(specs)} audio items; the limit is {c.max_items}")
    sources, headers, errors = await probe_items(state, specs, "audio[{}]")
    total = sum(h.seconds for h in headers.values())
    cost = sum(h.cost for h in headers.values()) + PROMPT_COST * len(texts)
    model = state.model
    vectors: list = [None] * len(specs)
    text_emb = None
    async with admitted(state, request, "these clips and texts", cost,
                        items=max(1, len(sources)), audio_seconds=total) as work:
        def keep(run, results):
            for i, result in zip(run, results):
                if result.ok:
                    vectors[i] = [float(x) for x in result.embedding]
                else:
                    errors[i] = result.error
        await embed_items(work, state, sources, headers, errors, "audio[{}]", keep)
        if texts:
            text_emb = await work.call(lambda: model.embed_text(texts))
    return {"audio": vectors, "errors": errors,
            "texts": None if text_emb is None else [[float(x) for x in row] for row in text_emb],
            "dim": state.dim, "provenance": state.provenance}


def reward_items(items: list, state: ServeState) -> tuple[list, list, list, list]:
    """Per item: its audio spec, caption and group, or its error (a bad item fails only itself)."""
    n = len(items)
    errors, captions, groups, specs = [None] * n, [None] * n, [None] * n, [None] * n
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            errors[i] = f"items[{i}] must be an object {{audio, caption, group?}}"
            continue
        group = item.get("group")
        try:
            caption = text(item.get("caption"), f"items[{i}].caption", state.config.max_caption_chars)
            if group is not None and (isinstance(group, bool) or not isinstance(group, (str, int))
                                      or len(str(group)) > state.config.max_caption_chars):
                raise ApiError(400, "bad_field", f"items[{i}].group must be a string or an integer")
        except ApiError as err:
            errors[i] = err.message
            continue
        captions[i], specs[i] = caption, item.get("audio")
        groups[i] = caption if group is None else f"{type(group).__name__}:{group}"
        if specs[i] is None:
            errors[i] = f"'items[{i}].audio' is required: {{\"base64\": ...}} or {{\"path\": ...}}"
    return specs, captions, groups, errors


@router.post("/v1/reward", openapi_extra=schemas.body(schemas.REWARD, multipart=False), tags=["rewards"],
             responses=schemas.RESPONSES)
async def reward(request: Request, body: dict = Depends(request_body), state: ServeState = Depends(serve_state)):
    """Rewards for (audio, caption) pairs, shaped as asked; one bad item fails only itself (reward null)."""
    c = state.config
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise ApiError(400, "bad_field", "'items' must be a non-empty list of {audio, caption, group?}")
    if len(items) > c.max_items:
        raise ApiError(413, "too_many", f"{len(items)} items; the limit is {c.max_items}")
    shaping = body.get("shaping", "cosine")
    if shaping not in SHAPINGS:
        raise ApiError(400, "bad_field", f"'shaping' must be one of {list(SHAPINGS)}, got {str(shaping)[:60]!r}")
    specs, captions, groups, errors = reward_items(items, state)
    sources, headers, probe_errors = await probe_items(state, specs, "items[{}].audio")
    errors = [e or p for e, p in zip(errors, probe_errors)]
    seconds = sum(h.seconds for h in headers.values())
    cosines = np.full(len(items), np.nan)
    embeddings: dict[int, np.ndarray] = {}
    model = state.model
    contrast = contrast_set([c or "" for c in captions]) if shaping == "contrastive" else None
    prompts = len({captions[i] for i in sources} | set(contrast.texts if contrast is not None else ()))
    cost = sum(h.cost for h in headers.values()) + PROMPT_COST * prompts
    async with admitted(state, request, "these items", cost,
                        items=max(1, len(sources)), audio_seconds=seconds) as work:
        def score(run, results):
            unique = list(dict.fromkeys(captions[i] for i in run))
            text_emb = model.embed_text(unique)
            row = {caption: k for k, caption in enumerate(unique)}
            for i, result in zip(run, results):
                if result.ok:
                    cosines[i] = float(text_emb[row[captions[i]]] @ result.embedding)
                    embeddings[i] = result.embedding
                else:
                    errors[i] = result.error
        await embed_items(work, state, sources, headers, errors, "items[{}].audio", score)
        scores = None
        if contrast is not None:
            audio = np.full((len(items), state.dim), np.nan, np.float32)
            for i, embedding in embeddings.items():
                audio[i] = embedding
            scores = await work.call(lambda: contrastive_scores(model, audio, contrast.captions, contrast=contrast))
    rewards, components = shape_rewards(cosines, state.logit_scale, shaping, contrast=scores,
                                        groups=[g if g is not None else f"\0{i}" for i, g in enumerate(groups)])
    for i, part in enumerate(components):
        if errors[i] is None and not math.isfinite(rewards[i]) and part.get("contrastive_problem"):
            errors[i] = f"items[{i}].caption: {part['contrastive_problem']}"
    return {"rewards": [float(r) if math.isfinite(r) else None for r in rewards],
            "components": [comp if math.isfinite(cosines[i]) else None for i, comp in enumerate(components)],
            "errors": errors, "provenance": state.provenance}
