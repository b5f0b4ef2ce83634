"""The model in a process of its own: the same answers as in process, a killed child started again, a child that
dies with the server (SIGKILL included), and the child's work in Server-Timing."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from serve_helpers import b64, free_port, wav_bytes

from paraspeechclap.modelspec import ModelSpec

SPEC = ModelSpec("mini", precision="fp32")


@pytest.fixture(scope="module")
def fp32_mini():
    return SPEC.load()


@pytest.fixture(scope="module")
def clients(fp32_mini):
    """A client of the service with its model in a process of its own, and one without (same model, fp32)."""
    from fastapi.testclient import TestClient

    from paraspeechclap.serve.app import create_app
    from paraspeechclap.serve.config import ServeConfig

    remote = TestClient(create_app(fp32_mini, ServeConfig(), spec=SPEC), base_url="http://localhost")
    local = TestClient(create_app(fp32_mini, ServeConfig(model_process=False), spec=SPEC), base_url="http://localhost")
    with remote, local:
        yield remote, local


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:   # a zombie (exited, not yet reaped) is not alive
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_answers_are_the_in_process_answers(clients):
    remote, local = clients
    assert remote.get("/health").json()["model_process"]["alive"] is True
    assert local.get("/health").json()["model_process"] is None
    clip = b64(wav_bytes(1.5, 140.0))
    requests = [("/v1/score", {"audio": clip, "captions": ["a deep voice", "a high-pitched, fast voice"]}),
                ("/v1/classify", {"audio": clip, "candidates": ["whispered", "shouted", "calm"]}),
                ("/v1/embed", {"audio": [clip, b64(wav_bytes(2.0, 300.0))], "texts": ["a slow voice"]}),
                ("/v1/timeline", {"audio": b64(wav_bytes(4.0, 220.0)), "captions": ["a deep voice"]})]
    for path, body in requests:
        answers = [client.post(path, json=body) for client in (remote, local)]
        assert [a.status_code for a in answers] == [200, 200], (path, answers[0].text, answers[1].text)
        ours, theirs = (_numbers(a.json()) for a in answers)
        assert len(ours) == len(theirs) > 0
        np.testing.assert_allclose(ours, theirs, atol=1e-6, err_msg=path)


def _numbers(value) -> list[float]:
    """Every float in an answer, in order (provenance and names left out)."""
    if isinstance(value, dict):
        return [x for key, item in value.items() if key != "provenance" for x in _numbers(item)]
    if isinstance(value, list):
        return [x for item in value for x in _numbers(item)]
    return [float(value)] if isinstance(value, float) else []


def test_server_timing_counts_the_model_process(clients):
    remote, _ = clients
    answer = remote.post("/v1/score", json={"audio": b64(wav_bytes(1.5, 140.0)), "captions": ["a calm voice"]})
    phases = dict(part.split(";dur=") for part in answer.headers["server-timing"].replace(" ", "").split(","))
    assert float(phases["cpu"]) > 0.5   # ms: the forward pass, done in the child, is charged to the request


def test_killed_model_process_fails_its_request_and_is_started_again(fp32_mini):
    from fastapi.testclient import TestClient

    from paraspeechclap.serve.app import create_app
    from paraspeechclap.serve.config import ServeConfig

    body = {"audio": b64(wav_bytes(1.5, 140.0)), "captions": ["a deep voice"]}
    with TestClient(create_app(fp32_mini, ServeConfig(), spec=SPEC), base_url="http://localhost") as client:
        assert client.post("/v1/score", json=body).status_code == 200
        first = client.get("/health").json()["model_process"]
        os.kill(first["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(first["pid"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        lost = client.post("/v1/score", json=body)
        assert lost.status_code == 503 and lost.json()["code"] == "model_restarted", lost.text
        again = client.post("/v1/score", json=body)
        assert again.status_code == 200, (again.text, client.get("/health").json()["model_process"])
        now = client.get("/health").json()["model_process"]
        assert now["restarts"] == 1 and now["alive"] and now["pid"] != first["pid"]
    assert not _alive(now["pid"])   # closed with the app


def test_errors_in_the_child_reach_the_caller_and_unknown_operations_are_refused():
    from paraspeechclap.serve.modelproc import ModelProcess

    process = ModelProcess(SPEC)
    try:
        with pytest.raises(ValueError, match="not an operation of the model process"):
            process.call("load_state_dict", {})
        with pytest.raises(Exception, match="template"):
            process.call("classify_embeddings", np.zeros((1, 256), np.float32), ["a", "b"], "no slot here")
        assert process.call("embed_text", ["a deep voice"]).shape == (1, 256)
    finally:
        process.close()
    assert not process.alive()


def test_the_front_keeps_text_embeddings_and_asks_the_child_only_for_new_ones(fp32_mini):
    from paraspeechclap.serve.modelproc import ModelProcess, RemoteModel

    process = ModelProcess(SPEC)
    try:
        remote, calls = RemoteModel(fp32_mini, process), []
        ask = process.call
        process.call = lambda op, *args, **kwargs: calls.append((op, args)) or ask(op, *args, **kwargs)
        first = remote.embed_text(["a deep voice", "a high voice"])
        again = remote.embed_text(["a high voice", "a calm voice", "a deep voice"])
        assert [sorted(args[0]) for _, args in calls] == [["a deep voice", "a high voice"], ["a calm voice"]]
        expected = fp32_mini.embed_text(["a high voice", "a calm voice", "a deep voice"])
        assert np.allclose(again, expected, atol=1e-6) and np.allclose(first, expected[[2, 0]], atol=1e-6)
        with pytest.raises(ValueError, match="text 1 is empty"):   # checked here, numbered as the caller sent them
            remote.embed_text(["a deep voice", " "])
        assert remote.embed_text([]).shape == (0, 256)
    finally:
        process.close()


def test_a_niced_lane_is_as_nice_in_the_model_process():
    import threading

    from paraspeechclap.serve.batcher import lower_thread_priority
    from paraspeechclap.serve.modelproc import ModelProcess

    process = ModelProcess(SPEC)

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())   # the suite may itself run niced
    lower = min(19, base + 3)

    called, looked = threading.Event(), threading.Event()

    def niced_call():   # alive until the niceness is read: its connection (and its thread there) ends with it
        assert lower_thread_priority(lower)
        process.call("embed_text", ["a slow voice"])
        called.set()
        looked.wait(60)

    thread = threading.Thread(target=niced_call)
    try:
        thread.start()
        assert called.wait(60)
        process.call("embed_text", ["a fast voice"])   # this thread: not niced
        niceness = sorted(_thread_niceness(process.pid))
        assert lower in niceness and base in niceness, (base, niceness)
    finally:
        looked.set()
        thread.join(60)
        process.close()


def _thread_niceness(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/stat") as stat:
            out.append(int(stat.read().rsplit(")", 1)[1].split()[16]))
    return out


def test_a_model_that_does_not_load_is_an_error_naming_it():
    from paraspeechclap.serve.modelproc import ModelProcess

    with pytest.raises(RuntimeError, match="could not load /nonexistent/model"):
        ModelProcess(ModelSpec("/nonexistent/model"))


def test_the_model_process_dies_with_a_killed_server():
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "paraspeechclap", "serve", "--model", "mini", "--port", str(port),
                               "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        health = _wait_for_health(server, port)
        child = health["model_process"]["pid"]
        assert _alive(child)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the model process outlived its server by 5 s"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)


def _wait_for_health(server: subprocess.Popen, port: int) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stderr.read().decode(errors="replace")[-2000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                return json.loads(answer.read())
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the server did not answer /health within 120 s")
