"""Fixtures for the benchmark tests: the embedded `mini` model (fp32, loaded once) and a tiny benchmark of espeak-ng
clips with known adherence (a "good" system renders each prompt's pitch and rate, a "bad" one the opposite)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tts_helpers import OPPOSITE, PROMPTS, espeak_wav


@pytest.fixture(scope="session")
def mini():
    from paraspeechclap import ParaSpeechCLAP

    return ParaSpeechCLAP.from_pretrained("mini", device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def bench(tmp_path_factory) -> Path:
    """``prompts.jsonl`` (6 prompts, ids p0..p5) and ``good/``, ``bad/`` folders of ``<id>.wav`` clips."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    root = tmp_path_factory.mktemp("bench")
    rows = []
    for i, (caption, text, voice, pitch, wpm) in enumerate(PROMPTS):
        rows.append({"id": f"p{i}", "caption": caption, "transcript": text})
        espeak_wav(root / "good" / f"p{i}.wav", voice, text, pitch, wpm)
        espeak_wav(root / "bad" / f"p{i}.wav", OPPOSITE[voice], text, 100 - pitch, 365 - wpm)
    (root / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture
def tone():
    """``tone(path, seconds, level)``: a harmonic tone written as 16-bit WAV (for gate and input tests)."""
    import soundfile as sf

    def make(path: Path, seconds: float = 1.0, level: float = 0.3, rate: int = 16000) -> Path:
        t = np.arange(int(seconds * rate)) / rate
        wave = level * np.sin(2 * np.pi * 140 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, wave.astype(np.float32), rate, subtype="PCM_16")
        return path

    return make
