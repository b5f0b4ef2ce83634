"""scripts/espeak_sweeps.py: pitch sweeps of the corpus' training voices as order groups for stage 2 of `mini`."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from repo_scripts import load_script

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (run scripts/install_synth_deps.sh)")


@pytest.fixture(scope="module")
def sweeps():
    return load_script("espeak_sweeps")


def _corpus(root: Path) -> Path:
    rows = [
        {"engine": "espeak", "espeak_voice": "en-us+m1", "gender": "male", "held_out_voice": False},
        {"engine": "espeak", "espeak_voice": "en-gb-x-rp+m1", "gender": "male", "held_out_voice": False},
        {"engine": "espeak", "espeak_voice": "en-us+psc_w_m2", "gender": "male", "held_out_voice": False},  # whisper
        {"engine": "espeak", "espeak_voice": "en-us+m7", "gender": "male", "held_out_voice": True},  # test voice
        {"engine": "espeak", "espeak_voice": "en-us+f1", "gender": "female", "held_out_voice": False},
        {"engine": "mbrola", "espeak_voice": None, "voice": "mb-us2", "gender": "male", "held_out_voice": False},
    ]
    root.mkdir(parents=True)
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    return root


def test_training_voices_are_plain_espeak_variants_never_held_out(sweeps, tmp_path, capsys):
    assert sweeps.training_voices(_corpus(tmp_path / "corpus")) == [("f1", "female"), ("m1", "male")]
    assert "train.jsonl:7: not a JSON object" in capsys.readouterr().err  # a bad line is reported with its number


@needs_espeak
def test_sweep_writes_groups_ordered_by_measured_pitch(sweeps, tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    out = tmp_path / "sweeps"
    assert sweeps.main(["--corpus", str(corpus), "--out", str(out), "--sentences", "1"]) == 0
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert {r["voice"] for r in rows} == {"en-us+m1"}  # males only by default
    assert len(rows) >= 5 and all(Path(r["audio_path"]).is_file() and r["text_description"] for r in rows)
    by_param = sorted(rows, key=lambda r: r["pitch_param"])
    f0 = [r["f0_median_hz"] for r in by_param]
    assert f0 == sorted(f0) and f0[-1] > 1.5 * f0[0]  # raised step by step, over more than 7 semitones
    assert [r["shift_cents"] for r in by_param] == sorted(r["shift_cents"] for r in rows)
    with pytest.raises(SystemExit, match="exists"):  # never writes into an existing folder
        sweeps.main(["--corpus", str(corpus), "--out", str(out)])
