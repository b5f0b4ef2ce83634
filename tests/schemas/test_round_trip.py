"""The round-trip matrix: every writer's output in the contract rooms is read by every reader of it.

synth -> evaluate, calibrate, train (the dataset reader), annotate (its input reader); annotate -> its manifest and
shards meet their contracts; save_pretrained -> from_pretrained; evaluate -> the report readers; an attribute table
-> the annotate and serve readers; rerank -> its resume reader; a checkpoint's COMPLETE -> the checkpoint reader.
A newer version and a missing field give the promised error in each reader that takes a file from a user.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from paraspeechclap import schemas

FIXTURE_MODEL = ["--speech-model", "speech", "--text-model", "text", "--embedding-dim", "24"]
VOICES = ["espeak+m4", "espeak+f3", "espeak+m3", "espeak+f4"]  # m3/f4 are held out (test split only)


@pytest.fixture(scope="module", autouse=True)
def _offline():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """``paraspeechclap synth`` output: 16 clips, half of them in the test split (a handful of seconds of espeak)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (run scripts/install_synth_deps.sh)")
    pytest.importorskip("parselmouth", reason="praat-parselmouth is not installed")
    from paraspeechclap.synth.generate import generate_corpus

    out = tmp_path_factory.mktemp("synth")
    generate_corpus(out, num_clips=16, seed=11, workers=2, splits=(0.4, 0.1, 0.5), use_mbrola=False,
                    progress=False, voice_names=VOICES)
    return out


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _copy(corpus: Path, tmp_path: Path) -> Path:
    """A corpus copy whose files a test may change (the audio linked, not copied)."""
    out = tmp_path / "corpus"
    shutil.copytree(corpus, out, ignore=shutil.ignore_patterns("audio"))
    (out / "audio").symlink_to(corpus / "audio")
    return out


# ------------------------------------------------------------------------------------------------- synth ->
def test_synth_writes_stamped_files_that_meet_their_contracts(corpus):
    for name, kind in (("suites.json", "evaluation-suite"), ("verification.json", "synth-verification"),
                       ("calibration.json", "synth-voice-calibration"), ("synth_outputs.json", "ownership-record")):
        assert json.loads((corpus / name).read_text())["schema"].startswith(f"paraspeechclap.{kind}/"), name
        schemas.read(corpus / name, kind)
    for split in ("train", "validation", "test"):
        rows = _rows(corpus / f"{split}.jsonl")
        for number, row in enumerate(rows, 1):
            assert row["schema"] == "paraspeechclap.synth-row/1"
            schemas.check(row, "synth-row", f"{split}.jsonl:{number}")
    for row in _rows(corpus / "dropped.jsonl"):
        schemas.check(row, "synth-dropped-row")


def test_synth_to_evaluate(corpus, fixture_dir, tmp_path, capsys):
    from paraspeechclap.evaluate.report import read_metrics
    from paraspeechclap.evaluate.runner import prepare_suite
    from paraspeechclap.evaluate.suites import resolve_suite

    suites = schemas.read(corpus / "suites.json", "evaluation-suite")
    suite = resolve_suite(str(corpus / "suites.json"))
    prepared = {p.task.name: p for p in prepare_suite(suite)}
    assert set(prepared) == {"test", *suites["classification"]}
    assert len(prepared["test"].rows.items) == len(_rows(corpus / "test.jsonl"))
    for name, spec in suites["classification"].items():
        assert [i.label for i in prepared[name].rows.items] == [r["classification_tag"]
                                                                for r in _rows(corpus / spec["manifest"])]
    from paraspeechclap.cli import main

    report = tmp_path / "report"
    argv = ["evaluate", "--suite", str(corpus / "suites.json"), "--out", str(report), "--no-cache", "--no-plots",
            "--model", str(fixture_dir / "checkpoint.pth.tar"), "--device", "cpu", "--precision", "fp32", "--quiet",
            *[str(fixture_dir / a) if a in ("speech", "text") else a for a in FIXTURE_MODEL]]
    assert main(argv) == 0, capsys.readouterr().err
    metrics = read_metrics(report)  # evaluate -> the report reader
    assert metrics["schema"] == "paraspeechclap.evaluation-metrics/1" and metrics["status"] == "ok"
    assert metrics["tasks"]["test"]["n_scored"] == len(_rows(corpus / "test.jsonl"))
    assert schemas.read(report / "report_manifest.json", "report-manifest")["files"]["metrics.json"] > 0
    from paraspeechclap.evaluate.report import check_report_folder

    assert check_report_folder(report)  # its manifest, read back, lets the next run replace its own report


