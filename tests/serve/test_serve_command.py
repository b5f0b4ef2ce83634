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
