"""scripts/real_speech.py --ladders and --augment (one loop): every training clip's ladder is one order group of its
own; a clip that cannot be read is reported by path and the rest are written."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from repo_scripts import load_script

pytest.importorskip("parselmouth", reason="praat-parselmouth is not installed")


def test_ladders_group_by_clip_and_skip_a_bad_one(tmp_path, capfd):
    real_speech = load_script("real_speech")
    t = np.arange(16000) / 16000
    rows = []
    for k, f0 in enumerate((120.0, 210.0)):
        path = tmp_path / "in" / f"clip{k}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), 16000)
        rows.append({"path": str(path), "speaker": f"s{k}", "gender": "male" if k == 0 else "female",
                     "language": "xx", "f0_median_hz": f0, "split": "train"})
    rows.append({**rows[0], "path": str(tmp_path / "in" / "missing.wav")})
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "ladder"
    out.mkdir()
    n = real_speech.write_training(manifest, out, "ladder", workers=1)
    written = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert n == len(written) == 2 * 6
    assert "missing.wav" in capfd.readouterr().err
    by_group: dict = {}
    for row in written:
        by_group.setdefault(row["original"], []).append(row)
        assert (out / "audio").resolve() in Path(row["audio_path"]).parents
    assert sorted(by_group) == sorted(f"{r['path']}#ladder" for r in rows[:2])
    for group in by_group.values():
        cents = sorted(r["shift_cents"] for r in group)
        assert np.allclose(np.diff(cents), 200) and len({r["method"] for r in group}) == 1


def test_augmented_versions_share_the_loop_and_skip_a_bad_clip(tmp_path, capfd):
    """--augment writes through the same loop: labelled versions grouped by their original, the bad clip reported."""
    real_speech = load_script("real_speech")
    t = np.arange(16000) / 16000
    path = tmp_path / "in" / "clip.wav"
    path.parent.mkdir()
    sf.write(path, (0.3 * np.sin(2 * np.pi * 130.0 * t)).astype(np.float32), 16000)
    good = {"path": str(path), "speaker": "s0", "gender": "male", "language": "xx", "f0_median_hz": 130.0,
            "split": "train"}
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in (good, {**good, "path": str(tmp_path / "gone.wav")})))
    out = tmp_path / "aug"
    out.mkdir()
    assert real_speech.write_training(manifest, out, "augment", workers=1, versions=3) == 3
    written = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert {r["original"] for r in written} == {str(path)} and all(r["source"] == "real" for r in written)
    assert all(Path(r["audio_path"]).is_file() for r in written)
    assert "gone.wav" in capfd.readouterr().err
