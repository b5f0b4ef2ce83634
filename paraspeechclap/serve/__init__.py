"""The service room: ``paraspeechclap serve`` (FastAPI + uvicorn), dynamic batching with backpressure, limits, auth,
Prometheus metrics and the web page. Needs the ``serve`` extra; nothing below this room imports it.

``create_app(model, config, index)`` builds the ASGI app around one loaded model (see docs/serve.md)."""


def create_app(*args, **kwargs):
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)


__all__ = ["create_app"]
