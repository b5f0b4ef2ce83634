"""Suites: the paper's class lists, manifests in several formats, suite JSON and save_to_disk datasets."""
import json

import pandas as pd
import pytest

from paraspeechclap.evaluate.runner import prepare_suite
from paraspeechclap.evaluate.suites import (INTRINSIC_ATTRIBUTES, SITUATIONAL_CLASSES, SuiteError, builtin_suites,
                                            load_rows, resolve_suite)

from eval_helpers import make_eval_datasets, write_manifest


def test_paper_suite_has_the_papers_tasks_and_class_lists():
    suite = builtin_suites()["paper"]
    kinds = {t.name: (t.kind, t.source.dataset, t.source.split) for t in suite.tasks}
    assert kinds["situational"] == ("retrieval", "ajd12342/paraspeechclap-eval-situational", "test")
    assert kinds["intrinsic"] == ("retrieval", "ajd12342/paraspeechclap-eval-intrinsic", "test")
    assert kinds["combined"] == ("retrieval", "ajd12342/paraspeechclap-eval-combined", "test")
    classification = {t.name: t for t in suite.tasks if t.kind == "classification"}
    assert set(classification) == {"intrinsic-pitch", "intrinsic-texture", "intrinsic-volume", "intrinsic-clarity",
                                   "intrinsic-rhythm", "situational-classes"}
    assert classification["intrinsic-pitch"].candidates == ["shrill", "nasal", "deep"]
    assert classification["intrinsic-texture"].candidates == ["silky", "husky", "raspy", "guttural", "vocal-fry"]
    assert classification["intrinsic-volume"].candidates == ["booming", "authoritative", "loud", "hushed", "soft"]
    assert classification["intrinsic-clarity"].candidates == ["crisp", "slurred", "lisp", "stammering"]
    assert classification["intrinsic-rhythm"].candidates == ["flowing", "punctuated", "hesitant", "singsong", "monotonous"]
    assert classification["intrinsic-rhythm"].source.split == "classification_rhythm"
    assert len(SITUATIONAL_CLASSES) == 21 and len(set(SITUATIONAL_CLASSES)) == 21
    assert classification["situational-classes"].candidates == SITUATIONAL_CLASSES
    assert classification["situational-classes"].label_column == "classification_tag"
    assert sum(len(c) for c in INTRINSIC_ATTRIBUTES.values()) == 22


def test_manifest_formats_and_path_rules(tmp_path):
    rows = [{"source": "a", "relative_audio_path": "x/1.wav", "text_description": ["first", "second"],
             "classification_tag": "deep"},
            {"audio_path": "rel/2.wav", "text_description": "  ", "classification_tag": "calm"},
            {"audio_path": str(tmp_path / "abs.wav"), "text_description": "third", "classification_tag": ""}]
    jsonl = write_manifest(tmp_path / "m.jsonl", rows)
    parquet = tmp_path / "m.parquet"
    pd.DataFrame([dict(r, text_description=[r["text_description"]] if isinstance(r["text_description"], str)
                       else r["text_description"]) for r in rows]).to_parquet(parquet)  # list captions (numpy arrays)
    for manifest in (jsonl, parquet):
        suite = resolve_suite(str(manifest), ["deep", "calm"])
        retrieval, classification = suite.tasks
        got = load_rows(retrieval, audio_root=str(tmp_path / "root"))
        assert got.n_total == 3
        assert [i.caption for i in got.items] == ["first", "third"]  # list -> first element; blank skipped
        assert got.items[0].path == str(tmp_path / "root" / "a" / "x" / "1.wav")
        assert got.items[1].path == str(tmp_path / "abs.wav")
        assert got.skipped[0]["reason"] == "blank or missing text_description"
        labels = load_rows(classification)  # no audio root: relative paths resolve from the manifest folder
        assert [i.label for i in labels.items] == ["deep", "calm"]
        assert labels.items[1].path == str(tmp_path / "rel" / "2.wav")
        assert labels.items[0].id == "a/x/1.wav"
    csv = tmp_path / "m.csv"
    csv.write_text("id,source,relative_audio_path,classification_tag\nu1,s,1.wav,deep\nu2,s,2.wav,\n")
    suite = resolve_suite(str(csv))
    assert [t.kind for t in suite.tasks] == ["classification"]
    got = load_rows(suite.tasks[0], audio_root="/r")
    assert [(i.id, i.label) for i in got.items] == [("u1", "deep")] and got.n_total == 2


