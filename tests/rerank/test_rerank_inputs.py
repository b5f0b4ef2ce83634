"""Layout and manifest readers: blank lines, missing files, optional WER/transcription files."""

from __future__ import annotations

import json

import pytest

from paraspeechclap.rerank import InputError, read_input, read_layout, read_manifest


def test_layout_keeps_line_numbers_as_prompt_indices(layout):
    data = read_layout(layout)
    assert data.kind == "layout"
    assert data.iterations == [1, 2, 3]
    assert data.num_lines == 4
    assert [p.index for p in data.prompts] == [0, 2, 3]  # line 1 is blank: skipped, no shift
    assert [p.caption for p in data.prompts] == [
        "A deep male voice.",
        "A high-pitched voice talking fast.",
        "A whispered voice.",
    ]
    assert data.prompts[1].output_stem == "2"
    assert any(":2: blank prompt line, prompt 1 skipped" in i for i in data.issues)


def test_layout_reports_missing_candidate_and_keeps_others(layout):
    data = read_layout(layout)
    prompt2 = data.prompts[1]
    assert [c.label for c in prompt2.candidates] == [1, 3]
    assert [c.index for c in prompt2.candidates] == [0, 2]  # index = iteration - 1, no shift
    assert prompt2.candidates[1].path == layout / "iter_3" / "audios" / "2.wav"
    assert any("iter_2/audios/2.wav: candidate file missing" in i for i in data.issues)
    assert any("7.wav" in i and "match no prompt line" in i for i in data.issues)


def test_layout_carries_optional_wer_and_transcriptions(layout):
    data = read_layout(layout)
    first = data.prompts[0].candidates
    assert first[0].columns == {"wer_text": "0.0", "wer": 0.0, "transcription": "text 1.0"}
    assert list(first[0].columns) == ["wer_text", "wer", "transcription"]  # the order of selection.csv's columns
    assert first[2].columns == {}  # iter_3 has neither file
    assert data.prompts[1].candidates[0].columns["wer"] == 0.5
    assert data.prompts[2].candidates[0].columns["wer"] is None  # "ERROR: not found"
    assert data.prompts[2].candidates[0].columns["wer_text"] == "ERROR: not found"
    assert data.per_prompt_files == {"wer_text": "wer_per_example.txt", "transcription": "output_transcriptions.txt"}
    assert [p.name for p in data.common_files] == ["input_texts.txt"]


def test_layout_without_wer_files_and_prompt_without_candidates(tmp_path, write_wav):
    base = tmp_path / "tts"
    write_wav(base / "iter_1" / "audios" / "0.wav", 0.5)
    write_wav(base / "iter_2" / "audios" / "0.wav", 0.6)
    (base / "iter_1" / "input_descriptions.txt").write_text("one\ntwo\n")
    data = read_input(base)
    assert [len(p.candidates) for p in data.prompts] == [2, 0]
    assert data.per_prompt_files == {}
    assert any("prompt 1: no candidate audio" in i for i in data.issues)


def test_layout_errors_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="no iter_<k> folders"):
        read_layout(tmp_path)
    (tmp_path / "iter_2").mkdir()
    with pytest.raises(InputError, match="iter_1 is missing"):
        read_layout(tmp_path)
    (tmp_path / "iter_1").mkdir()
    with pytest.raises(InputError, match="input_descriptions.txt: prompts file not found"):
        read_layout(tmp_path)


def test_layout_reports_gaps_in_iterations(tmp_path, write_wav):
    write_wav(tmp_path / "iter_1" / "audios" / "0.wav", 0.5)
    write_wav(tmp_path / "iter_3" / "audios" / "0.wav", 0.6)
    (tmp_path / "iter_1" / "input_descriptions.txt").write_text("one\n")
    data = read_layout(tmp_path)
    assert [c.label for c in data.prompts[0].candidates] == [1, 3]
    assert any("iteration folders missing: iter_2" in i for i in data.issues)


def test_manifest_rows_columns_and_problems(tmp_path, write_wav):
    a = write_wav(tmp_path / "wavs" / "a.wav", 0.1)
    b = write_wav(tmp_path / "wavs" / "b.wav", 0.2)
    rows = [
        {"id": "p1", "caption": "A deep voice.", "candidates": ["wavs/a.wav", str(b)], "wer": [0.1, "0.4"]},
        {"id": "p2", "caption": "A calm voice.", "candidates": ["wavs/a.wav", "wavs/gone.wav"], "wer": [1]},
        "not json",
        {"id": "p1", "caption": "duplicate", "candidates": []},
        {"caption": "", "candidates": []},
        {"id": "../x", "caption": "bad id", "candidates": []},
        {"caption": "no id", "candidates": ["wavs/b.wav"], "speaker": ["s1"], "score": [1.0]},
    ]
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:]) + "\n")
    data = read_input(manifest)
    assert data.kind == "manifest"
    assert [p.id for p in data.prompts] == ["p1", "p2", "6"]
    assert data.num_lines == 7
    p1 = data.prompts[0]
    assert [c.path for c in p1.candidates] == [a, b]
    assert [c.columns["wer"] for c in p1.candidates] == [0.1, 0.4]
    p2 = data.prompts[1]
    assert [c.index for c in p2.candidates] == [0]
    assert "wer" not in p2.candidates[0].columns  # wrong length: ignored
    assert data.prompts[2].candidates[0].columns == {"speaker": "s1"}
    issues = "\n".join(data.issues)
    for expected in ("gone.wav: file missing", "not valid JSON", "duplicate id 'p1'",
                     "'caption' missing or blank", "is not a plain file name", "column 'wer' has 1 values",
                     "column 'score' clashes with an output field"):
        assert expected in issues


