"""Fixtures for the loading tests: a stand-in hub on 127.0.0.1 with a private cache, and offline switching."""
from __future__ import annotations

import pytest

from standin_hub import SPEECH_REPO, TEXT_REPO, StandInHub, set_offline, use_cache


@pytest.fixture
def standin_hub(tmp_path, monkeypatch, fixture_dir):
    """A started stand-in hub serving the fixture's encoder folders (config/tokenizer files and their weights, so
    that a test can check the weights are never asked for) under the paper's encoder repo ids; HF_ENDPOINT points
    at it, HF_HUB_OFFLINE is unset and the cache is in ``tmp_path / "hf"``. Add checkpoint repos with
    ``hub.add_repo``."""
    import huggingface_hub.constants as constants

    hub = StandInHub()
    hub.add_repo(SPEECH_REPO, {p.name: p for p in (fixture_dir / "speech").iterdir()})
    hub.add_repo(TEXT_REPO, {p.name: p for p in (fixture_dir / "text").iterdir()})
    hub.start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    use_cache(monkeypatch, tmp_path / "hf")
    set_offline(monkeypatch, False)
    try:
        yield hub
    finally:
        hub.stop()
