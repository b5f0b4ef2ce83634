"""Quality gates on made-up signals: each gate fires on its defect and nowhere else."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from paraspeechclap.ttseval.gates import GATES_FILE, GateTable, apply, measure, packaged_gates

RATE = 16000


def speech_like(seconds: float = 2.0, level: float = 0.3, seed: int = 0) -> np.ndarray:
    """A voiced buzz with syllable-rate bursts (4 per second) and short gaps."""
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = np.clip(np.sin(2 * np.pi * 2 * t), 0, None) ** 0.5
    wave = level * envelope * np.sign(np.sin(2 * np.pi * 130 * t)) * 0.5
    return (wave + 1e-4 * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


TRANSCRIPT = "The old farmer painted the red door."  # 9 syllables


def flags(wave: np.ndarray, transcript: str | None = TRANSCRIPT) -> list[str]:
    return apply(np.asarray(wave, np.float32)[:, None], RATE, packaged_gates(), transcript).flags


def test_a_clean_clip_passes():
    assert flags(speech_like()) == []


def test_each_gate_fires_on_its_defect():
    clean = speech_like()
    assert flags(np.zeros(RATE, np.float32)) == ["silence", "duration"]
    assert "clipping" in flags(np.clip(clean * 10, -1, 1))
    assert flags(clean + 0.05) == ["dc_offset"]
    noisy = clean + 0.1 * np.random.default_rng(1).standard_normal(len(clean)).astype(np.float32)
    assert flags(noisy) == ["noise_floor"]
    assert flags(np.concatenate([clean] * 6)) == ["duration"]           # 9 syllables in 12 s
    assert flags(speech_like(1.0), transcript=TRANSCRIPT * 3) == ["duration"]  # 27 syllables in under a second
    assert flags(np.concatenate([clean] * 6), transcript=None) == []    # no transcript: no duration gate


def test_clipping_and_dc_take_the_worst_channel(tmp_path):
    clean = speech_like()
    stereo = np.stack([clean, np.clip(clean * 10, -1, 1)], axis=1)
    path = tmp_path / "s.wav"
    sf.write(path, stereo, RATE, subtype="FLOAT")
    result = measure(str(path), packaged_gates(), TRANSCRIPT)
    assert "clipping" in result.flags and result.measures["seconds"] == pytest.approx(2.0)


def test_unreadable_and_overlong_files(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEfmt nonsense")
    assert measure(str(bad), packaged_gates()).error.startswith("cannot be read")
    doc = json.loads(GATES_FILE.read_text())
    doc["max_seconds"] = 1
    path = tmp_path / "long.wav"
    sf.write(path, speech_like(2.0), RATE)
    assert measure(str(path), GateTable(doc)).flags == ["too_long"]


def test_the_table_is_versioned_and_validated():
    doc = json.loads(GATES_FILE.read_text())
    table = GateTable(doc)
    assert table.identity() == packaged_gates().identity() and table.identity().startswith("v1@")
    doc["gates"]["clipping"]["max_share"] = 0.01
    assert GateTable(doc).identity() != table.identity()
    with pytest.raises(ValueError, match="keys among"):
        GateTable({**doc, "gates": {"loudness": {}}})
