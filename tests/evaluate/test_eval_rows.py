"""Evaluation reads its rows through data.rows: bad rows are skipped with FILE:LINE, suite files' extra keys."""
import json

import pytest

from paraspeechclap.evaluate.suites import SuiteError, load_rows, resolve_suite


def test_bad_manifest_rows_are_skipped_with_their_line(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_bytes(b'{"id": "a", "path": "a.wav", "classification_tag": "deep"}\n'
                  b'{oops\n'
                  b'\n'
                  b'{"id": "b", "classification_tag": "calm"}\n'
                  b'\xff\n'
                  b'{"id": "c", "relative_audio_path": "c.wav", "source": "s", "classification_tag": 3}\n')
    suite = resolve_suite(str(m), ["deep", "calm", "3"])
    (task,) = suite.tasks
    got = load_rows(task)
    assert got.n_total == 5
    assert [(i.id, i.path, i.label) for i in got.items] == [("a", str(tmp_path / "a.wav"), "deep"),
                                                           ("c", str(tmp_path / "s" / "c.wav"), "3")]
    reasons = [s["reason"] for s in got.skipped]
    assert reasons[0].startswith(f"{m}:2: not valid JSON")
    assert reasons[1].startswith(f"{m}:4: no audio column") and got.skipped[1]["id"] == "b"
    assert reasons[2] == f"{m}:5: not valid UTF-8 (byte 0xff at column 1)"


def test_suite_file_template_audio_root_and_the_older_synth_form(tmp_path):
    (tmp_path / "sets").mkdir()
    (tmp_path / "sets" / "pitch.jsonl").write_text(json.dumps({"relative_audio_path": "a.wav", "source": "s",
                                                               "classification_tag": "deep",
                                                               "text_description": ["x"]}) + "\n")
    new = {"name": "synth", "description": "a corpus", "template": "A {} voice.", "audio_root": "audio",
           "retrieval": {"test": {"manifest": "sets/pitch.jsonl"}},
           "classification": {"pitch": {"manifest": "sets/pitch.jsonl", "candidates": ["deep", "high"],
                                        "counts": {"deep": 1}}}}
    path = tmp_path / "suites.json"
    path.write_text(json.dumps(new))
    suite = resolve_suite(str(path))
    assert suite.template == "A {} voice." and [t.name for t in suite.tasks] == ["test", "pitch"]
    assert all(t.source.audio_root == str(tmp_path / "audio") for t in suite.tasks)
    assert load_rows(suite.tasks[1]).items[0].path == str(tmp_path / "audio" / "s" / "a.wav")
    old = {"template": "A {} voice.", "audio_root": "audio",
           "suites": {"pitch": {"candidates": ["deep", "high"], "manifest": "sets/pitch.jsonl", "counts": {"deep": 1}}}}
    path.write_text(json.dumps(old))
    suite = resolve_suite(str(path))
    assert [(t.name, t.kind, t.candidates) for t in suite.tasks] == [("pitch", "classification", ["deep", "high"])]
    assert suite.tasks[0].source.audio_root == str(tmp_path / "audio")
    path.write_text(json.dumps(dict(old, template="no placeholder")))
    with pytest.raises(SuiteError, match="template"):
        resolve_suite(str(path))
    path.write_text(json.dumps(dict(new, extra=1)))
    with pytest.raises(SuiteError, match=r"suites.json: field 'extra': unknown key \(expected evaluation-suite "
                                         r"version 1\)"):
        resolve_suite(str(path))
    path.write_text(json.dumps(dict(new, schema="paraspeechclap.evaluation-suite/2")))
    with pytest.raises(SuiteError, match=r"field 'schema': written as version 2, newer than .*version 1\)"):
        resolve_suite(str(path))
