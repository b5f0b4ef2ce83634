"""``/v1/search`` by an example clip (``like``: an upload or a row of the index) against a real annotated index,
compared with the library's ``Index.search``; every bad ``like`` a 4xx naming the field; admission by cost."""
from __future__ import annotations

import numpy as np
import pytest

from serve_helpers import TONES, b64, settled, wav_bytes

CAPTION = "A man speaks in a deep voice."


@pytest.fixture
def indexed(make_client, small_index):
    index, corpus, rows = small_index
    return make_client(index=index), index, corpus, rows


def error_of(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    return body["error"]


def test_search_by_an_uploaded_clip_finds_that_clip_first(indexed, mini):
    client, index, corpus, rows = indexed
    data = (corpus / "clip2.wav").read_bytes()
    body = client.post("/v1/search", json={"like": b64(data), "k": 3}).json()
    assert body["like"] == "clip" and body["text"] is None
    hits = body["results"]
    assert [hit["rank"] for hit in hits] == [1, 2, 3] and hits[0]["name"] == "clip2.wav"
    assert hits[0]["score"] == pytest.approx(1.0, abs=0.02)      # the index holds the same clip's embedding
    expected = index.search(like=str(corpus / "clip2.wav"), top=3, model=mini)
    assert [hit["row"] for hit in hits] == [hit["row"] for hit in expected]
    assert all(hit["audio_url"] == f"/v1/clip/{hit['row']}" and "audio" not in hit for hit in hits)


def test_text_and_example_together_follow_the_library(indexed, mini):
    client, index, corpus, rows = indexed
    data = (corpus / "clip4.wav").read_bytes()
    body = client.post("/v1/search", json={"text": CAPTION, "like": b64(data), "k": len(TONES)}).json()
    expected = index.search(text=CAPTION, like=str(corpus / "clip4.wav"), top=len(TONES), model=mini)
    assert [hit["row"] for hit in body["results"]] == [hit["row"] for hit in expected]
    np.testing.assert_allclose([hit["score"] for hit in body["results"]], [hit["score"] for hit in expected],
                               atol=0.02)
    text_only = client.post("/v1/search", json={"text": CAPTION, "k": len(TONES)}).json()
    assert [h["score"] for h in text_only["results"]] != [h["score"] for h in body["results"]]


def test_more_like_an_indexed_row_leaves_the_row_out(indexed, mini):
    client, index, corpus, rows = indexed
    row = rows["clip1.wav"]
    body = client.post("/v1/search", json={"like": row, "k": 3}).json()
    assert body["like"] == row
    hits = body["results"]
    assert len(hits) == 3 and row not in [hit["row"] for hit in hits] and [h["rank"] for h in hits] == [1, 2, 3]
    scores = [hit["score"] for hit in hits]
    assert scores == sorted(scores, reverse=True)
    # the same order as the library's search by that clip's audio, minus the clip itself
    expected = [hit["row"] for hit in index.search(like=str(corpus / "clip1.wav"), top=4, model=mini)]
    assert [hit["row"] for hit in hits] == [r for r in expected if r != row][:3]
    # filters apply to "more like this" too
    duration = client.post("/v1/search", json={"like": row, "k": 3, "min_duration": 5}).json()
    assert duration["results"] == [] and "duration >= 5.0" in duration["where"]


@pytest.mark.parametrize("like,status,code,words", [
    (True, 400, "bad_audio", "'like' must be"),
    (1.5, 400, "bad_field", "'like' must be a whole number"),
    (-1, 400, "bad_field", "'like' must be between 0"),
    (2**70, 400, "bad_field", "'like' must be between 0"),
    ("clip0.wav", 400, "bad_audio", "'like' must be"),
    ({"base64": "!!not base64!!"}, 400, "bad_base64", "like.base64"),
    ({"base64": b64(b"not audio at all" * 20)["base64"]}, 400, "bad_audio", "like could not be decoded"),
    ({"path": "clip0.wav"}, 403, "paths_disabled", "--allow-root"),
    (987654, 404, "no_such_clip", "'like': row 987654"),
])
def test_a_bad_example_is_a_4xx_naming_the_field(indexed, like, status, code, words):
    client = indexed[0]
    message = error_of(client.post("/v1/search", json={"like": like}), status, code)
    assert words in message and "object at 0x" not in message


def test_search_needs_text_or_example_and_a_row_that_decoded(indexed):
    client, index, corpus, rows = indexed
    message = error_of(client.post("/v1/search", json={"k": 3}), 400, "missing_field")
    assert "'text'" in message and "'like'" in message
    error_of(client.post("/v1/search", json={"like": rows["broken.wav"]}), 404, "no_such_clip")
    error_of(client.post("/v1/search", json={"like": 0, "k": 0}), 400, "bad_field")


def test_an_example_clip_is_bounded_and_charged_like_any_clip(make_client, small_index):
    index = small_index[0]
    long_clip = b64(wav_bytes(4.0, 150.0))
    short = make_client(index=index, max_audio_seconds=2.0)
    assert "limit is 2 s" in error_of(short.post("/v1/search", json={"like": long_clip}), 413, "audio_too_long")
    cheap = make_client(index=index, max_request_cost=3.0)
    assert "this search costs" in error_of(cheap.post("/v1/search", json={"like": long_clip}), 413, "too_costly")
    assert cheap.post("/v1/search", json={"like": b64(wav_bytes(1.0, 150.0)), "k": 2}).status_code == 200
    small_memory = make_client(index=index, max_audio_memory=1000)
    error_of(small_memory.post("/v1/search", json={"like": long_clip}), 429, "busy")


def test_a_corrupt_upload_is_described_in_words(make_client):
    """The page shows the server's error text: it must not carry a Python object's repr."""
    message = error_of(make_client().post("/v1/score", json={"audio": b64(b"RIFF" + b"x" * 200),
                                                             "captions": [CAPTION]}), 400, "bad_audio")
    assert message.startswith("audio could not be decoded: unreadable or corrupt audio (")
    assert "object at 0x" not in message and "BytesIO" not in message


def test_fuzzed_searches_get_no_5xx(live_server, small_index):
    """The schema's ``like`` (an upload, a path or a row) fuzzed against real uvicorn serving the small index: every
    answer below 500, every 4xx a JSON error; some generated examples reach the index (200)."""
    pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install -e '.[dev]')")
    import importlib
    import sys
    from pathlib import Path

    import httpx

    benchmarks = str(Path(__file__).resolve().parents[2] / "benchmarks")
    if benchmarks not in sys.path:
        sys.path.insert(0, benchmarks)
    fuzz = importlib.import_module("serve_fuzz").fuzz
    url, app = live_server(index=small_index[0], max_audio_seconds=5.0)
    schema = httpx.get(f"{url}/openapi.json").json()
    schema["paths"] = {"/v1/search": schema["paths"]["/v1/search"]}
    result = fuzz(url, schema, examples=60, seed=28)
    assert not result["failures"], result["failures"][:5]
    statuses = result["statuses"]["POST /v1/search"]
    assert statuses.get("200", 0) > 0, statuses
    assert settled(app.state.serve) == (0, 0)
