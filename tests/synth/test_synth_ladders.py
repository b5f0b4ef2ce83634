"""scripts/synth_ladders.py: pitch ladders of the synthetic corpus' male training clips, one order group each."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from repo_scripts import load_script

pytest.importorskip("parselmouth", reason="praat-parselmouth is not installed")


def _corpus(root):
    t = np.arange(16000) / 16000
    rows = []
    specs = [("m0", "male", "low", False), ("m1", "male", "high", False), ("m2", "male", "medium", False),
             ("f0", "female", "low", False), ("w0", "male", None, False), ("h0", "male", "high", True)]
    for name, gender, level, held_out in specs:
        path = root / "audio" / "synth" / "train" / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.3 * np.sin(2 * np.pi * 120.0 * t)).astype(np.float32), 16000)
        rows.append({"source": "synth", "relative_audio_path": f"train/{name}.wav", "speaker": f"espeak:{name}",
                     "gender": gender, "pitch_level": level, "held_out_voice": held_out})
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "[1, 2]\n")
    return root


def test_ladders_of_male_training_clips_only(tmp_path, capsys):
    script = load_script("synth_ladders")
    corpus = _corpus(tmp_path / "corpus")
    out = tmp_path / "ladders"
    assert script.main(["--corpus", str(corpus), "--out", str(out), "--clips", "2", "--workers", "1"]) == 0
    assert "train.jsonl:7: not a JSON object" in capsys.readouterr().err  # a bad line is reported with its number
    picked = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(picked) == 2
    assert {p["path"].rsplit("/", 1)[1] for p in picked} <= {"m0.wav", "m1.wav", "m2.wav"}  # male, labelled, kept
    assert all(":" not in p["speaker"] for p in picked)  # speaker ids become folder names
    rungs = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert len(rungs) == 2 * 6
    by_group: dict = {}
    for r in rungs:
        by_group.setdefault(r["original"], []).append(r["shift_cents"])
    assert sorted(by_group) == sorted(f"{p['path']}#ladder" for p in picked)
    assert all(np.allclose(np.diff(sorted(c)), 200) for c in by_group.values())
    # the same call again writes nothing over what is there
    before = (out / "train.jsonl").read_bytes()
    assert script.main(["--corpus", str(corpus), "--out", str(out), "--clips", "2", "--workers", "1"]) == 1
    assert (out / "train.jsonl").read_bytes() == before
