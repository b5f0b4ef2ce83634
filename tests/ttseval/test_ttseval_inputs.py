"""Reading prompts and systems: the one row reader, every bad row reported with where it is."""
from __future__ import annotations

import json

import pytest

from paraspeechclap.ttseval.inputs import InputError, parse_system_spec, read_prompts, read_system


def test_prompts_from_jsonl_with_bad_rows(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join([
        json.dumps({"id": "a", "caption": "A deep voice.", "transcript": "Hello there.", "labels": {"pitch": "deep"}}),
        "{not json",
        json.dumps({"id": "b"}),
        json.dumps({"id": "a", "caption": "Again."}),
        json.dumps({"id": 7, "text_description": ["", "A fast talker."], "text": "Hi."}),
    ]) + "\n")
    prompts, problems = read_prompts(path)
    assert [(p.id, p.caption, p.transcript) for p in prompts] == [("a", "A deep voice.", "Hello there."),
                                                                   ("7", "A fast talker.", "Hi.")]
    assert prompts[0].labels == {"pitch": "deep"} and prompts[0].ref == f"{path}:1"
    assert [(p.kind, p.where) for p in problems] == [("bad_row", f"{path}:2"), ("bad_row", f"{path}:3"),
                                                     ("duplicate_id", f"{path}:4")]
    assert "caption" in problems[1].message


def test_prompts_from_csv_with_json_labels(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('id,caption,labels\nx,A slow man.,"[""slow"", ""male""]"\ny,A whisper.,\n')
    prompts, problems = read_prompts(path)
    assert problems == [] and prompts[0].labels == ["slow", "male"] and prompts[1].labels is None


def test_unusable_prompt_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_prompts(tmp_path / "none.jsonl")
    empty = tmp_path / "e.jsonl"
    empty.write_text(json.dumps({"id": "a"}) + "\n")
    with pytest.raises(InputError, match="no usable prompt rows"):
        read_prompts(empty)


def test_a_system_from_a_folder_or_a_manifest(tmp_path, tone):
    tone(tmp_path / "sys" / "a.wav")
    tone(tmp_path / "sys" / "sub" / "b.flac")
    tone(tmp_path / "sys" / "sub" / "a.wav")
    problems = []
    folder = read_system("s", tmp_path / "sys", problems)
    assert sorted(folder.clips) == ["a", "b"] and [p.kind for p in problems] == ["duplicate_id"]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"prompt_id": "a", "path": "sys/a.wav"}) + "\n"
                        + json.dumps({"path": "sys/sub/b.flac"}) + "\n")
    problems = []
    system = read_system("m", manifest, problems)
    assert system.clips == {"a": str(tmp_path / "sys" / "a.wav")}
    assert problems[0].kind == "bad_row" and problems[0].where == f"{manifest}:2"
    with pytest.raises(InputError, match="not found"):
        read_system("x", tmp_path / "missing", [])


def test_system_specs(tmp_path):
    assert parse_system_spec("base=out/a") == ("base", "out/a")
    assert parse_system_spec(str(tmp_path)) == (tmp_path.name, str(tmp_path))
    assert parse_system_spec("runs/b.jsonl") == ("b", "runs/b.jsonl")
    odd = tmp_path / "x=y"
    odd.mkdir()
    assert parse_system_spec(str(odd)) == ("x=y", str(odd))  # an existing path wins over NAME=PATH
