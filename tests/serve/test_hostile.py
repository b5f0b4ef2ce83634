"""Hostile requests, small: each class of the issue-27 attacks gets a 4xx naming what was wrong, or bounded work.
Behaviour that depends on the HTTP layer (slow headers and bodies, Host and Origin, client disconnects) runs against
real uvicorn on 127.0.0.1; the rest through the TestClient."""
from __future__ import annotations

import io
import json
import socket
import time

import numpy as np
import pytest
import soundfile as sf

from serve_helpers import b64, request_work, settled, wav_bytes

CAPTIONS = ["A person speaks in a deep voice.", "A person speaks in a high-pitched voice."]


def expect_error(response, status: int, code: str | None = None, mentions: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    if code is not None:
        assert body["code"] == code, body
    if mentions is not None:
        assert mentions in body["error"], body
    return body


def flac(frames: int, rate: int, channels: int, fmt: str = "FLAC") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((frames, channels), np.int16), rate, format=fmt)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------- decode bombs, cost
def test_decode_bombs_are_refused_by_their_header(client):
    bomb = flac(65_535, 655_350, 8)           # the 8-channel 655,350 Hz FLAC, 0.1 s of it
    expect_error(client.post("/v1/score", json={"audio": b64(bomb), "captions": CAPTIONS}), 400, "bad_audio",
                 "655350 Hz is over the limit")
    wide = flac(8_000, 16_000, 12, "WAV")      # more channels than the service takes (8)
    expect_error(client.post("/v1/score", json={"audio": b64(wide), "captions": CAPTIONS}), 400, "bad_audio",
                 "12 channels")
    long_silence = flac(16_000 * 600, 16_000, 1)   # 600 s of silence in a few kB: its header says so
    assert len(long_silence) < 200_000
    expect_error(client.post("/v1/score", json={"audio": b64(long_silence), "captions": CAPTIONS}), 413,
                 "audio_too_long")
    assert client.get("/health").json()["memory"] == {"bodies": 0, "audio": 0}


def test_timeline_cost_is_counted_before_decoding(make_client):
    client = make_client(max_request_cost=150, max_timeline_windows=1000)
    recording = flac(16_000 * 120, 16_000, 1)  # 120 s: 118 windows of 3 s at a 1 s hop = 354 s of work
    expect_error(client.post("/v1/timeline", json={"audio": b64(recording), "captions": CAPTIONS}), 413,
                 "too_costly", "this timeline")
    expect_error(client.post("/v1/timeline", json={"audio": b64(recording), "captions": CAPTIONS,
                                                   "window_seconds": 1, "hop_seconds": 0.05}), 413, "too_many_windows")
    ok = client.post("/v1/timeline", json={"audio": b64(recording), "captions": CAPTIONS[:1],
                                           "window_seconds": 10, "hop_seconds": 10})
    assert ok.status_code == 200 and len(ok.json()["start"]) == 12


def test_prompt_and_template_bombs(client, clip):
    sets = {f"a{i}": [f"c{j}" for j in range(64)] for i in range(8)}       # 512 prompts in one 10 kB body
    expect_error(client.post("/v1/classify", json={"audio": b64(clip), "attributes": sets}), 413,
                 "too_many_prompts", "512 prompts")
    many = {f"a{i}": ["x", "y"] for i in range(100)}
    expect_error(client.post("/v1/classify", json={"audio": b64(clip), "attributes": many}), 413, "too_many")
    # the template bomb and an attribute access: format fields are refused before any work is admitted
    for template in ("{:>10000000}{{}}", "{0.__class__} {}", "{x} {} {}", "no slot", "{}" * 3):
        expect_error(client.post("/v1/classify", json={"audio": b64(clip), "candidates": ["a"], "template": template}),
                     400, "bad_field", "'template'")
    expect_error(client.post("/v1/classify", json={"audio": b64(clip), "candidates": ["a"], "template": "{}" + "x" * 2000}),
                 413, "too_long")


def test_work_and_memory_in_flight_are_bounded(make_client, clip):
    client = make_client(max_queue_cost=10, max_audio_memory=100_000)   # 100 kB: about 1.5 s of decoded audio
    expect_error(client.post("/v1/score", json={"audio": b64(wav_bytes(3.0)), "captions": CAPTIONS}), 429, "busy",
                 "decoded-audio memory")
    assert client.post("/v1/score", json={"audio": b64(wav_bytes(1.0)), "captions": CAPTIONS}).status_code == 200
    held = client.app.state.batcher.admit(1, cost=9.5)
    try:
        response = client.post("/v1/score", json={"audio": b64(wav_bytes(1.0)), "captions": CAPTIONS})
        expect_error(response, 429, "busy", "s of work in flight")
        assert int(response.headers["retry-after"]) >= 1
    finally:
        held.release()
    health = client.get("/health").json()
    assert health["queue"]["cost_in_flight"] == 0 and health["memory"] == {"bodies": 0, "audio": 0}


