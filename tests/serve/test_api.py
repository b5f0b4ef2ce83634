"""API tests with FastAPI's TestClient: every endpoint, each bad-request case, 429, 504, auth, the path root rule."""
from __future__ import annotations

import os
import threading
from pathlib import Path
import time

import numpy as np
import pytest

from serve_helpers import b64, wav_bytes

CAPTIONS = ["A person speaks in a deep voice.", "A person speaks in a high-pitched voice."]


def expect_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    if code is not None:
        assert body["code"] == code, body
    return body


# ---------------------------------------------------------------------------------------------- endpoints
def test_score_json_and_multipart_match_the_model(client, mini, clip):
    expected = mini.similarity(clip, CAPTIONS)[0]
    for response in (client.post("/v1/score", json={"audio": b64(clip), "captions": CAPTIONS}),
                     client.post("/v1/score", files={"audio": ("a.wav", clip, "audio/wav")},
                                 data={"captions": CAPTIONS})):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["captions"] == CAPTIONS
        np.testing.assert_allclose(body["cosines"], expected, atol=1e-5)
        np.testing.assert_allclose(body["logits"], mini.logit_scale * expected, rtol=1e-5, atol=1e-5)
        assert body["provenance"]["identity"] == mini.identity() and body["seconds"] == pytest.approx(1.5)


def test_classify_candidates_and_default_attributes(client, mini, clip):
    response = client.post("/v1/classify", json={"audio": b64(clip), "candidates": ["deep", "high-pitched"],
                                                 "attributes": "default"})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = mini.classify(clip, ["deep", "high-pitched"])[0]
    assert body["probabilities"] == pytest.approx(expected, abs=1e-5)
    table = client.get("/v1/attributes").json()
    assert table["table"] == "mini" and set(body["attributes"]) == set(table["attributes"])
    for name, probabilities in body["attributes"].items():
        assert list(probabilities) == table["attributes"][name]
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    from paraspeechclap.annotate.attributes import table_for_model

    probed = [a for a in table_for_model(mini).attributes if a.probe is not None]  # mini's table: range among them
    assert "range" in {a.name for a in probed}
    emb = mini.embed_audio([clip])
    for a in probed:  # as annotate classifies it: the probe's softmax over the classes and none
        assert body["attributes"][a.name] == pytest.approx(dict(zip(a.outcomes, a.probe_probabilities(emb)[0])),
                                                           abs=1e-5)
    templated = client.post("/v1/classify", json={"audio": b64(clip), "candidates": ["deep", "high-pitched"],
                                                  "template": "Someone with a {} voice."}).json()
    assert templated["probabilities"] == pytest.approx(
        mini.classify(clip, ["deep", "high-pitched"], template="Someone with a {} voice.")[0], abs=1e-5)


def test_embed_audio_and_texts(client, mini, clip):
    response = client.post("/v1/embed", json={"audio": [b64(clip), b64(b"not audio")], "texts": CAPTIONS})
    assert response.status_code == 200, response.text
    body = response.json()
    np.testing.assert_allclose(body["audio"][0], mini.embed_audio(clip)[0], atol=1e-5)
    assert body["audio"][1] is None and "could not be decoded" in body["errors"][1] and body["errors"][0] is None
    np.testing.assert_allclose(body["texts"], mini.embed_text(CAPTIONS), atol=1e-5)
    assert body["dim"] == len(body["audio"][0])
    texts_only = client.post("/v1/embed", json={"texts": CAPTIONS[:1]}).json()
    assert texts_only["audio"] == [] and len(texts_only["texts"]) == 1


