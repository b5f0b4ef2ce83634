"""The FastAPI app: scoring, classification, embeddings, rewards, timelines and search over one model worker.

Every model call runs on the batcher's worker thread (:mod:`paraspeechclap.serve.batcher`); request handlers parse,
check limits, decode audio in the thread pool and wait for their job with a timeout. Errors are JSON:
``{"error": "<what went wrong>", "code": "<machine-readable>"}`` with a 4xx status (5xx only for server faults).
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..rerank.shaping import SHAPINGS, shape_rewards
from . import schemas
from .batcher import Batcher, QueueFull
from .config import ServeConfig
from .inputs import ApiError, audio_source, decode, number, read_body, string_list
from .metrics import Metrics

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
MODELS = Path(__file__).resolve().parents[1] / "models"
ENDPOINTS = ("/v1/score", "/v1/classify", "/v1/embed", "/v1/reward", "/v1/timeline", "/v1/search", "/v1/attributes",
             "/health", "/metrics", "/", "/docs", "/openapi.json")


def attribute_table(model: Any) -> tuple[str, dict[str, list[str]]]:
    """The attributes the page draws probability bars for: the packaged table (``paraspeechclap/models/**/
    attributes*.json``, the same data the annotate room reads) whose ``match`` fits the model's speech encoder, else
    the paper's (intrinsic attributes and situational classes)."""
    speech = getattr(getattr(model, "config", None), "speech_config", None)
    kind = speech.get("model_type") if isinstance(speech, dict) else getattr(speech, "model_type", None)
    docs = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(MODELS.glob("**/attributes*.json"))]
    chosen = next((d for d in docs if kind is not None and kind in d.get("match", {}).get("speech_model_type", [])),
                  None) or next((d for d in docs if d.get("family") == "paper"), None)
    if chosen is None:
        return "none", {}
    return chosen.get("family", "custom"), {name: list(spec["classes"]) for name, spec in chosen["attributes"].items()}


# ---------------------------------------------------------------------------------------------- middleware
class _TooLarge(Exception):
    pass


class LimitsAndMetrics:
    """Pure ASGI: refuses bodies over the upload limit (413, by Content-Length or while streaming) and records every
    request's status and latency."""

    def __init__(self, app, metrics: Metrics, max_body: int):
        self.app, self.metrics, self.max_body = app, metrics, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else ("/static" if path.startswith(("/static/", "/docs/")) else "other")
        start = time.perf_counter()
        state = {"status": 500, "started": False, "received": 0}
        limit = self.max_body * 4 // 3 + 64 * 1024   # base64 is 4/3 of the bytes; room for framing and JSON

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    raise _TooLarge()
            return message

        async def recording_send(message):
            if message["type"] == "http.response.start":
                state["status"], state["started"] = message["status"], True
            await send(message)

        try:
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                raise _TooLarge()
            await self.app(scope, limited_receive, recording_send)
        except _TooLarge:
            if state["started"]:
                raise
            response = _error(413, "too_large", f"the request body is over the limit ({self.max_body} bytes of audio, "
                                                f"{limit} bytes of body)")
            await response(scope, receive, recording_send)
        finally:
            self.metrics.request(endpoint, state["status"], time.perf_counter() - start)


def _error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status, headers=headers)