def test_manifest_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_manifest(tmp_path / "none.jsonl")
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n")
    with pytest.raises(InputError, match="no rows"):
        read_manifest(empty)


def test_layout_line_that_is_not_utf8_is_reported_and_keeps_indices(tmp_path, write_wav):
    for i in range(3):
        write_wav(tmp_path / "iter_1" / "audios" / f"{i}.wav", 0.5)
    (tmp_path / "iter_1" / "input_descriptions.txt").write_bytes(
        b"\xef\xbb\xbfA deep voice.\r\nA caf\xe9 voice.\r\nA whispered voice.\r\n"
    )
    (tmp_path / "iter_1" / "wer_per_example.txt").write_bytes(b"0.1\n\xff\n0.3\n")
    data = read_layout(tmp_path)
    assert [(p.index, p.caption) for p in data.prompts] == [(0, "A deep voice."), (2, "A whispered voice.")]
    assert [p.candidates[0].columns["wer"] for p in data.prompts] == [0.1, 0.3]
    issues = "\n".join(data.issues)
    assert "input_descriptions.txt:2: not valid UTF-8 (byte 0xe9 at column 6)" in issues
    assert "wer_per_example.txt:2: not valid UTF-8 (byte 0xff" in issues
    assert "1.wav" in issues and "match no prompt line" in issues  # the skipped line's audio is reported


def test_manifest_is_streamed_and_ids_match_whole_and_case_insensitively(tmp_path, write_wav):
    write_wav(tmp_path / "a.wav", 0.1)
    rows = [{"id": "x", "caption": "c", "candidates": ["a.wav"]},
            {"id": "x\n", "caption": "c", "candidates": ["a.wav"]},
            {"id": "X", "caption": "c", "candidates": ["a.wav"]},
            {"id": 7, "caption": "c", "candidates": ["a.wav"]},
            {"id": True, "caption": "c", "candidates": ["a.wav"]},
            {"caption": "c"}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\r\n" for r in rows).encode())
    data = read_manifest(manifest)
    assert [p.id for p in data.prompts] == ["x", "7"]
    issues = "\n".join(data.issues)
    assert "m.jsonl:2: id 'x\\n' is not a plain file name" in issues
    assert "m.jsonl:3: duplicate id 'X' (as 'x', ids differing only in case clash)" in issues
    assert "m.jsonl:5: id True is not a plain file name" in issues
    assert "m.jsonl:6: 'candidates' (the list of audio paths) missing" in issues
    assert data.num_lines == 6


def test_plain_folder_needs_a_caption_and_lists_its_audio_files(tmp_path, write_wav):
    base = tmp_path / "cands"
    for name, level in [("b.WAV", 0.2), ("a.wav", 0.5), ("c.wav", 0.1)]:
        write_wav(base / name, level)
    (base / "notes.txt").write_text("not audio")
    (base / "sub").mkdir()
    with pytest.raises(InputError, match="--caption"):
        read_input(base)
    data = read_input(base, caption="  A calm voice. ")
    assert data.kind == "folder" and data.num_lines == 1
    [prompt] = data.prompts
    assert (prompt.id, prompt.caption, prompt.output_stem) == ("cands", "A calm voice.", "cands")
    assert [c.name for c in prompt.candidates] == ["a.wav", "b.WAV", "c.wav"]  # name order
    assert [c.index for c in prompt.candidates] == [0, 1, 2]
    assert any("2 entries that are not audio files ignored" in i and "notes.txt" in i for i in data.issues)
    with pytest.raises(InputError, match="non-empty"):
        read_input(base, caption=" ")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no audio files"):
        read_input(empty, caption="A calm voice.")
    odd = tmp_path / ".hidden"  # not a plain file name: the output is named 0<suffix>
    write_wav(odd / "x.wav", 0.3)
    assert read_input(odd, caption="A calm voice.").prompts[0].output_stem == "0"


def test_caption_is_refused_where_the_input_carries_its_own(layout, tmp_path, write_wav):
    with pytest.raises(InputError, match="input_descriptions.txt"):
        read_input(layout, caption="A calm voice.")
    write_wav(tmp_path / "a.wav", 0.2)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"caption": "x", "candidates": ["a.wav"]}) + "\n")
    with pytest.raises(InputError, match="caption per row"):
        read_input(manifest, caption="A calm voice.")


def test_candidates_carry_their_file_names(layout, tmp_path, write_wav):
    assert [c.name for c in read_layout(layout).prompts[1].candidates] == ["iter_1/audios/2.wav", "iter_3/audios/2.wav"]
    write_wav(tmp_path / "x" / "a.wav", 0.2)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"caption": "x", "candidates": ["x/a.wav", str(tmp_path / "x" / "a.wav")]}) + "\n")
    assert [c.name for c in read_manifest(manifest).prompts[0].candidates] == ["x/a.wav", str(tmp_path / "x" / "a.wav")]
