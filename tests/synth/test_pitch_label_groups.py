"""scripts/pitch_label_groups.py: order groups of different synthetic clips by their gender-relative pitch labels."""
from __future__ import annotations

import json

import pytest
from repo_scripts import load_script


@pytest.fixture(scope="module")
def groups_script():
    return load_script("pitch_label_groups")


def _corpus(root, n_per_level=3):
    rows = []
    offsets = {"low": -4.5, "medium": 0.3, "high": 4.2}
    for level, offset in offsets.items():
        for k in range(n_per_level):
            rows.append({"source": "synth", "relative_audio_path": f"train/{level}{k}.wav", "gender": "male" if k % 2
                         else "female", "pitch_level": level, "pitch_offset_st": offset + 0.1 * k,
                         "held_out_voice": False, "text_description": ["A voice."]})
    rows.append({"source": "synth", "relative_audio_path": "train/w.wav", "pitch_level": None,
                 "pitch_offset_st": None, "held_out_voice": False})  # whispered: no pitch label
    rows.append({"source": "synth", "relative_audio_path": "train/h.wav", "pitch_level": "high",
                 "pitch_offset_st": 5.0, "held_out_voice": True})  # a held-out voice
    root.mkdir(parents=True)
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    return root


def test_groups_hold_one_clip_per_level_ordered_by_offset(groups_script, tmp_path, capsys):
    corpus = _corpus(tmp_path / "corpus")
    out = tmp_path / "groups"
    assert groups_script.main(["--corpus", str(corpus), "--out", str(out), "--groups", "5"]) == 0
    assert "train.jsonl:12: not a JSON object" in capsys.readouterr().err  # a bad line is reported with its number
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 9  # 3 groups: the levels run out before 5
    by_group: dict = {}
    for r in rows:
        by_group.setdefault(r["original"], []).append(r)
    assert len(by_group) == 3
    for members in by_group.values():
        assert [m["pitch_level"] for m in members] == ["low", "medium", "high"]
        assert [m["shift_cents"] for m in members] == sorted(m["shift_cents"] for m in members)
        assert all(m["shift_cents"] == round(100 * m["pitch_offset_st"], 1) for m in members)
    paths = [r["relative_audio_path"] for r in rows]
    assert len(set(paths)) == len(paths) and "train/w.wav" not in paths and "train/h.wav" not in paths
    # an existing output is never overwritten
    before = (out / "train.jsonl").read_bytes()
    assert groups_script.main(["--corpus", str(corpus), "--out", str(out)]) == 1
    assert (out / "train.jsonl").read_bytes() == before