# ---------------------------------------------------------------------------------------------- the app
def create_app(model: Any, config: ServeConfig | None = None, index: Any = None) -> FastAPI:
    """The service around one loaded :class:`paraspeechclap.ParaSpeechCLAP` (and optionally an index)."""
    config = config or ServeConfig()
    metrics = Metrics()
    batcher = Batcher(model, config.max_batch_items, config.max_wait_ms, config.max_queue_items, config.batch_size,
                      metrics)
    provenance = model.provenance()
    logit_scale = float(model.logit_scale)
    table_name, attributes = attribute_table(model)
    index_attributes = attributes
    if index is not None:
        meta = getattr(index, "meta", None) or {}
        held = (meta.get("model") or {}).get("identity")
        if held and held != provenance.get("identity"):
            log.warning("the index holds embeddings of model %s (identity %s) but the server runs %s (identity %s): "
                        "search scores compare different spaces unless only the precision differs",
                        (meta.get("model") or {}).get("model"), held, provenance.get("model"), provenance.get("identity"))
        table = (meta.get("attributes") or {}).get("attributes")
        if isinstance(table, dict):
            index_attributes = {name: list(spec.get("classes", spec) if isinstance(spec, dict) else spec)
                                for name, spec in table.items()}

    @asynccontextmanager
    async def lifespan(app):
        yield
        batcher.close()

    app = FastAPI(title="ParaSpeechCLAP service", version=provenance.get("paraspeechclap", ""),
                  description="Speaking-style scores, classification, embeddings, rewards and timelines. "
                              "Audio as a multipart file, {\"base64\": ...} or {\"path\": ...} (under --allow-root).",
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.batcher, app.state.metrics, app.state.config, app.state.model = batcher, metrics, config, model
    app.add_middleware(LimitsAndMetrics, metrics=metrics, max_body=config.max_upload_bytes)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError):
        return _error(err.status, err.code, err.message, err.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException):
        return _error(err.status_code, "http_error", str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError):
        return _error(422, "invalid_request", str(err.errors()))

    # ------------------------------------------------------------------ helpers
    def authorize(request: Request) -> None:
        if config.token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), config.token.encode()):
            raise ApiError(401, "unauthorized", "a valid 'Authorization: Bearer <token>' header is required",
                           {"WWW-Authenticate": "Bearer"})

    def refuse_early() -> None:
        """A full queue refuses before the body is read or parsed, so that 429s stay cheap under overload."""
        if batcher.in_flight >= config.max_queue_items:
            admit(1).release()   # raises the 429 (or, if room was freed meanwhile, lets the request go on)

    def admit(items: int):
        try:
            return batcher.admit(items)
        except QueueFull as err:
            raise ApiError(429, "busy", str(err), {"Retry-After": str(err.retry_after)}) from None

    async def wait(future):
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), config.request_timeout)
        except asyncio.TimeoutError:
            future.cancel()
            raise ApiError(504, "timeout", f"the request did not finish within {config.request_timeout:g} s") from None
        except ApiError:
            raise
        except ValueError as err:
            raise ApiError(400, "bad_request", str(err)) from None

    async def one_clip(body: dict, max_seconds: float, ticket) -> tuple[np.ndarray, int]:
        try:
            source = audio_source(body.get("audio"), config)
            return await run_in_threadpool(decode, model, source, max_seconds)
        except BaseException:
            ticket.release()
            raise

    def single_embedding(results):
        result = results[0]
        if not result.ok:
            raise ApiError(400, "bad_audio", f"audio could not be embedded: {result.error}")
        return result.embedding

    def check_template(template: Any) -> str | None:
        if template is None or template == "":
            return None
        if not isinstance(template, str) or "{}" not in template:
            raise ApiError(400, "bad_field", "'template' must be a string containing '{}' where the class goes")
        return template

    # ------------------------------------------------------------------ endpoints
    @app.post("/v1/score", openapi_extra=schemas.body(schemas.SCORE), tags=["scoring"])
    async def score(request: Request):
        """Cosines and scaled logits of one clip with each caption."""
        authorize(request)
        refuse_early()
        body = await read_body(request)
        captions = string_list(body, "captions", config.max_captions, config.max_caption_chars)
        ticket = admit(1)
        wave = await one_clip(body, config.max_audio_seconds, ticket)

        def after(results):
            return model.embed_text(captions) @ single_embedding(results)

        cosines = await wait(batcher.submit([wave], after, ticket))
        return {"captions": captions, "cosines": [float(c) for c in cosines],
                "logits": [float(logit_scale * c) for c in cosines], "logit_scale": logit_scale,
                "seconds": len(wave[0]) / wave[1], "provenance": provenance}

    @app.post("/v1/classify", openapi_extra=schemas.body(schemas.CLASSIFY), tags=["scoring"])
    async def classify(request: Request):
        """Zero-shot probabilities: softmax over the candidates of logit_scale * cosine (template-filled prompts);
        ``attributes`` ({name: [classes]}) classifies several attribute sets at once, ``"default"`` the model's own."""
        authorize(request)
        refuse_early()
        body = await read_body(request)
        template = check_template(body.get("template"))
        sets: dict[str, list[str]] = {}
        if body.get("candidates") is not None:
            sets[""] = string_list(body, "candidates", config.max_captions, config.max_caption_chars)
        chosen = body.get("attributes")
        if isinstance(chosen, str) and chosen.strip().startswith("{"):
            try:
                chosen = json.loads(chosen)
            except ValueError:
                pass
        if chosen == "default":
            chosen = attributes
        if chosen is not None:
            if not isinstance(chosen, dict) or not chosen:
                raise ApiError(400, "bad_field", "'attributes' must be an object {name: [classes]} or \"default\"")
            for name in chosen:
                sets[str(name)] = string_list(chosen, name, config.max_captions, config.max_caption_chars)
        if not sets:
            raise ApiError(400, "missing_field", "give 'candidates' (a list of strings) and/or 'attributes'")
        for name, classes in sets.items():
            if len(set(classes)) != len(classes):
                raise ApiError(400, "bad_field", f"duplicate candidates in {name or 'candidates'}: {classes}")
        ticket = admit(1)
        wave = await one_clip(body, config.max_audio_seconds, ticket)

        def after(results):
            row = single_embedding(results)[None, :]
            return {name: model.classify_embeddings(row, classes, template)[0] for name, classes in sets.items()}

        probabilities = await wait(batcher.submit([wave], after, ticket))
        out: dict[str, Any] = {"provenance": provenance}
        if "" in probabilities:
            out["probabilities"] = probabilities.pop("")
        if probabilities:
            out["attributes"] = probabilities
        return out

    @app.get("/v1/attributes", tags=["scoring"])
    async def list_attributes(request: Request):
        """The attribute table of this model (what the page draws probability bars for)."""
        authorize(request)
        return {"table": table_name, "attributes": attributes}

    async def decode_items(specs: list, max_seconds: float, positions: list[int] | None = None,
                           field: str = "items[{}].audio") -> list:
        """Per item: ``(wave, rate)`` or an error message (one bad item fails only itself)."""
        out: list = []
        for i, spec in enumerate(specs):
            where = field.format(positions[i] if positions is not None else i)
            try:
                source = audio_source(spec, config, where=where)
                out.append(await run_in_threadpool(decode, model, source, max_seconds, where))
            except ApiError as err:
                out.append(err.message)
        return out

    @app.post("/v1/embed", openapi_extra=schemas.body(schemas.EMBED), tags=["embeddings"])
    async def embed(request: Request):
        """L2-normalised embeddings of clips (``audio``: one or a list) and/or texts (``texts``)."""
        authorize(request)
        refuse_early()
        body = await read_body(request)
        specs = body.get("audio")
        specs = [] if specs is None else specs if isinstance(specs, list) else [specs]
        texts = string_list(body, "texts", config.max_items, config.max_caption_chars, required=False)
        if not specs and not texts:
            raise ApiError(400, "missing_field", "give 'audio' (one or a list) and/or 'texts'")
        if len(specs) > config.max_items:
            raise ApiError(413, "too_many", f"{len(specs)} audio items; the limit is {config.max_items}")
        ticket = admit(max(1, len(specs)))
        try:
            decoded = await decode_items(specs, config.max_audio_seconds, field="audio[{}]")
        except BaseException:
            ticket.release()
            raise
        good = [i for i, d in enumerate(decoded) if not isinstance(d, str)]

        def after(results):
            return results, (model.embed_text(texts) if texts else None)

        results, text_emb = [], None
        if good:
            results, text_emb = await wait(batcher.submit([decoded[i] for i in good], after, ticket))
        elif texts:
            text_emb = await wait(batcher.call(lambda: model.embed_text(texts), ticket))
        else:
            ticket.release()
        vectors: list = [None] * len(specs)
        errors: list = [d if isinstance(d, str) else None for d in decoded]
        for position, result in zip(good, results):
            if result.ok:
                vectors[position] = [float(x) for x in result.embedding]
            else:
                errors[position] = result.error
        return {"audio": vectors, "errors": errors,
                "texts": None if text_emb is None else [[float(x) for x in row] for row in text_emb],
                "dim": int(model.config.embedding_dim), "provenance": provenance}

    @app.post("/v1/reward", openapi_extra=schemas.body(schemas.REWARD, multipart=False), tags=["rewards"])
    async def reward(request: Request):
        """Rewards for (audio, caption) pairs, shaped as asked; one bad item fails only itself (reward null)."""
        authorize(request)
        refuse_early()
        body = await read_body(request)
        items = body.get("items")
        if not isinstance(items, list) or not items:
            raise ApiError(400, "bad_field", "'items' must be a non-empty list of {audio, caption, group?}")
        if len(items) > config.max_items:
            raise ApiError(413, "too_many", f"{len(items)} items; the limit is {config.max_items}")
        shaping = body.get("shaping", "cosine")
        if shaping not in SHAPINGS:
            raise ApiError(400, "bad_field", f"'shaping' must be one of {list(SHAPINGS)}, got {shaping!r:.60}")
        errors: list = [None] * len(items)
        captions: list = [None] * len(items)
        groups: list = [None] * len(items)
        specs: list = [None] * len(items)
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                errors[i] = f"items[{i}] must be an object {{audio, caption, group?}}"
                continue
            caption, group = item.get("caption"), item.get("group")
            if not isinstance(caption, str) or not caption.strip():
                errors[i] = f"items[{i}].caption must be a non-empty string"
            elif len(caption) > config.max_caption_chars:
                errors[i] = f"items[{i}].caption has {len(caption)} characters; the limit is {config.max_caption_chars}"
            elif group is not None and not isinstance(group, (str, int)):
                errors[i] = f"items[{i}].group must be a string or an integer"
            else:
                captions[i], specs[i] = caption, item.get("audio")
                groups[i] = caption if group is None else f"{type(group).__name__}:{group}"
        ticket = admit(len(items))
        try:
            todo = [i for i in range(len(items)) if errors[i] is None]
            decoded = await decode_items([specs[i] for i in todo], config.max_audio_seconds, todo)
        except BaseException:
            ticket.release()
            raise
        good = []
        for i, outcome in zip(todo, decoded):
            if isinstance(outcome, str):
                errors[i] = outcome
            else:
                good.append(i)
        cosines = np.full(len(items), np.nan)

        def after(results):
            unique = list(dict.fromkeys(captions[i] for i in good))
            text = model.embed_text(unique)
            row = {c: k for k, c in enumerate(unique)}
            return [(r.error, None if not r.ok else float(text[row[captions[i]]] @ r.embedding))
                    for i, r in zip(good, results)]

        waves = {i: outcome for i, outcome in zip(todo, decoded)}
        if good:
            for i, (error, cosine) in zip(good, await wait(batcher.submit([waves[i] for i in good], after, ticket))):
                if error is not None:
                    errors[i] = error
                else:
                    cosines[i] = cosine
        else:
            ticket.release()
        rewards, components = shape_rewards(cosines, logit_scale, shaping,
                                            groups=[g if g is not None else f"\0{i}" for i, g in enumerate(groups)])
        return {"rewards": [float(r) if math.isfinite(r) else None for r in rewards],
                "components": [c if math.isfinite(cosines[i]) else None for i, c in enumerate(components)],
                "errors": errors, "provenance": provenance}

    @app.post("/v1/timeline", openapi_extra=schemas.body(schemas.TIMELINE), tags=["scoring"])
    async def timeline(request: Request):
        """Per-window cosines of a long recording with each caption (windows embedded as clips of their own)."""
        authorize(request)
        refuse_early()
        body = await read_body(request)
        captions = string_list(body, "captions", config.max_captions, config.max_caption_chars)
        window = number(body, "window_seconds", 3.0, 0.1, 60.0)
        hop = number(body, "hop_seconds", 1.0, 0.05, 60.0)
        if hop > window:
            raise ApiError(400, "bad_field", f"need hop_seconds <= window_seconds, got {hop} > {window}")
        ticket = admit(1)
        wave = await one_clip(body, config.max_timeline_seconds, ticket)
        seconds = len(wave[0]) / wave[1]
        if seconds / hop > config.max_timeline_windows:
            ticket.release()
            raise ApiError(413, "too_many_windows", f"{seconds:.0f} s at a {hop:g} s hop is over "
                                                    f"{config.max_timeline_windows} windows; use a longer hop")
        return await wait(batcher.call(lambda: model.timeline(wave, captions, window_seconds=window,
                                                              hop_seconds=hop), ticket))

    @app.post("/v1/search", openapi_extra=schemas.body(schemas.SEARCH, multipart=False), tags=["search"])
    async def search(request: Request):
        """Clips of the index (--index) nearest to a style description, optionally filtered by attribute classes
        ({"filters": {"pitch": "deep"}}) and duration; each hit has an ``audio_url`` to play it. 404 without an index."""
        authorize(request)
        if index is None:
            raise ApiError(404, "no_index", "no index loaded (start the server with --index DIR)")
        body = await read_body(request)
        text = string_list(body, "text", 1, config.max_caption_chars)[0]
        k = int(number(body, "k", 10, 1, 100))
        where = _where(body, index_attributes)
        ticket = admit(1)
        hits = await wait(batcher.call(lambda: index.search(text=text, where=where, top=k, model=model), ticket))
        results = []
        for hit in hits:
            hit = _plain(hit)
            audio = hit.pop("audio", None) if isinstance(hit, dict) else None
            if audio and hit.get("row") is not None:
                hit["name"], hit["audio_url"] = Path(str(audio)).name, f"/v1/clip/{int(hit['row'])}"
            results.append(hit)
        return {"text": text, "where": where, "results": results, "provenance": provenance}

    @app.get("/v1/clip/{row}", tags=["search"])
    async def clip(row: int, request: Request):
        """The audio file of one indexed clip (rows come from /v1/search)."""
        authorize(request)
        if index is None:
            raise ApiError(404, "no_index", "no index loaded (start the server with --index DIR)")
        found = await wait(batcher.call(lambda: index.rows([row], ["row", "audio"])))
        audio = (found.get(row) or {}).get("audio")
        path = _clip_path(audio, getattr(index, "annotations", None))
        if path is None:
            raise ApiError(404, "no_such_clip", f"row {row} is not in the index or its audio file is gone")
        return FileResponse(path, media_type=_AUDIO_TYPES.get(path.suffix.lower(), "application/octet-stream"))

    @app.get("/health", tags=["service"])
    async def health():
        return {"status": "ok", "model": provenance.get("model"), "provenance": provenance,
                "queue": {"in_flight": batcher.in_flight, "depth": batcher.queue_depth,
                          "limit": config.max_queue_items},
                "index": index is not None, "auth": config.token is not None, "limits": config.public(),
                "attributes": table_name}

    @app.get("/metrics", response_class=PlainTextResponse, tags=["service"])
    async def prometheus(request: Request):
        authorize(request)
        text = metrics.render(batcher.queue_depth, batcher.in_flight, config.max_queue_items)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    # ------------------------------------------------------------------ the page and the docs
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    _mount_docs(app)
    return app


