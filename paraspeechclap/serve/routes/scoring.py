"""``/v1/score``, ``/v1/classify``, ``/v1/attributes``: one clip against captions or candidate classes."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from .. import schemas
from ..admission import PROMPT_COST
from ..body import parse_json_field
from ..deps import guard, request_body, serve_state
from ..errors import ApiError
from ..inputs import Probe, read_audio, string_list, template as check_template_field
from ..state import ServeState
from ..work import admitted, inline_spec

router = APIRouter(tags=["scoring"], dependencies=[Depends(guard)])


def single_embedding(results):
    result = results[0]
    if not result.ok:
        raise ApiError(400, "bad_audio", f"audio could not be embedded: {result.error}")
    return result.embedding


async def probed(state: ServeState, body: dict, max_seconds: float) -> tuple[Any, Probe]:
    """The request's audio source and what its header says (nothing decoded yet); a small one read on the event
    loop."""
    spec = body.get("audio")
    if inline_spec(spec):
        return read_audio(spec, state.config, max_seconds)
    return await run_in_threadpool(read_audio, spec, state.config, max_seconds)


@router.post("/v1/score", openapi_extra=schemas.body(schemas.SCORE), responses=schemas.RESPONSES)
async def score(request: Request, body: dict = Depends(request_body), state: ServeState = Depends(serve_state)):
    """Cosines and scaled logits of one clip with each caption."""
    c = state.config
    captions = string_list(body, "captions", c.max_captions, c.max_caption_chars, max_depth=c.max_json_depth)
    source, header = await probed(state, body, c.max_audio_seconds)
    model = state.model
    async with admitted(state, request, "this clip", header.cost + PROMPT_COST * len(captions),
                        audio_seconds=header.seconds) as work:
        wave = await work.decode(source, c.max_audio_seconds, samples=header.samples)
        cosines = await work.embed([wave], lambda results: model.embed_text(captions) @ single_embedding(results))
    return {"captions": captions, "cosines": [float(x) for x in cosines],
            "logits": [float(state.logit_scale * x) for x in cosines], "logit_scale": state.logit_scale,
            "seconds": len(wave[0]) / wave[1], "provenance": state.provenance}


def attribute_sets(body: dict, state: ServeState) -> dict[str, list[str]]:
    """``""``: the candidates; then each attribute set; duplicates refused, every count within its limit."""
    c = state.config
    sets: dict[str, list[str]] = {}
    if body.get("candidates") is not None:
        sets[""] = string_list(body, "candidates", c.max_captions, c.max_caption_chars, max_depth=c.max_json_depth)
    chosen = body.get("attributes")
    if isinstance(chosen, str) and chosen.strip().startswith("{"):
        chosen = parse_json_field(chosen, "attributes", c.max_json_depth, fallback=chosen)
    if chosen == "default":
        chosen = state.attributes
    if chosen is not None:
        if not isinstance(chosen, dict) or not chosen:
            raise ApiError(400, "bad_field", "'attributes' must be an object {name: [classes]} or \"default\"")
        if len(chosen) > c.max_attribute_sets:
            raise ApiError(413, "too_many", f"'attributes' has {len(chosen)} sets; the limit is {c.max_attribute_sets}")
        for name in chosen:
            if not name.strip() or len(name) > c.max_caption_chars:
                raise ApiError(400, "bad_field", "'attributes' names must be non-empty strings")
            sets[name] = string_list(chosen, name, c.max_captions, c.max_caption_chars, max_depth=c.max_json_depth)
    if not sets:
        raise ApiError(400, "missing_field", "give 'candidates' (a list of strings) and/or 'attributes'")
    prompts = sum(len(classes) for classes in sets.values())
    if prompts > c.max_prompts:
        raise ApiError(413, "too_many_prompts", f"{prompts} prompts (candidates and classes of every attribute set); "
                                                f"the limit is {c.max_prompts}")
    for name, classes in sets.items():
        if len(set(classes)) != len(classes):
            raise ApiError(400, "bad_field", f"duplicate candidates in {name or 'candidates'!r}")
    return sets


def table_probe(state: ServeState, body: dict, name: str) -> Any:
    """The attribute of the model's table whose probe classifies set ``name`` (``attributes: "default"`` only)."""
    if not name or body.get("attributes") != "default" or state.table is None:
        return None
    attribute = next((a for a in state.table.attributes if a.name == name), None)
    return attribute if attribute is not None and attribute.probe is not None else None


@router.post("/v1/classify", openapi_extra=schemas.body(schemas.CLASSIFY), responses=schemas.RESPONSES)
async def classify(request: Request, body: dict = Depends(request_body), state: ServeState = Depends(serve_state)):
    """Zero-shot probabilities: softmax over the candidates of logit_scale * cosine (template-filled prompts);
    ``attributes`` ({name: [classes]}) classifies several attribute sets at once, ``"default"`` the model's own (an
    attribute with a probe in the table: the probe's softmax, as annotate gives it)."""
    c = state.config
    sets = attribute_sets(body, state)
    template = check_template_field(body.get("template"), [x for s in sets.values() for x in s], c.max_caption_chars)
    source, header = await probed(state, body, c.max_audio_seconds)
    model = state.model
    prompts = sum(len(classes) for classes in sets.values())
    async with admitted(state, request, "this classification", header.cost + PROMPT_COST * prompts,
                        audio_seconds=header.seconds) as work:
        wave = await work.decode(source, c.max_audio_seconds, samples=header.samples)
        row = (await work.embed([wave], single_embedding))[None, :]
        probabilities = {}
        for name, classes in sets.items():   # one set per job: a timeout or a client gone stops between sets
            probe = table_probe(state, body, name)
            if probe is not None:   # the table's own classification of this attribute, as annotate gives it
                probabilities[name] = dict(zip(probe.outcomes, map(float, probe.probe_probabilities(row)[0])))
            else:
                probabilities[name] = await work.call(
                    lambda classes=classes: model.classify_embeddings(row, classes, template)[0])
    out: dict[str, Any] = {"provenance": state.provenance}
    if "" in probabilities:
        out["probabilities"] = probabilities.pop("")
    if probabilities:
        out["attributes"] = probabilities
    return out


@router.get("/v1/attributes", responses=schemas.RESPONSES)
async def list_attributes(state: ServeState = Depends(serve_state)):
    """The attribute table of this model (what the page draws probability bars for)."""
    return {"table": state.table_name, "attributes": state.attributes}