def test_reward_contract_with_one_bad_item(client, mini, clip):
    other = wav_bytes(1.2, 260.0)
    items = [{"audio": b64(clip), "caption": CAPTIONS[0], "group": "p1"},
             {"audio": {"base64": "bm90IGF1ZGlv"}, "caption": CAPTIONS[0], "group": "p1"},  # "not audio"
             {"audio": b64(other), "caption": CAPTIONS[0], "group": "p1"},
             {"audio": b64(other), "caption": "", "group": "p2"},
             {"audio": b64(clip), "caption": CAPTIONS[1]}]
    from paraspeechclap.rerank import reward as in_process

    expected = in_process(mini, [clip, other, clip], [CAPTIONS[0], CAPTIONS[0], CAPTIONS[1]])
    for shaping in ("cosine", "logit", "group_norm"):
        response = client.post("/v1/reward", json={"items": items, "shaping": shaping})
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"rewards", "components", "errors", "provenance"}
        assert [r is None for r in body["rewards"]] == [False, True, False, True, False]
        assert [c is None for c in body["components"]] == [False, True, False, True, False]
        assert body["errors"][0] is None and "items[1].audio" in body["errors"][1] and "caption" in body["errors"][3]
        cosines = [body["components"][i]["cosine"] for i in (0, 2, 4)]
        np.testing.assert_allclose(cosines, expected, atol=1e-5)
        if shaping == "cosine":
            np.testing.assert_allclose([body["rewards"][i] for i in (0, 2, 4)], expected, atol=1e-5)
        elif shaping == "logit":
            np.testing.assert_allclose([body["rewards"][i] for i in (0, 2, 4)], mini.logit_scale * expected,
                                       rtol=1e-4, atol=1e-4)
        else:  # p1 holds items 0 and 2 (two good members: +-1); item 4 is alone in its group (its caption): 0
            assert body["rewards"][0] == pytest.approx(-body["rewards"][2], abs=1e-4)
            assert abs(body["rewards"][0]) == pytest.approx(1.0, abs=1e-3) and body["rewards"][4] == 0.0
            assert "group_mean" in body["components"][0]


def test_reward_contrastive_equals_the_library_score(client, mini, clip):
    """shaping=contrastive answers the numbers of rerank.reward(score="contrastive") (the benchmark's score); a caption
    that names no attribute the counterfactual table flips fails only itself, with the reason."""
    other = wav_bytes(1.2, 260.0)
    items = [{"audio": b64(clip), "caption": CAPTIONS[0]}, {"audio": b64(other), "caption": CAPTIONS[1]},
             {"audio": b64(clip), "caption": "Hello there."}]
    from paraspeechclap.rerank import reward as in_process

    expected = in_process(mini, [clip, other], CAPTIONS, score="contrastive")
    response = client.post("/v1/reward", json={"items": items, "shaping": "contrastive"})
    assert response.status_code == 200, response.text
    body = response.json()
    np.testing.assert_allclose(body["rewards"][:2], expected, atol=1e-5)
    assert body["components"][0]["counterfactuals"] >= 1 and 0.0 <= body["components"][0]["contrastive_win"] <= 1.0
    assert body["rewards"][2] is None and "names no attribute" in body["errors"][2]


