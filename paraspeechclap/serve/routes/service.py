"""``/health``, ``/metrics``, the web page and the API docs."""
from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from .. import schemas
from ..deps import guard, serve_state
from ..state import ServeState
from ..yielding import GATE

STATIC = Path(__file__).resolve().parents[1] / "static"
router = APIRouter(tags=["service"])


@router.get("/health")
async def health(state: ServeState = Depends(serve_state)):
    """Status, provenance, queue and limits (open to any Host: a monitor may use any name). The HTTP layer answers
    a GET itself, before the app's routing (:class:`..http.Guard`); this route declares it and answers the rest."""
    return state.health()


@router.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(guard)], responses=schemas.RESPONSES)
async def prometheus(state: ServeState = Depends(serve_state)):
    yields = {"upload": (state.gate.pauses, state.gate.paused), "decode": (GATE.pauses, GATE.paused)}
    text = state.metrics.render(state.batcher.queue_depth, state.batcher.in_flight, state.config.max_queue_items,
                                yields)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")



@router.get("/", include_in_schema=False)
async def page():
    return FileResponse(STATIC / "index.html", media_type="text/html")


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    mount_docs(app)


def mount_docs(app: FastAPI) -> None:
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
        rows = []
        for path, operations in app.openapi()["paths"].items():
            for method, operation in operations.items():
                rows.append(f"<tr><td><code>{method.upper()} {html.escape(path)}</code></td>"
                            f"<td>{html.escape(operation.get('description') or operation.get('summary') or '')}</td></tr>")
        return HTMLResponse("<!doctype html><meta charset=utf-8><title>ParaSpeechCLAP service - API</title>"
                            "<h1>ParaSpeechCLAP service</h1><p>The full schema: <a href='/openapi.json'>/openapi.json"
                            "</a> (install <code>swagger-ui-bundle</code> for the interactive page).</p>"
                            f"<table>{''.join(rows)}</table>")
