"""The contract machinery: stamps, the promised errors (file, field, expected version), upgrades, import weight."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from paraspeechclap import schemas
from paraspeechclap.schemas import SchemaError


def test_imports_without_torch_and_the_cli_without_pydantic():
    code = ("import sys; from paraspeechclap import schemas; schemas.all_contracts(); "
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))")
    subprocess.run([sys.executable, "-c", code], check=True)
    code = "import sys, paraspeechclap.cli; assert 'pydantic' not in sys.modules"  # rows check with it when read
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_contract_declares_its_upgrades_and_a_json_schema():
    contracts = schemas.all_contracts()
    assert {"manifest-row", "synth-row", "evaluation-suite", "evaluation-metrics", "attribute-table",
            "annotation-manifest", "annotation-shard", "rerank-selection", "checkpoint-complete", "run-config",
            "saved-model-config"} <= set(contracts)
    for kind, c in contracts.items():
        assert set(c.upgrades) == set(range(c.oldest, c.version)), kind
        assert c.model.model_json_schema()["type"] == "object"


def test_write_stamps_and_read_gives_it_back(tmp_path):
    doc = {"classification": {"pitch": {"manifest": "p.jsonl", "candidates": ["deep", "high"]}}}
    path = schemas.write(tmp_path / "suite.json", doc, "evaluation-suite")
    raw = json.loads(path.read_text())
    assert raw["schema"] == "paraspeechclap.evaluation-suite/1" and raw["classification"] == doc["classification"]
    back = schemas.read(path, "evaluation-suite")
    assert back["classification"]["pitch"]["candidates"] == ["deep", "high"] and back["retrieval"] == {}


def test_missing_field_names_file_field_and_version(tmp_path):
    path = tmp_path / "table.json"
    path.write_text(json.dumps({"attributes": {"pitch": {"neutral": []}}}))
    with pytest.raises(SchemaError) as info:
        schemas.read(path, "attribute-table")
    assert str(info.value) == (f"{path}: field 'attributes.pitch.classes': is missing "
                               "(expected attribute-table version 2)")
    assert (info.value.source, info.value.field, info.value.version) == (str(path), "attributes.pitch.classes", 2)


def test_newer_version_is_refused_with_the_expected_version(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"schema": "paraspeechclap.evaluation-metrics/7"}))
    with pytest.raises(SchemaError, match=r"metrics.json: field 'schema': written as version 7, newer than this "
                                          r"paraspeechclap reads .*\(expected evaluation-metrics version 1\)"):
        schemas.read(path, "evaluation-metrics")


def test_wrong_kind_type_error_and_unknown_key():
    with pytest.raises(SchemaError, match=r"x.json: field 'schema': this is a 'rerank-selection' file, not "
                                          r"evaluation-suite \(expected evaluation-suite version 1\)"):
        schemas.validate({"schema": "paraspeechclap.rerank-selection/1"}, "evaluation-suite", "x.json")
    with pytest.raises(SchemaError, match=r"m.jsonl:3: field 'duration': expected a valid number, got '1.5' "):
        schemas.check({"path": "a.wav", "duration": "1.5"}, "manifest-row", "m.jsonl:3")
    with pytest.raises(SchemaError, match=r"s.json: field 'retrieval.t.manfest': unknown key"):
        schemas.validate({"retrieval": {"t": {"manfest": "a.jsonl"}}}, "evaluation-suite", "s.json")
    with pytest.raises(SchemaError, match=r"field 'classification.pitch.candidates': is missing"):
        schemas.validate({"classification": {"pitch": {"manifest": "a.jsonl"}}}, "evaluation-suite", "s.json")


def test_unstamped_files_are_version_0_and_upgraded():
    old_suite = {"template": "A {} voice.", "suites": {"pitch": {"manifest": "p.jsonl", "candidates": ["a", "b"]}}}
    assert schemas.validate(old_suite, "evaluation-suite")["classification"]["pitch"]["candidates"] == ["a", "b"]
    # what calibrate wrote before contracts: thresholds for every attribute, none of them calibrated
    old_table = {"family": "mini", "template": "A {} style.", "default_threshold": "chance",
                 "calibration": "thresholds calibrated on x/suites.json", "match": {},
                 "attributes": {"pitch": {"classes": ["deep", "high"], "neutral": [], "threshold": 0.67},
                                "rate": {"classes": ["slow", "fast"], "neutral": [], "threshold": 0.81}},
                 "calibration_report": {"rate": {"threshold": 0.81, "precision": 0.93, "coverage": 0.5, "clips": 40},
                                        "pitch": None}}
    table = schemas.validate(old_table, "attribute-table")
    assert table["calibration"]["status"] == "partly calibrated"
    assert table["attributes"]["rate"]["calibration"]["precision"] == 0.93
    assert table["attributes"]["pitch"]["calibration"] is None and table["attributes"]["pitch"]["threshold"] == 0.67
    nothing = dict(old_table, calibration_report={"pitch": None, "rate": None})
    assert schemas.validate(nothing, "attribute-table")["calibration"]["status"] == "uncalibrated"
    assert schemas.validate({"step": 3, "time": 1.0}, "checkpoint-complete")["seq"] == -1


def test_a_table_cannot_claim_a_calibration_it_does_not_have():
    doc = {"schema": "paraspeechclap.attribute-table/1",
           "attributes": {"pitch": {"classes": ["deep", "high"], "threshold": 0.7}},
           "calibration": {"status": "calibrated"}}
    with pytest.raises(SchemaError, match=r"calibration.status 'calibrated' does not match the attributes "
                                          r"\('uncalibrated'"):
        schemas.validate(doc, "attribute-table", "t.json")
    # version 0 had no status: it is derived from the attributes, whatever the note said
    assert schemas.validate({k: v for k, v in doc.items() if k != "schema"} | {"calibration": "calibrated!"},
                            "attribute-table")["calibration"]["status"] == "uncalibrated"


def test_rows_extending_manifest_rows_are_read_as_manifest_rows():
    schemas.check({"schema": "paraspeechclap.synth-row/1", "relative_audio_path": "a.wav"}, "manifest-row")
    with pytest.raises(SchemaError, match=r"written as version 2, .*\(expected synth-row version 1\)"):
        schemas.check({"schema": "paraspeechclap.synth-row/2", "path": "a.wav"}, "manifest-row", "m.jsonl:1")
    schemas.check({"schema": "my own column", "path": "a.wav"}, "manifest-row")  # not a stamp: someone's column


def test_the_command_lists_and_checks(tmp_path, capsys):
    from paraspeechclap.schemas.__main__ import main

    assert main([]) == 0 and "attribute-table" in capsys.readouterr().out
    good = schemas.write(tmp_path / "ok.json", {"step": 1, "seq": 0}, "checkpoint-complete")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"path": "a.wav"}) + "\n" + json.dumps({"path": 5}) + "\n")
    assert main(["check", "checkpoint-complete", str(good)]) == 0
    assert main(["check", "manifest-row", str(rows)]) == 1
    assert f"{rows}:2: field 'path': expected a valid string, got 5" in capsys.readouterr().out


def test_saved_model_contract_has_the_config_fields():
    from dataclasses import fields

    from paraspeechclap.model import ParaSpeechCLAPConfig
    from paraspeechclap.schemas.saved_model import SavedModelConfig

    declared = set(SavedModelConfig.model_fields) - {"model_type", "format_version"}
    assert declared == {f.name for f in fields(ParaSpeechCLAPConfig)}