def test_suite_json_and_errors(tmp_path):
    write_manifest(tmp_path / "sets" / "pitch.jsonl", [{"relative_audio_path": "a.wav", "classification_tag": "deep"}])
    spec = {"name": "mine",
            "retrieval": {"situational": "sets/pitch.jsonl"},
            "classification": [{"name": "pitch", "group": "intrinsic", "candidates": ["deep", "shrill"],
                                "manifest": "sets/pitch.jsonl"}]}
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(spec))
    suite = resolve_suite(str(path))
    assert suite.name == "mine"
    assert [(t.name, t.kind, t.group) for t in suite.tasks] == [("situational", "retrieval", "situational"),
                                                                 ("pitch", "classification", "intrinsic")]
    assert suite.tasks[1].source.manifest == str(tmp_path / "sets" / "pitch.jsonl")

    path.write_text(json.dumps({"classification": {"pitch": {"manifest": "sets/pitch.jsonl"}}}))
    with pytest.raises(SuiteError, match="candidates"):
        resolve_suite(str(path))
    path.write_text(json.dumps({"retrieval": {"x": {"manifest": "a", "dataset": "b"}}}))
    with pytest.raises(SuiteError, match="exactly one"):
        resolve_suite(str(path))
    with pytest.raises(SuiteError, match="not a built-in suite"):
        resolve_suite("no-such-suite")
    with pytest.raises(SuiteError, match="exactly one classification task"):
        resolve_suite("paper", ["a", "b"])
    # retrieval on a manifest without captions: the task names the missing column
    suite = resolve_suite(str(path.with_name("sets") / "pitch.jsonl"))
    assert [t.kind for t in suite.tasks] == ["classification"]


def test_builtin_suite_reads_save_to_disk_copies(tmp_path):
    data = make_eval_datasets(tmp_path)
    suite = builtin_suites()["paper"]
    prepared = prepare_suite(suite, audio_root=str(data["root"]), data_dir=str(data["data_dir"]))
    by_name = {p.task.name: p for p in prepared}
    assert [i.caption for i in by_name["intrinsic"].rows.items] == ["A deep voice.", "A shrill voice.",
                                                                   "A nasal voice.", "A deep voice."]
    assert [i.label for i in by_name["intrinsic-texture"].rows.items] == ["silky", "husky", "raspy"]
    assert by_name["situational-classes"].candidates == SITUATIONAL_CLASSES
    assert by_name["combined"].rows.items[0].path == str(data["root"] / "vox" / "c22.wav")
    # --max-items takes the first rows
    small = prepare_suite(builtin_suites()["situational"], audio_root=str(data["root"]),
                          data_dir=str(data["data_dir"]), max_items=2)
    assert all(len(p.rows.items) == 2 for p in small)


def test_dataset_errors_are_clear(tmp_path):
    data = make_eval_datasets(tmp_path)
    with pytest.raises(SuiteError, match="audio-root"):
        prepare_suite(builtin_suites()["combined"], data_dir=str(data["data_dir"]))
    task = builtin_suites()["paper"].tasks[3]
    task.source.split = "classification_nope"
    with pytest.raises(SuiteError, match="no split 'classification_nope'"):
        load_rows(task, audio_root=str(data["root"]), data_dir=str(data["data_dir"]))
    # a gold label outside the candidates is caught for every failing task at once
    suite = builtin_suites()["intrinsic"]
    for task in suite.tasks:
        if task.kind == "classification":
            task.candidates = ["only-this"]
    with pytest.raises(SuiteError) as info:
        prepare_suite(suite, audio_root=str(data["root"]), data_dir=str(data["data_dir"]))
    assert str(info.value).count("not among the candidates") == 5