def test_synth_to_calibrate_reader(corpus):
    from paraspeechclap.annotate.attributes import AttributeTable
    from paraspeechclap.annotate.calibrate import suite_clips

    table = AttributeTable.from_file(Path(schemas.__file__).parents[1] / "models" / "mini" / "attributes.json")
    suites = schemas.read(corpus / "suites.json", "evaluation-suite")
    clips, why, skipped = suite_clips(corpus / "suites.json", table)
    assert not skipped
    for name, found in clips.items():
        spec = suites["classification"][name]
        negatives = _rows(corpus / spec["negatives"]) if spec.get("negatives") else []
        assert len(found.paths) == len(_rows(corpus / spec["manifest"])) + len(negatives)
        assert found.gold.count(None) == len(negatives) and all(Path(p).is_file() for p in found.paths)
    assert set(clips) | set(why) == {a.name for a in table.attributes}


def test_synth_to_calibrate_writes_a_table_annotate_reads(corpus, tmp_path, capsys):
    from paraspeechclap.annotate.attributes import AttributeTable
    from paraspeechclap.annotate.calibrate import main

    out = tmp_path / "table.json"
    code = main(["--suites", str(corpus / "suites.json"), "--model-precision", "fp32", "--precision", "0.5",
                 "--min-clips", "1", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    table = AttributeTable.from_file(out)
    calibrated = [a for a in table.attributes if a.calibration is not None]
    assert calibrated and table.calibration["status"] in ("calibrated", "partly calibrated")
    assert table.calibration["corpus"]["seed"] == 11 and "--precision 0.5" in table.calibration["command"]
    for a in calibrated:  # tagged by thresholds, or (calibrate's default --probe auto) by a probe where it gained
        taggable = [c for c in a.classes if c not in a.neutral]
        if a.probe is None:
            assert set(a.thresholds) | set(a.withheld) == set(taggable)
        else:
            assert a.probe["outcomes"] == taggable + ["none"] and not a.thresholds
            assert a.calibration["probe"]["chosen"] == a.probe["lambda"]
        assert a.calibration["clips"] >= a.calibration["tagged"] and "probe" in a.calibration


def test_calibrate_refuses_when_nothing_can_be_calibrated(corpus, tmp_path, capsys):
    from paraspeechclap.annotate.calibrate import main

    copy = _copy(corpus, tmp_path)
    doc = schemas.read(copy / "suites.json", "evaluation-suite")
    doc["classification"] = {f"other-{name}": spec for name, spec in doc["classification"].items()}
    schemas.write(copy / "suites.json", doc, "evaluation-suite")
    out = tmp_path / "table.json"
    assert main(["--suites", str(copy / "suites.json"), "--model-precision", "fp32", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "nothing could be calibrated" in err and "pitch: no classification task 'pitch'" in err
    assert not out.exists()


def test_calibrate_keeps_the_probe_of_an_attribute_it_cannot_calibrate(corpus, tmp_path, capsys):
    from paraspeechclap.annotate.attributes import MODELS_DIR, AttributeTable
    from paraspeechclap.annotate.calibrate import main

    shipped = AttributeTable.from_file(MODELS_DIR / "mini" / "attributes.json")
    assert shipped.by_name("range").probe is not None
    copy = _copy(corpus, tmp_path)
    doc = schemas.read(copy / "suites.json", "evaluation-suite")
    doc["classification"]["other-range"] = doc["classification"].pop("range")
    schemas.write(copy / "suites.json", doc, "evaluation-suite")
    out = tmp_path / "table.json"
    assert main(["--suites", str(copy / "suites.json"), "--model-precision", "fp32", "--precision", "0.5",
                 "--min-clips", "1", "--probe", "never", "--out", str(out)]) == 0, capsys.readouterr().err
    table = AttributeTable.from_file(out)
    assert table.by_name("range").probe == shipped.by_name("range").probe  # kept, as its thresholds are
    assert table.by_name("rate").probe is None and table.calibration["probe"] is None  # never: refitted without


def test_synth_to_train_dataset(corpus):
    from paraspeechclap.data.dataset import ParaSpeechCapsDataset
    from paraspeechclap.data.sources import load_source

    table = load_source(str(corpus / "train.jsonl"), audio_root=str(corpus / "audio"))
    assert len(table) == len(_rows(corpus / "train.jsonl")) > 0
    ds = ParaSpeechCapsDataset(table, audio_root=str(corpus / "audio"), train=False, crop_seconds=None,
                               tag_columns=["intrinsic_tags", "situational_tags"])
    item = ds[0]
    row = _rows(corpus / "train.jsonl")[0]
    assert "error" not in item, item
    assert item["intrinsic_tags"] == row["intrinsic_tags"] and item["text"] in row["text_description"]
    assert abs(len(np.asarray(item["audio"])) / 16000 - row["duration"]) < 0.01


def test_synth_to_annotate_inputs_and_annotate_to_its_contracts(corpus, tmp_path):
    from paraspeechclap.annotate import annotate
    from paraspeechclap.annotate.engines import annotated_rows
    from paraspeechclap.annotate.inputs import plan_rows

    planned = plan_rows([str(corpus / "test.jsonl")], audio_root=str(corpus / "audio"))
    assert [r.error for r in planned] == [None] * len(_rows(corpus / "test.jsonl"))
    assert all(Path(r.audio).is_file() for r in planned)
    out = tmp_path / "ann"
    annotate(corpus / "test.jsonl", out, workers=1, shard_size=4, precision="fp32", device="cpu",
             audio_root=str(corpus / "audio"))
    manifest = schemas.read(out / "_manifest.json", "annotation-manifest")
    assert manifest["attributes"]["schema"] == "paraspeechclap.attribute-table/2"
    schemas.check(manifest["attributes"], "attribute-table")
    rows = annotated_rows(out).to_pylist()
    assert len(rows) == len(planned)
    for row in rows:
        schemas.check(row, "annotation-shard", f"{out}#{row['row']}")


# ------------------------------------------------------------------------------------------------- readers refuse
def test_a_newer_or_broken_suite_file_is_refused_by_evaluate_and_calibrate(corpus, tmp_path):
    from paraspeechclap.annotate.attributes import table_for_model
    from paraspeechclap.annotate.calibrate import CalibrationError, suite_clips
    from paraspeechclap.evaluate.suites import SuiteError, resolve_suite

    copy = _copy(corpus, tmp_path)
    doc = json.loads((copy / "suites.json").read_text())
    (copy / "suites.json").write_text(json.dumps(dict(doc, schema="paraspeechclap.evaluation-suite/2")))
    expected = (rf"{copy / 'suites.json'}: field 'schema': written as version 2, newer than this paraspeechclap "
                r"reads .*\(expected evaluation-suite version 1\)")
    with pytest.raises(SuiteError, match=expected):
        resolve_suite(str(copy / "suites.json"))

    class Mini:
        class config:
            speech_config = {"model_type": "paraspeechclap_mel"}

    with pytest.raises(CalibrationError, match=expected):
        suite_clips(copy / "suites.json", table_for_model(Mini()))
    first = next(iter(doc["classification"]))
    broken = json.loads(json.dumps(doc))
    del broken["classification"][first]["manifest"]
    (copy / "suites.json").write_text(json.dumps(broken))
    with pytest.raises(SuiteError, match=rf"field 'classification.{first}': give exactly one of `manifest` or "
                                         r"`dataset` \(expected evaluation-suite version 1\)"):
        resolve_suite(str(copy / "suites.json"))


def test_a_bad_or_newer_manifest_row_is_reported_with_its_line_and_skipped(corpus, tmp_path):
    from paraspeechclap.data.rows import read_rows

    copy = _copy(corpus, tmp_path)
    rows = _rows(copy / "test.jsonl")
    rows[0] = dict(rows[0], schema="paraspeechclap.synth-row/9")
    if len(rows) > 1:
        del rows[1]["relative_audio_path"]
        rows[1]["text_description"] = 7
    (copy / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    read = list(read_rows(copy / "test.jsonl", audio_root=str(copy / "audio")))
    assert read[0].error == ("field 'schema': written as version 9, newer than this paraspeechclap reads (upgrade "
                             "paraspeechclap to read it) (expected synth-row version 1)")
    assert read[0].ref == f"{copy / 'test.jsonl'}:1"
    if len(rows) > 1:
        assert read[1].ref.endswith(":2") and read[1].error.startswith("field 'text_description': expected a valid")
    assert all(r.ok for r in read[2:]) and len(read) == len(rows)


# ------------------------------------------------------------------------------------------------- attribute tables
def test_calibrated_table_to_annotate_and_serve_readers(tmp_path, monkeypatch):
    from paraspeechclap.annotate import attributes
    from paraspeechclap.annotate.attributes import AttributeTable, table_for_model

    mini = Path(attributes.MODELS_DIR) / "mini" / "attributes.json"
    table = AttributeTable.from_file(mini)
    for attribute in table.attributes[1:]:  # one attribute calibrated, the rest not
        attribute.calibration = None
    table.attributes[0].thresholds = {c: 0.5 for c in table.attributes[0].classes if table.attributes[0].taggable(c)}
    table.attributes[0].calibration = {"precision": 0.95, "coverage": 0.4, "clips": 20, "tagged": 8}
    table.calibration = {"note": "test", "precision_target": 0.9}
    path = schemas.write(tmp_path / "models" / "mini" / "attributes.json", table.to_dict(), "attribute-table")
    back = AttributeTable.from_file(path)  # annotate's reader
    assert back.calibration["status"] == "partly calibrated" and back.attributes[0].thresholds == \
        table.attributes[0].thresholds
    pytest.importorskip("fastapi")
    from paraspeechclap.serve import state as serve_state

    monkeypatch.setattr(attributes, "MODELS_DIR", tmp_path / "models")

    class Mini:
        class config:
            speech_config = {"model_type": "paraspeechclap_mel"}

    family, classes = serve_state.attribute_table(Mini())  # serve's reader
    assert family == "mini" and classes == {a.name: a.outcomes for a in back.attributes}  # "none" with a probe
    assert table_for_model(Mini()).attributes[0].thresholds == back.attributes[0].thresholds


def test_a_broken_or_newer_table_is_refused_by_annotate(tmp_path):
    from paraspeechclap.annotate.attributes import AttributeTable

    path = tmp_path / "table.json"
    path.write_text(json.dumps({"schema": "paraspeechclap.attribute-table/1", "attributes": {"rate": {}}}))
    with pytest.raises(schemas.SchemaError, match=rf"{path}: field 'attributes.rate.classes': is missing "
                                                  r"\(expected attribute-table version 2\)"):
        AttributeTable.from_file(path)
    path.write_text(json.dumps({"schema": "paraspeechclap.attribute-table/3", "attributes": {}}))
    with pytest.raises(schemas.SchemaError, match=r"written as version 3, newer"):
        AttributeTable.from_file(path)


# ------------------------------------------------------------------------------------------------- rerank, checkpoints
def test_rerank_selection_to_its_resume_reader(corpus, tmp_path):
    from paraspeechclap.api import ParaSpeechCLAP
    from paraspeechclap.rerank.engine import rerank_input
    from paraspeechclap.rerank.inputs import read_input
    from paraspeechclap.rerank.outputs import previous_record, write_outputs

    clips = sorted((corpus / "audio" / "synth" / "test").glob("*.wav"))[:3]
    manifest = tmp_path / "prompts.jsonl"
    manifest.write_text(json.dumps({"id": "p0", "caption": "a deep voice", "candidates": [str(c) for c in clips]}) + "\n")
    data = read_input(manifest)
    model = ParaSpeechCLAP.from_pretrained("mini", precision="fp32", device="cpu")
    doc = write_outputs(tmp_path / "out", data, rerank_input(model, data, show_progress=False))
    selection = schemas.read(tmp_path / "out" / "selection.json", "rerank-selection")
    assert selection["prompts"][0]["status"] == "chosen" and doc["outputs"] == selection["outputs"]
    assert set(previous_record(tmp_path / "out")) == {*selection["outputs"], "selection.json"}


def test_checkpoint_complete_to_the_checkpoint_reader(tmp_path):
    import torch

    from paraspeechclap.train import checkpointing as C

    root = tmp_path / "run" / "checkpoints"
    root.mkdir(parents=True)
    path = C.write_checkpoint(root, "step_00000002", 5, 2, torch.nn.Linear(2, 2), {"step": 2}, save_pretrained=False)
    marker = schemas.read(path / C.MARKER, "checkpoint-complete")
    assert (marker["step"], marker["seq"]) == (2, 5) and C.save_seq(path) == 5
    assert C.MODEL_FILE in marker["files"] and C.list_checkpoints(tmp_path / "run") == [path]
