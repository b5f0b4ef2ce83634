"""The real command: ``python -m paraspeechclap serve`` in a subprocess answers on the port it was given."""
from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time


def test_serve_command_starts_and_answers(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PARASPEECHCLAP_TOKEN": "t0k"}
    process = subprocess.Popen([sys.executable, "-m", "paraspeechclap", "serve", "--model", "mini", "--port", str(port),
                                "--device", "cpu", "--log-level", "warning"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    try:
        deadline, health = time.time() + 120, None
        while health is None:
            assert process.poll() is None, process.stdout.read().decode(errors="replace")
            assert time.time() < deadline, "the server did not answer within 120 s"
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/health")
                health = json.loads(connection.getresponse().read())
            except OSError:
                time.sleep(0.3)
        assert health["model"] == "mini" and health["auth"] is True and health["limits"]["paths"] is False
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/metrics")
        assert connection.getresponse().status == 401   # the token came from PARASPEECHCLAP_TOKEN
    finally:
        process.terminate()
        process.wait(30)
    assert process.returncode in (0, -15)
    bad = subprocess.run([sys.executable, "-m", "paraspeechclap", "serve", "--index", str(tmp_path / "none")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "--index" in bad.stderr


def test_an_index_of_another_model_is_refused_at_start(tmp_path):
    """An index whose embeddings came from another model identity (here: mini at another precision) stops `serve`
    before it listens, naming both identities and widths."""
    import pytest

    pytest.importorskip("duckdb", reason="the corpus extra (duckdb, usearch) is not installed")
    from serve_helpers import wav_bytes

    from paraspeechclap.annotate import annotate
    from paraspeechclap.index import Index

    corpus = tmp_path / "audio"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"clip{i}.wav").write_bytes(wav_bytes(1.0, 120 + 60 * i))
    annotate(corpus, tmp_path / "ann", workers=1, shard_size=8, device="cpu", precision="fp32")
    index = Index.build(tmp_path / "ann")
    held = index.meta["model"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    other = "bf16" if held.get("precision") != "bf16" else "fp32"
    run = subprocess.run([sys.executable, "-m", "paraspeechclap", "serve", "--model", "mini", "--index",
                          str(index.folder), "--precision", other, "--device", "cpu", "--port", "1"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr[-2000:]
    for fact in (held["identity"], f"dimension {index.meta['dim']}", "the model given", f"--precision {held['precision']}"):
        assert fact in run.stderr, run.stderr[-2000:]