def test_timeline_matches_the_model(client, mini):
    long_clip = wav_bytes(6.0, 180.0)
    response = client.post("/v1/timeline", json={"audio": b64(long_clip), "captions": CAPTIONS,
                                                 "window_seconds": 2, "hop_seconds": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = mini.timeline(long_clip, CAPTIONS, window_seconds=2, hop_seconds=1)
    assert body["start"] == expected["start"] and body["captions"] == CAPTIONS
    np.testing.assert_allclose(body["scores"], expected["scores"], atol=1e-5)
    expect_error(client.post("/v1/timeline", json={"audio": b64(long_clip), "captions": CAPTIONS,
                                                   "window_seconds": 1, "hop_seconds": 2}), 400, "bad_field")


def test_search_without_and_with_an_index(make_client):
    expect_error(make_client().post("/v1/search", json={"text": "calm"}), 404, "no_index")
    expect_error(make_client().get("/v1/clip/0"), 404, "no_index")

    class FakeIndex:
        meta: dict = {}

        def search(self, text=None, where=None, top=10, model=None):
            self.where = where
            return [{"rank": i + 1, "row": i, "score": np.float32(1.0 - i / 10)} for i in range(top)]

    fake = FakeIndex()
    client = make_client(index=fake)
    body = client.post("/v1/search", json={"text": "calm", "k": 3, "filters": {"pitch": "deep"},
                                           "min_duration": 1}).json()
    assert [hit["row"] for hit in body["results"]] == [0, 1, 2]
    assert fake.where == "\"pitch\" = 'deep' AND duration >= 1.0"
    assert client.get("/health").json()["index"] is True
    # filters are checked against the attribute table, never passed through as SQL
    expect_error(client.post("/v1/search", json={"text": "a", "filters": {"pitch": "x' OR 1=1 --"}}), 400, "bad_field")
    expect_error(client.post("/v1/search", json={"text": "a", "filters": {"1=1; --": "deep"}}), 400, "bad_field")


def test_search_a_real_index_and_play_a_clip(make_client, mini, tmp_path):
    pytest.importorskip("duckdb", reason="the corpus extra (duckdb, usearch) is not installed")
    pytest.importorskip("usearch", reason="the corpus extra (duckdb, usearch) is not installed")
    import soundfile as sf

    from paraspeechclap.annotate import annotate
    from paraspeechclap.index import Index

    corpus = tmp_path / "audio"
    corpus.mkdir()
    for i, freq in enumerate((100, 140, 220, 300)):
        (corpus / f"clip{i}.wav").write_bytes(wav_bytes(1.0 + 0.2 * i, freq))
    (corpus / "broken.wav").write_bytes(b"not audio at all")           # a row that failed to decode
    (tmp_path / "outside.wav").write_bytes(wav_bytes(1.0, 180))
    (corpus / "linked.wav").symlink_to(tmp_path / "outside.wav")       # decodes, but lives outside the corpus
    annotate(corpus, tmp_path / "ann", workers=1, shard_size=8, device="cpu")
    index = Index.build(tmp_path / "ann")
    opened = Index.open(index.folder)
    client = make_client(index=opened)
    rows = {Path(audio).name: (row, status) for row, audio, status in
            opened.sql.execute("SELECT row, audio, status FROM clips").fetchall()}
    assert rows["broken.wav"][1] != "ok" and rows["linked.wav"][1] == "ok"
    expect_error(client.get(f"/v1/clip/{rows['broken.wav'][0]}"), 404, "no_such_clip")
    expect_error(client.get(f"/v1/clip/{rows['linked.wav'][0]}"), 404, "no_such_clip")
    assert client.get(f"/v1/clip/{rows['clip0.wav'][0]}").status_code == 200
    body = client.post("/v1/search", json={"text": "A man speaks in a deep voice.", "k": 3}).json()
    assert len(body["results"]) == 3 and body["results"][0]["score"] >= body["results"][-1]["score"]
    hit = body["results"][0]
    assert hit["name"].startswith("clip") and "audio" not in hit            # no server paths in the answer
    audio = client.get(hit["audio_url"])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    assert sf.info(__import__("io").BytesIO(audio.content)).frames > 0
    expect_error(client.get("/v1/clip/9999"), 404, "no_such_clip")


def test_health_metrics_docs_and_page(client, clip):
    client.post("/v1/score", json={"audio": b64(clip), "captions": CAPTIONS})
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"] == "mini" and health["queue"]["in_flight"] == 0
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'paraspeechclap_requests_total{endpoint="/v1/score",status="200"} 1' in text
    assert 'paraspeechclap_request_latency_seconds_bucket{endpoint="/v1/score",le="+Inf"} 1' in text
    assert "paraspeechclap_batch_items_count 1" in text and "paraspeechclap_queue_depth 0" in text
    try:  # the exposition parses as Prometheus text (prometheus_client, where installed)
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        pass
    else:
        families = {family.name: family.type for family in text_string_to_metric_families(text)}
        assert families["paraspeechclap_requests"] == "counter"
        assert families["paraspeechclap_request_latency_seconds"] == "histogram"
        assert families["paraspeechclap_batch_items"] == "histogram" and families["paraspeechclap_queue_depth"] == "gauge"
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "http://" not in docs.text and "https://" not in docs.text  # nothing from a CDN
    if "/docs/assets/" in docs.text:
        assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/v1/score", "/v1/classify", "/v1/embed", "/v1/reward", "/v1/timeline", "/v1/search"} <= set(schema["paths"])
    page = client.get("/")
    assert page.status_code == 200 and 'id="timeline-svg"' in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        response = client.get(asset)
        assert response.status_code == 200 and "http://" not in response.text and "https://" not in response.text


# ---------------------------------------------------------------------------------------------- bad requests
def test_bad_requests_get_clear_json_4xx(make_client, clip):
    client = make_client(max_upload_bytes=200_000, max_audio_seconds=3.0, max_captions=3, max_items=2)
    score = lambda **body: client.post("/v1/score", json=body)  # noqa: E731
    expect_error(score(audio={"base64": "bm90IGF1ZGlv"}, captions=CAPTIONS), 400, "bad_audio")   # corrupt
    expect_error(score(audio={"base64": "%%%"}, captions=CAPTIONS), 400, "bad_base64")
    expect_error(score(audio="clip.wav", captions=CAPTIONS), 400, "bad_audio")                   # wrong type
    expect_error(score(audio=b64(clip), captions=[1, 2]), 400, "bad_field")
    expect_error(score(audio=b64(clip), captions="  "), 400, "bad_field")
    expect_error(score(audio=b64(clip)), 400, "missing_field")
    expect_error(score(captions=CAPTIONS), 400, "missing_field")
    expect_error(score(audio=b64(clip), captions=["a", "b", "c", "d"]), 413, "too_many")
    expect_error(score(audio=b64(wav_bytes(4.0)), captions=CAPTIONS), 413, "audio_too_long")
    expect_error(score(audio=b64(wav_bytes(10.0)), captions=CAPTIONS), 413, "too_large")   # 427 kB of JSON

    def chunks():  # no Content-Length: the limit holds while the body streams in
        yield b'{"captions": ["a"], "audio": {"base64": "'
        for _ in range(40):
            yield b"A" * 10_000
        yield b'"}}'

    expect_error(client.post("/v1/score", content=chunks(), headers={"content-type": "application/json"}),
                 413, "too_large")
    expect_error(client.post("/v1/score", content=b"{not json", headers={"content-type": "application/json"}),
                 400, "bad_json")
    expect_error(client.post("/v1/score", json=[1, 2]), 400, "bad_json")
    expect_error(client.post("/v1/score", content=b"x", headers={"content-type": "text/plain"}), 415)
    expect_error(client.post("/v1/classify", json={"audio": b64(clip), "candidates": ["a", "a"]}), 400, "bad_field")
    expect_error(client.post("/v1/classify", json={"audio": b64(clip), "candidates": ["a"], "template": "no slot"}),
                 400, "bad_field")
    expect_error(client.post("/v1/reward", json={"items": "x"}), 400, "bad_field")
    expect_error(client.post("/v1/reward", json={"items": [{"audio": b64(clip), "caption": "a"}], "shaping": "max"}),
                 400, "bad_field")
    expect_error(client.post("/v1/reward", json={"items": [{"audio": b64(clip), "caption": "a"}] * 3}), 413, "too_many")
    expect_error(client.get("/v1/nothing"), 404)
    expect_error(client.get("/v1/score"), 405)
    assert client.get("/health").json()["queue"]["in_flight"] == 0   # every refused request gave its room back


def test_server_side_paths_only_under_the_allowed_root(make_client, tmp_path, clip):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    (root / "a.wav").write_bytes(clip)
    (outside / "b.wav").write_bytes(clip)
    os.symlink(outside / "b.wav", root / "link.wav")
    body = lambda path: {"audio": {"path": path}, "captions": CAPTIONS}  # noqa: E731
    expect_error(make_client().post("/v1/score", json=body(str(root / "a.wav"))), 403, "paths_disabled")
    client = make_client(allow_root=str(root))
    assert client.post("/v1/score", json=body(str(root / "a.wav"))).status_code == 200
    assert client.post("/v1/score", json=body("a.wav")).status_code == 200           # relative to the root
    expect_error(client.post("/v1/score", json=body(str(outside / "b.wav"))), 403, "path_outside_root")
    expect_error(client.post("/v1/score", json=body("../outside/b.wav")), 403, "path_outside_root")
    expect_error(client.post("/v1/score", json=body(str(root / "link.wav"))), 403, "path_outside_root")
    expect_error(client.post("/v1/score", json=body(str(root / "missing.wav"))), 404, "no_such_file")
    reward = client.post("/v1/reward", json={"items": [{"audio": {"path": "a.wav"}, "caption": "a"},
                                                       {"audio": {"path": "/etc/passwd"}, "caption": "a"}]}).json()
    assert reward["rewards"][0] is not None and reward["rewards"][1] is None and "outside" in reward["errors"][1]


def test_bearer_token(make_client, clip, monkeypatch):
    client = make_client(token="s3cret")
    body = {"audio": b64(clip), "captions": CAPTIONS}
    response = expect_error(client.post("/v1/score", json=body), 401, "unauthorized")
    assert client.post("/v1/score", json=body).headers["www-authenticate"] == "Bearer"
    expect_error(client.post("/v1/score", json=body, headers={"Authorization": "Bearer wrong"}), 401)
    expect_error(client.get("/metrics"), 401)
    assert client.post("/v1/score", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/health").status_code == 200 and client.get("/health").json()["auth"] is True
    assert "s3cret" not in str(client.get("/health").json()) and response


def test_token_from_the_environment(monkeypatch):
    from paraspeechclap.serve import cli

    parser = __import__("argparse").ArgumentParser()
    cli.add_arguments(parser)
    monkeypatch.setenv("PARASPEECHCLAP_TOKEN", "from-env")
    assert cli.config_from_args(parser.parse_args([])).token == "from-env"
    assert cli.config_from_args(parser.parse_args(["--token", "flag"])).token == "flag"
    args = parser.parse_args([])
    assert args.host == "127.0.0.1" and args.allow_root is None   # localhost and no paths by default


# ---------------------------------------------------------------------------------------------- backpressure
def test_429_with_retry_after_past_the_queue_bound(make_client, clip):
    client = make_client(max_queue_items=2)
    held = client.app.state.batcher.admit(2)           # the queue is full
    try:
        for path, body in (("/v1/score", {"audio": b64(clip), "captions": CAPTIONS}),
                           ("/v1/reward", {"items": [{"audio": b64(clip), "caption": "a"}]})):
            response = client.post(path, json=body)
            expect_error(response, 429, "busy")
            assert int(response.headers["retry-after"]) >= 1
    finally:
        held.release()
    assert client.post("/v1/score", json={"audio": b64(clip), "captions": CAPTIONS}).status_code == 200
    # a request larger than the whole bound is refused, not queued forever
    expect_error(client.post("/v1/reward", json={"items": [{"audio": b64(clip), "caption": "a"}] * 3}), 429, "busy")
    assert 'paraspeechclap_requests_total{endpoint="/v1/score",status="429"} 1' in client.get("/metrics").text


def test_concurrent_overload_gets_429_not_errors(make_client, clip):
    client = make_client(max_queue_items=3, max_wait_ms=20)
    batcher = client.app.state.batcher
    gate = threading.Event()
    batcher.call(lambda: gate.wait(10))                 # the worker is busy until the gate opens
    statuses: list[int] = []

    def one():
        statuses.append(client.post("/v1/score", json={"audio": b64(clip), "captions": CAPTIONS}).status_code)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.time() + 10
    while len(statuses) < 5 and time.time() < deadline:   # 8 - 3 admitted = 5 refused at once
        time.sleep(0.02)
    gate.set()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [200] * 3 + [429] * 5, statuses
    assert client.get("/health").json()["queue"]["in_flight"] == 0


def test_request_timeout_is_504(make_client, clip):
    client = make_client(request_timeout=0.3)
    gate = threading.Event()
    client.app.state.batcher.call(lambda: gate.wait(10))
    try:
        expect_error(client.post("/v1/score", json={"audio": b64(clip), "captions": CAPTIONS}), 504, "timeout")
    finally:
        gate.set()
    time.sleep(0.1)
    assert client.post("/v1/score", json={"audio": b64(clip), "captions": CAPTIONS}).status_code == 200
    assert client.get("/health").json()["queue"]["in_flight"] == 0