def test_body_memory_budget_keeps_room_for_small_bodies(make_client, clip):
    from paraspeechclap.serve.http import BODY_CHARGE, SMALL_RESERVE

    client = make_client(max_body_memory=SMALL_RESERVE + BODY_CHARGE * 3_000_000, max_upload_bytes=4_000_000)
    budget = client.app.state.serve.body_budget
    assert budget.try_take(BODY_CHARGE * 2_000_000)          # a large upload is being read
    try:
        big = {"audio": {"base64": "A" * 2_000_000}, "captions": CAPTIONS}
        expect_error(client.post("/v1/score", json=big), 429, "busy", "request bodies")
        assert client.post("/v1/score", json={"audio": b64(clip), "captions": CAPTIONS}).status_code == 200
    finally:
        budget.give(BODY_CHARGE * 2_000_000)
    assert client.get("/health").json()["memory"]["bodies"] == 0


# ---------------------------------------------------------------------------------------------- malformed bodies
def test_deep_and_wide_json_are_4xx(make_client, clip):
    client = make_client(max_json_values=10_000)
    deep = b'{"captions": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"        # the issue's: over the value count
    expect_error(client.post("/v1/score", content=deep, headers={"content-type": "application/json"}), 413,
                 "too_many_values")
    deep = b'{"captions": ' + b"[" * 9_000 + b"]" * 9_000 + b"}"            # deeper than Python's recursion limit
    expect_error(client.post("/v1/score", content=deep, headers={"content-type": "application/json"}), 400, "too_deep")
    nested = {"audio": b64(clip), "captions": CAPTIONS, "x": json.loads("[" * 40 + "]" * 40)}
    expect_error(client.post("/v1/score", json=nested), 400, "too_deep")
    expect_error(client.post("/v1/classify", files={"audio": ("a.wav", clip)},
                             data={"attributes": "{" + '"a":{' * 5000 + "}" * 5001}), 400, "too_deep")
    wide = b'{"captions": [' + b",".join([b"0"] * 20_000) + b"]}"
    expect_error(client.post("/v1/score", content=wide, headers={"content-type": "application/json"}), 413,
                 "too_many_values")


def test_a_small_body_over_the_value_count_is_refused_without_a_thread(make_client, monkeypatch):
    import paraspeechclap.serve.body as body

    client = make_client(max_json_values=10_000)

    def no_thread(*args, **kwargs):
        raise AssertionError("a body refused by its count was handed to the thread pool")

    monkeypatch.setattr(body, "run_in_threadpool", no_thread)
    wide = b'{"captions": [' + b",".join([b"0"] * 20_000) + b"]}"
    expect_error(client.post("/v1/score", content=wide, headers={"content-type": "application/json"}), 413,
                 "too_many_values")


def test_lone_surrogates_fail_their_field_or_item(client, clip):
    expect_error(client.post("/v1/score", content=b'{"audio": ' + json.dumps(b64(clip)).encode()
                             + b', "captions": ["ok", "bad \\ud800"]}', headers={"content-type": "application/json"}),
                 400, "bad_field", "captions[1]")
    items = b'[{"audio": %s, "caption": "A deep voice."}, {"audio": %s, "caption": "x \\udfff"}]' % (
        json.dumps(b64(clip)).encode(), json.dumps(b64(clip)).encode())
    body = client.post("/v1/reward", content=b'{"items": ' + items + b"}",
                       headers={"content-type": "application/json"}).json()
    assert body["rewards"][0] is not None and body["rewards"][1] is None and "items[1].caption" in body["errors"][1]


