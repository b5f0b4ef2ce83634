"""Helpers for the rerank tests: a synthetic TTS output layout and a stub scorer model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def write_wav(path: Path, level: float, freq: float = 220.0, seconds: float = 0.5, sr: int = 16000) -> Path:
    """A float wav whose first sample is ``level`` (what the stub scores), then a 0.3 sine at ``freq``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.3 * np.sin(2 * np.pi * freq * t)
    wave[0] = level
    sf.write(path, wave.astype(np.float32), sr, subtype="FLOAT")
    return path


class StubModel:
    """Scores a file by its first sample: text rows are [1, 0], audio rows [a, sqrt(1 - a^2)].

    So cosine(caption, audio) is exactly the first sample written by :func:`write_wav`.
    Records the texts it was asked to embed; raises on files it cannot read.
    """

    def __init__(self):
        self.text_calls: list[list[str]] = []
        self.audio_calls = 0
        self.audio_items: list = []

    def embed_text(self, texts):
        self.text_calls.append(list(texts))
        return np.tile(np.array([[1.0, 0.0]], np.float32), (len(texts), 1))

    def embed_audio(self, audio, batch_size=8):
        self.audio_calls += 1
        items = audio if isinstance(audio, list) else [audio]
        self.audio_items += items
        rows = []
        for item in items:
            if isinstance(item, tuple):
                level = float(np.asarray(item[0]).reshape(-1)[0])
            else:
                level = float(sf.read(str(item), dtype="float32")[0].reshape(-1)[0])
            level = float(np.clip(level, -1, 1))
            rows.append([level, np.sqrt(1 - level**2)])
        return np.array(rows, np.float32)


@pytest.fixture
def stub_model() -> StubModel:
    return StubModel()


@pytest.fixture(name="write_wav")
def write_wav_fixture():
    """The :func:`write_wav` helper, as a fixture (test modules do not import conftest)."""
    return write_wav


# levels[k][i] = score of iteration k+1 for prompt i (layout fixture below)
LEVELS = [
    [0.10, 0.00, 0.30, 0.20],
    [0.50, 0.00, 0.90, 0.20],  # prompt 2's iter_2 file is deleted below
    [0.40, 0.00, 0.30, 0.20],
]
PROMPT_LINES = ["A deep male voice.", "   ", "A high-pitched voice talking fast.", "A whispered voice."]


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """iter_1..3, 4 prompt lines (line 1 blank), iter_2/audios/2.wav missing, WER in iter_1 and 2."""
    base = tmp_path / "tts"
    for k, levels in enumerate(LEVELS, start=1):
        for i, level in enumerate(levels):
            if PROMPT_LINES[i].strip() and not (k == 2 and i == 2):
                write_wav(base / f"iter_{k}" / "audios" / f"{i}.wav", level, freq=100.0 + 60 * k + 25 * i)
        if k < 3:
            wer = ["0.0", "", "0.5" if k == 1 else "0.1", "ERROR: not found"]
            (base / f"iter_{k}" / "wer_per_example.txt").write_text("\n".join(wer) + "\n")
            text = [f"text {k}.{i}" for i in range(4)]
            (base / f"iter_{k}" / "output_transcriptions.txt").write_text("\n".join(text) + "\n")
    (base / "iter_1" / "input_descriptions.txt").write_text("\n".join(PROMPT_LINES) + "\n")
    (base / "iter_1" / "input_texts.txt").write_text("hello\n\nworld\nbye\n")
    write_wav(base / "iter_3" / "audios" / "7.wav", 0.2)  # matches no prompt line
    return base


def start_reward_service(precision: str = "fp32"):
    """A real ``paraspeechclap serve --model mini`` on a free 127.0.0.1 port: (process, base URL) once it answers."""
    import http.client
    import os
    import socket
    import subprocess
    import sys
    import tempfile
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    env.pop("PARASPEECHCLAP_TOKEN", None)
    log = tempfile.TemporaryFile()  # a file, not a pipe nobody reads: the server can never block on its output
    process = subprocess.Popen([sys.executable, "-m", "paraspeechclap", "serve", "--model", "mini", "--port", str(port),
                                "--device", "cpu", "--precision", precision, "--log-level", "warning"], env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 180
    while True:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"paraspeechclap serve exited: {log.read().decode(errors='replace')}")
        if time.time() > deadline:
            process.kill()
            raise RuntimeError("paraspeechclap serve did not answer within 180 s")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.3)


@pytest.fixture(scope="session")
def reward_service():
    """The base URL of a real reward service (mini, fp32), one for the session (the TRL and veRL tests share it)."""
    process, url = start_reward_service()
    try:
        yield url
    finally:
        process.terminate()
        process.wait(30)