_AUDIO_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".opus": "audio/ogg",
                ".mp3": "audio/mpeg", ".aiff": "audio/aiff", ".aif": "audio/aiff", ".au": "audio/basic"}


def _where(body: dict, attributes: dict[str, list[str]]) -> str | None:
    """A SQL condition built only from known attribute names, their classes and numbers (never the client's SQL)."""
    parts = []
    filters = body.get("filters") or {}
    if not isinstance(filters, dict):
        raise ApiError(400, "bad_field", "'filters' must be an object {attribute: class}")
    for name, value in filters.items():
        if name not in attributes:
            raise ApiError(400, "bad_field", f"unknown attribute {name!r}; known: {sorted(attributes)}")
        if value not in attributes[name]:
            raise ApiError(400, "bad_field", f"{name!r} has no class {value!r}; classes: {attributes[name]}")
        parts.append(f'"{name}" = \'{value.replace(chr(39), chr(39) * 2)}\'')
    for key, op in (("min_duration", ">="), ("max_duration", "<=")):
        if body.get(key) is not None:
            parts.append(f"duration {op} {number(body, key, 0.0, 0.0, 1e7)!r}")
    return " AND ".join(parts) or None


def _clip_path(audio: Any, annotations: Any) -> Path | None:
    if not audio:
        return None
    path = Path(str(audio))
    for candidate in ([path] if path.is_absolute() else [path, Path(str(annotations or ".")) / path]):
        if candidate.is_file():
            return candidate
    return None