@pytest.mark.parametrize("path,body", [
    ("/v1/score", {"audio": {"base64": 5}, "captions": ["a"]}),
    ("/v1/score", {"audio": {"path": "x"}, "captions": ["a"]}),
    ("/v1/timeline", {"audio": {"base64": "AAAA"}, "captions": ["a"], "window_seconds": "x"}),
    ("/v1/timeline", {"audio": {"base64": "AAAA"}, "captions": ["a"], "hop_seconds": True}),
    ("/v1/search", {"text": "a", "k": 10**30}),
    ("/v1/classify", {"audio": {"base64": "AAAA"}, "attributes": {"": ["a"]}}),
])
def test_malformed_fields_are_4xx_naming_the_field(client, path, body):
    response = client.post(path, json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["code"] and response.json()["error"]


def test_bad_items_fail_only_themselves(client, clip):
    reward = client.post("/v1/reward", json={"items": [{"audio": b64(clip), "caption": "a", "group": [1]},
                                                       {"audio": b64(clip), "caption": "a", "group": True},
                                                       {"audio": b64(clip), "caption": "a"}]}).json()
    assert [r is None for r in reward["rewards"]] == [True, True, False]
    assert "items[0].group" in reward["errors"][0] and "items[1].group" in reward["errors"][1]
    embed = client.post("/v1/embed", json={"audio": [None, 3, b64(clip)]}).json()
    assert "'audio[0]' is required" in embed["errors"][0] and "audio[1]" in embed["errors"][1]
    assert embed["audio"][2] is not None and embed["errors"][2] is None


# ---------------------------------------------------------------------------------------------- scope
def test_clip_rows_are_bounded_and_checked(make_client):
    class FakeIndex:
        meta: dict = {}
        annotations = "/nonexistent"

        def rows(self, rows, columns):
            raise AssertionError("an impossible row reached the index")

    client = make_client(index=FakeIndex())
    for row in ("9223372036854775808", str(2**62 + 1), "-1", "1e3", "0x10", "x"):
        expect_error(client.get(f"/v1/clip/{row}"), 422, "invalid_request", "row")


def test_clips_only_decoded_regular_files_inside_the_corpus(make_client, tmp_path):
    from paraspeechclap.serve.routes.search import clip_path

    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    corpus.mkdir(), outside.mkdir()
    (corpus / "a.wav").write_bytes(wav_bytes(1.0))
    (outside / "secret.txt").write_text("secret")
    (corpus / "link.wav").symlink_to(outside / "secret.txt")
    roots = [corpus.resolve()]
    assert clip_path({"audio": str(corpus / "a.wav")}, roots) == (corpus / "a.wav").resolve()
    assert clip_path({"audio": "a.wav"}, roots) == (corpus / "a.wav").resolve()
    assert clip_path({"audio": str(corpus / "link.wav")}, roots) is None      # a link out of the corpus
    assert clip_path({"audio": "../outside/secret.txt"}, roots) is None
    assert clip_path({"audio": "/dev/null"}, [__import__("pathlib").Path("/dev")]) is None   # not a regular file
    assert clip_path({"audio": str(corpus / "a.wav")}, []) is None


def test_an_index_of_another_model_is_refused(mini):
    from paraspeechclap.index.core import model_mismatch
    from paraspeechclap.serve.app import create_app

    provenance = mini.provenance()
    dim = int(mini.config.embedding_dim)
    assert model_mismatch({"model": dict(provenance), "dim": dim}, provenance, dim) is None

    class OtherIndex:
        meta = {"model": {"model": "intrinsic", "identity": "0123456789abcdef", "precision": "fp32"}, "dim": 512}
        annotations = "/nonexistent"

    with pytest.raises(ValueError) as caught:
        create_app(mini, index=OtherIndex())
    message = str(caught.value)
    for fact in ("'intrinsic'", "0123456789abcdef", "dimension 512", provenance["identity"], f"dimension {dim}"):
        assert fact in message, message


# ---------------------------------------------------------------------------------------------- the HTTP layer
def raw(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.mark.parametrize("front", ["httptools", "h11"])
def test_slow_headers_get_408_and_are_closed(live_server, front):
    url, _ = live_server(header_timeout=1.0, http=front)
    start = time.monotonic()
    with raw(url) as sock:
        sock.sendall(b"POST /v1/score HTTP/1.1\r\nHost: localhost\r\n")
        for _ in range(3):
            time.sleep(0.3)
            sock.sendall(b"X-Slow: 1\r\n")
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 408") and b"header_timeout" in answer
    assert time.monotonic() - start < 3.0
    with raw(url) as idle:                       # a connection that never sends a byte is closed too
        assert read_response(idle).startswith(b"HTTP/1.1 408")


@pytest.mark.parametrize("front", ["httptools", "h11"])
def test_a_huge_request_head_is_refused_by_either_front_end(live_server, front):
    """h11 caps a head at 16 KiB; uvicorn's httptools protocol has no cap, ours adds the same one (431)."""
    url, _ = live_server(http=front)
    for head in (b"GET /health?" + b"q" * 40_000 + b" HTTP/1.1\r\nHost: localhost\r\n",
                 b"GET /health HTTP/1.1\r\nHost: localhost\r\n" + b"X-Big: " + b"b" * 40_000 + b"\r\n"):
        with raw(url) as sock:
            sock.sendall(head)                    # unfinished: the server must not wait for the rest
            answer = read_response(sock)
        assert answer.startswith((b"HTTP/1.1 431", b"HTTP/1.1 400")), answer[:200]
        assert answer.count(b"HTTP/1.1") == 1
    with raw(url) as sock:                        # a normal head still passes
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200")


def test_slow_bodies_get_408_within_the_body_deadline(live_server):
    url, app = live_server(body_timeout=1.0)
    start = time.monotonic()
    with raw(url) as sock:
        sock.sendall(b"POST /v1/score HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100000\r\n\r\n{\"captions\": [")
        for _ in range(4):
            time.sleep(0.4)
            try:
                sock.sendall(b"\"a\", ")
            except OSError:
                break
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 408") and b"body_timeout" in answer, answer[:300]
    assert time.monotonic() - start < 3.0
    assert settled(app.state.serve)[1] == 0


def test_host_and_origin_are_checked_without_a_token(live_server, clip):
    import httpx

    url, _ = live_server(allowed_hosts=("speech.example",))
    body = {"audio": b64(clip), "captions": CAPTIONS}
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.post("/v1/score", json=body).status_code == 200                       # Host 127.0.0.1:port
        assert http.post("/v1/score", json=body, headers={"Host": "localhost:1"}).status_code == 200
        assert http.post("/v1/score", json=body, headers={"Host": "speech.example"}).status_code == 200
        expect_error(http.post("/v1/score", json=body, headers={"Host": "evil.example"}), 403, "bad_host")
        expect_error(http.post("/v1/score", json=body, headers={"Origin": "http://evil.example"}), 403, "bad_origin")
        expect_error(http.post("/v1/score", json=body, headers={"Origin": "null"}), 403, "bad_origin")
        assert http.post("/v1/score", json=body, headers={"Origin": url}).status_code == 200   # the page itself
        form = http.post("/v1/classify", data={"candidates": "a"}, headers={"Origin": "https://evil.example"})
        expect_error(form, 403, "bad_origin")                                # a cross-site form POST
        assert http.get("/health", headers={"Host": "evil.example"}).status_code == 200
        assert "access-control-allow-origin" not in http.options("/v1/score", headers={"Origin": url}).headers
    url, _ = live_server(token="t")
    with httpx.Client(base_url=url, timeout=30) as http:   # with a token the token is the check
        response = http.post("/v1/score", json=body, headers={"Host": "any.example", "Authorization": "Bearer t"})
        assert response.status_code == 200


def test_a_timeout_or_a_client_gone_frees_the_worker_within_one_chunk(live_server):
    import httpx

    url, app = live_server(request_timeout=1.0, chunk_seconds=3.0)
    metrics = app.state.serve.metrics
    recording = {"audio": b64(wav_bytes(240.0, 120.0)), "captions": CAPTIONS}   # 238 windows, one per chunk
    with httpx.Client(base_url=url, timeout=60) as http:
        before = metrics.batch_items.total
        expect_error(http.post("/v1/timeline", json=recording), 504, "timeout")
        time.sleep(1.0)
        ran = metrics.batch_items.total - before
        assert ran < 100                      # far fewer than the 238 chunks asked for
        time.sleep(0.5)
        assert metrics.batch_items.total - before <= ran + 1    # and nothing after the 504 but the chunk running
        assert http.get("/health").json()["queue"]["cost_in_flight"] == 0
    url, app = live_server(request_timeout=60.0, chunk_seconds=3.0)
    metrics = app.state.serve.metrics
    data = json.dumps(recording).encode()
    with raw(url) as sock:
        sock.sendall(b"POST /v1/timeline HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(data) + data)
        deadline = time.monotonic() + 30
        while metrics.batch_items.total < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    gone = metrics.batch_items.total
    time.sleep(1.5)
    assert metrics.batch_items.total - gone <= 8          # stopped within a poll of chunks, not 238
    with httpx.Client(base_url=url, timeout=10) as http:
        assert http.get("/health").json()["queue"]["in_flight"] == 0


def test_long_strings_are_cut_out_before_parsing_and_put_back():
    from paraspeechclap.serve.body import LONG_STRING, lift_long_strings, parse_json, _parse_body
    from paraspeechclap.serve.config import ServeConfig

    long = "QUJD" * (LONG_STRING // 2)
    body = {"audio": {"base64": long}, "captions": ["a \\\" quote", "x" * 10], "more": [long, "\\" + long]}
    raw = json.dumps(body).encode()
    text, cut = lift_long_strings(raw, "M:")
    assert len(cut) == 2 and len(text) < len(long) + 200          # the escaped one stays for the parser
    parsed = _parse_body(raw, ServeConfig())
    assert parsed["audio"]["base64"] == long.encode() and parsed["more"][0] == long.encode()
    assert parsed["more"][1] == "\\" + long and parsed["captions"] == body["captions"]
    forged = json.dumps({"a": "long-0000:0", "b": long}).encode()   # a client cannot forge the random mark
    assert _parse_body(forged, ServeConfig())["a"] == "long-0000:0"
    broken = raw[:-5]
    with pytest.raises(Exception) as caught:
        _parse_body(broken, ServeConfig())
    assert getattr(caught.value, "code", None) == "bad_json" and parse_json


def test_bodies_being_received_are_bounded_in_number(live_server, clip):
    import httpx

    from paraspeechclap.serve.http import BODY_CHARGE

    url, app = live_server(max_body_readers=2, body_timeout=5.0)
    held = [raw(url) for _ in range(2)]
    try:
        for sock in held:   # two bodies that never finish
            sock.sendall(b"POST /v1/score HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n{")
        deadline = time.monotonic() + 5
        while app.state.serve.body_budget.used < 2 * BODY_CHARGE * 1000 and time.monotonic() < deadline:
            time.sleep(0.02)
        with httpx.Client(base_url=url, timeout=30) as http:
            response = http.post("/v1/score", json={"audio": b64(clip), "captions": CAPTIONS})
            expect_error(response, 429, "busy", "request bodies")
            assert http.get("/health").status_code == 200          # no body: not counted
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.5)
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.post("/v1/score", json={"audio": b64(clip), "captions": CAPTIONS}).status_code == 200


def test_health_is_answered_in_the_parser_with_keep_alive_and_pipelining(live_server, clip):
    """The httptools front answers GET /health in its parser callback (no ASGI task, so no uvicorn default
    headers); two pipelined probes on one connection both get their answer, then the connection closes as asked."""
    import httpx

    url, app = live_server(http="httptools")
    probe = b"GET /health HTTP/1.1\r\nHost: localhost\r\n"
    with raw(url) as sock:
        sock.sendall(probe + b"\r\n" + probe + b"Connection: close\r\n\r\n")
        answer = read_response(sock)
    assert answer.count(b"HTTP/1.1 200 OK") == 2 and b"date:" not in answer.lower(), answer[:300]
    first = json.loads(answer.split(b"\r\n\r\n", 1)[1].split(b"HTTP/1.1", 1)[0])
    assert first["status"] == "ok" and "queue" in first
    assert app.state.metrics.requests[("/health", 200)] == 2
    with httpx.Client(base_url=url, timeout=30) as http:     # the same keep-alive connection serves the app next
        assert http.get("/health").status_code == 200
        assert http.post("/v1/score", json={"audio": b64(clip), "captions": CAPTIONS}).status_code == 200


def test_health_is_answered_before_the_app_stack():
    import asyncio

    from paraspeechclap.serve.config import ServeConfig
    from paraspeechclap.serve.http import Guard, body_budget
    from paraspeechclap.serve.metrics import Metrics

    async def app(scope, receive, send):
        raise AssertionError(f"the app was asked for {scope['path']}")

    metrics, config = Metrics(), ServeConfig()
    guard = Guard(app, metrics, config, body_budget(config), health=lambda: {"status": "ok", "queue": {"depth": 3}})
    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(guard({"type": "http", "path": "/health", "method": "GET", "headers": []}, None, send))
    assert sent[0]["status"] == 200 and json.loads(sent[1]["body"]) == {"status": "ok", "queue": {"depth": 3}}
    assert metrics.requests[("/health", 200)] == 1
    with pytest.raises(AssertionError, match="/v1/score"):   # anything else goes to the app
        asyncio.run(guard({"type": "http", "path": "/v1/score", "method": "GET", "headers": []}, None, send))


def test_work_runs_on_the_loop_in_a_thread_or_on_its_model_lane_by_its_size(make_client):
    import asyncio
    import threading

    from paraspeechclap.serve.work import INLINE_SAMPLES, SMALL_DECODE

    state = make_client().app.state.serve

    async def main():
        with request_work(state, 100.0) as work:
            where = [await work.run(lambda: threading.current_thread().name, samples)
                     for samples in (INLINE_SAMPLES, SMALL_DECODE, SMALL_DECODE + 1)]
        with request_work(state, 30.0) as work:
            where.append(await work.run(lambda: threading.current_thread().name, SMALL_DECODE + 1))
        return threading.current_thread().name, where

    loop, (inline, pooled, niced, lane) = asyncio.run(main())
    assert inline == loop and pooled != loop and not pooled.startswith("paraspeechclap-model")
    assert lane == "paraspeechclap-model-bulk"        # a 30 s request's large decode: on the bulk lane ...
    assert niced.startswith("paraspeechclap-model-niced")   # ... a 100 s one's on its niced thread (--nice-cost 60)
    assert state.batcher.cost_in_flight == 0


def test_a_large_decode_on_a_lane_stops_once_its_request_is_over(make_client):
    import asyncio

    from paraspeechclap.serve.errors import ApiError
    from paraspeechclap.serve.work import SMALL_DECODE

    state = make_client().app.state.serve

    async def main():
        with request_work(state, 100.0) as work:
            work.stop_if_over()                  # running: no stop
            work.over = True                     # its request ended: a large decode stops after its first block
            with pytest.raises(ApiError) as caught:
                await work.decode(wav_bytes(45.0), 60.0, samples=SMALL_DECODE + 1)
            assert caught.value.status == 504
            work.over = False
            wave, _ = await work.decode(wav_bytes(45.0), 60.0, samples=SMALL_DECODE + 1)
            assert len(wave) == 45 * 16000
        with pytest.raises(ApiError):            # closed (a 504 answered, or its client gone): stops
            work.stop_if_over()

    asyncio.run(main())


def test_values_are_counted_by_their_separators_and_openers_in_one_piece_or_many():
    from paraspeechclap.serve.body import COUNT_PIECE, count_values

    def naive(raw):
        return sum(bytes(raw).count(c) for c in (b",", b":", b"[", b"{"))

    body = json.dumps({"captions": ["a, b: [c]", "d"], "x": [{"y": 1}, 2]}).encode()
    big = b'{"a": [' + b"1," * (COUNT_PIECE // 2 + 7) + b"1]}"       # over one piece
    for raw in (b"", b"1", body, bytearray(body), big, bytearray(big)):
        assert count_values(raw) == naive(raw)


def _mapped(raw: bytes, monkeypatch):
    """``raw`` in the buffer the service reads a body over ``MAPPED_BODY`` into (the threshold lowered to 0)."""
    import mmap

    from paraspeechclap.serve import body

    monkeypatch.setattr(body, "MAPPED_BODY", 0)
    buffer = body.body_buffer(len(raw))
    assert isinstance(buffer, mmap.mmap)
    buffer[:] = raw
    return buffer


def test_a_large_body_read_into_an_mmap_parses_as_its_bytes_do(monkeypatch):
    """Large bodies are read into an anonymous mmap and searched piece by piece: strings longer than a piece, a
    backslash past the first piece and a body with no long string parse as they do from bytes."""
    from paraspeechclap.serve.body import COUNT_PIECE, _parse_body, count_values
    from paraspeechclap.serve.config import ServeConfig

    long = "QUJD" * (COUNT_PIECE // 2 + 3)                       # 2 pieces and more
    escaped = "x" * (COUNT_PIECE + 11) + "\\\\" + "y" * 100       # its backslash in the second piece: kept
    bodies = [{"audio": {"base64": long}, "captions": ["a \" quote"], "more": [escaped, long]},
              {"values": list(range(60_000)), "text": "z\n" * 100_000}]   # large, no long string without escapes
    for body in bodies:
        raw = json.dumps(body).encode()
        mapped = _mapped(raw, monkeypatch)
        assert count_values(mapped) == count_values(raw)
        expected, got = _parse_body(raw, ServeConfig()), _parse_body(mapped, ServeConfig())
        shown = lambda value: bytes(value).decode()  # noqa: E731 - cut strings come back as views of the body
        assert json.dumps(got, default=shown) == json.dumps(expected, default=shown)
        assert got.get("more", [escaped])[0] == escaped
