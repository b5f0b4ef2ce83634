"""The FastAPI app: routers per endpoint group over one model worker, with access, early refusal and the parsed body
as dependencies, and the HTTP layer's limits (:mod:`.http`) around them.

Every model call runs on the batcher's worker thread (:mod:`paraspeechclap.serve.batcher`); request handlers parse,
charge the request's cost (:mod:`.admission`), decode audio in the thread pool and wait for their jobs (:mod:`.work`).
Errors are JSON: ``{"error": "<what went wrong>", "code": "<machine-readable>"}`` with a 4xx status.
"""
from __future__ import annotations

import gc
import sys
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from .config import ServeConfig
from .errors import install_handlers
from .http import Guard
from .routes import rewards, scoring, search, service, timeline
from .state import ServeState, attribute_table

__all__ = ["create_app", "attribute_table"]

# The event loop answers every client: a thread that holds the GIL (parsing a large body, decoding, the model's
# Python between kernels) hands it over within this many seconds when the loop asks (Python's default: 5 ms).
SWITCH_INTERVAL = 0.001


def create_app(model: Any, config: ServeConfig | None = None, index: Any = None, spec: Any = None) -> FastAPI:
    """The service around one loaded :class:`paraspeechclap.ParaSpeechCLAP` (and optionally an index); raises
    ValueError for an index that holds another model's embeddings. With ``spec`` (the :class:`ModelSpec` it was
    loaded from) and ``config.model_process``, the forward passes run in a process of their own
    (:mod:`.modelproc`)."""
    state = ServeState(model, config or ServeConfig(), index, spec=spec)

    @asynccontextmanager
    async def lifespan(app):
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = max(2, state.config.max_threads)
        interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        gc.collect()
        gc.freeze()   # the model's and the libraries' objects live as long as the server: no collection walks them
        yield
        state.close()
        sys.setswitchinterval(interval)

    app = FastAPI(title="ParaSpeechCLAP service", version=state.provenance.get("paraspeechclap", ""),
                  description="Speaking-style scores, classification, embeddings, rewards and timelines. "
                              "Audio as a multipart file, {\"base64\": ...} or {\"path\": ...} (under --allow-root).",
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.serve = state
    app.state.batcher, app.state.metrics, app.state.config, app.state.model = (state.batcher, state.metrics,
                                                                               state.config, state.model)
    app.add_middleware(Guard, metrics=state.metrics, config=state.config, budget=state.body_budget,
                       health=state.health, pacer=state.pacer, gate=state.gate)
    install_handlers(app)
    for module in (scoring, rewards, timeline, search, service):
        app.include_router(module.router)
    service.mount_static(app)
    return app
