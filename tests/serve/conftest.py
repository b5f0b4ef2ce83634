"""Shared fixtures for the service tests: the embedded `mini` model (loaded once) and small WAV clips."""
from __future__ import annotations


import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')")

from serve_helpers import TONES, free_port, wav_bytes  # noqa: E402


@pytest.fixture(scope="session")
def mini():
    from paraspeechclap import ParaSpeechCLAP

    return ParaSpeechCLAP.from_pretrained("mini", device="cpu")


@pytest.fixture
def make_client(mini):
    """``make_client(**config)`` -> a TestClient (lifespan entered) of a fresh app; closed after the test."""
    from fastapi.testclient import TestClient

    from paraspeechclap.serve.app import create_app
    from paraspeechclap.serve.config import ServeConfig

    clients = []

    def make(index=None, **config):
        client = TestClient(create_app(mini, ServeConfig(**config), index=index), base_url="http://localhost")
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def clip() -> bytes:
    """A 1.5 s tone, the clip most service tests send."""
    return wav_bytes(1.5, 140.0)


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def live_server(mini):
    """``live_server(index=None, **config)`` -> the base URL of the app served by real uvicorn (the service's own
    settings: header deadline, keep-alive, connection limit) on a free 127.0.0.1 port, in a thread."""
    import threading
    import time

    import uvicorn

    from paraspeechclap.serve.app import create_app
    from paraspeechclap.serve.config import ServeConfig
    from paraspeechclap.serve.http import uvicorn_config

    servers = []

    def start(index=None, **config):
        settings = ServeConfig(**config)
        app = create_app(mini, settings, index=index)
        port = free_port()
        server = uvicorn.Server(uvicorn_config(app, settings, "127.0.0.1", port, "warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.time() + 30
        while not server.started:
            assert thread.is_alive() and time.time() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}", app

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)




@pytest.fixture(scope="session")
def small_index(mini, tmp_path_factory):
    """A real annotated corpus and its index, built once: five tones and a file that does not decode. Yields
    ``(index, corpus folder, {file name: row})``."""
    pytest.importorskip("duckdb", reason="the corpus extra (duckdb, usearch) is not installed")
    pytest.importorskip("usearch", reason="the corpus extra (duckdb, usearch) is not installed")
    from pathlib import Path

    from paraspeechclap.annotate import annotate
    from paraspeechclap.index import Index

    folder = tmp_path_factory.mktemp("small-index")
    corpus = folder / "audio"
    corpus.mkdir()
    for i, freq in enumerate(TONES):
        (corpus / f"clip{i}.wav").write_bytes(wav_bytes(1.0, freq))
    (corpus / "broken.wav").write_bytes(b"not audio at all")
    annotate(corpus, folder / "ann", workers=1, shard_size=8, device="cpu")
    index = Index.open(Index.build(folder / "ann").folder)
    rows = {Path(audio).name: int(row) for row, audio in index.sql.execute("SELECT row, audio FROM clips").fetchall()}
    yield index, corpus, rows
    index.close()