def _plain(hit: Any) -> Any:
    if isinstance(hit, dict):
        return {k: _plain(v) for k, v in hit.items()}
    if hasattr(hit, "_asdict"):
        return _plain(hit._asdict())
    if hasattr(hit, "__dataclass_fields__"):
        from dataclasses import asdict

        return _plain(asdict(hit))
    if isinstance(hit, (list, tuple)):
        return [_plain(v) for v in hit]
    if isinstance(hit, np.generic):
        return hit.item()
    if isinstance(hit, np.ndarray):
        return hit.tolist()
    return hit if isinstance(hit, (str, int, float, bool, type(None))) else str(hit)


def _mount_docs(app: FastAPI) -> None:
    """/docs: Swagger UI from the ``swagger-ui-bundle`` package when it is installed (served locally, nothing from a
    CDN; its Swagger UI 4 reads OpenAPI 3.0, so the schema says 3.0.3), else a minimal offline page built from
    /openapi.json."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        swagger_ui_path = None
    if swagger_ui_path is not None and (Path(swagger_ui_path) / "swagger-ui-bundle.js").is_file():
        from fastapi.openapi.docs import get_swagger_ui_html

        app.openapi_version = "3.0.3"
        app.mount("/docs/assets", StaticFiles(directory=swagger_ui_path), name="swagger-ui")

        @app.get("/docs", include_in_schema=False)
        async def docs():
            return get_swagger_ui_html(openapi_url="/openapi.json", title="ParaSpeechCLAP service - API",
                                       swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                                       swagger_css_url="/docs/assets/swagger-ui.css",
                                       swagger_favicon_url="/docs/assets/favicon-32x32.png")
        return

    @app.get("/docs", include_in_schema=False)
    async def minimal_docs():
        import html

        rows = []
        for path, operations in app.openapi()["paths"].items():
            for method, operation in operations.items():
                rows.append(f"<tr><td><code>{method.upper()} {html.escape(path)}</code></td>"
                            f"<td>{html.escape(operation.get('description') or operation.get('summary') or '')}</td></tr>")
        return HTMLResponse("<!doctype html><meta charset=utf-8><title>ParaSpeechCLAP service - API</title>"
                            "<h1>ParaSpeechCLAP service</h1><p>The full schema: <a href='/openapi.json'>/openapi.json"
                            "</a> (install <code>swagger-ui-bundle</code> for the interactive page).</p>"
                            f"<table>{''.join(rows)}</table>")
