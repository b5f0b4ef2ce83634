"""The report folder: metrics.json, report.md, index.html, plots and reference-compatible per-task files."""
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from paraspeechclap.evaluate.report import PAPER_COLUMNS, REPORT_MANIFEST, ReportFolderError, foreign_entries
from paraspeechclap.evaluate.report import write_report
from paraspeechclap.evaluate.runner import prepare_suite, run_suite
from paraspeechclap.evaluate.suites import builtin_suites

from eval_helpers import ToneModel, make_eval_datasets


@pytest.fixture(scope="module")
def paper_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("paper")
    data = make_eval_datasets(tmp)
    (data["root"] / "vox" / "c20.wav").unlink()  # one situational clip missing (retrieval and classification)
    suite = builtin_suites()["paper"]
    prepared = prepare_suite(suite, audio_root=str(data["root"]), data_dir=str(data["data_dir"]))
    outcome = run_suite(ToneModel(), prepared, "paper", progress=False, settings={"device": "cpu"})
    out = tmp / "report"
    files = write_report(outcome, out, model_name="tone")
    return outcome, out, files


def test_report_files_exist(paper_report):
    _, out, files = paper_report
    for name in ("metrics.json", "report.md", "index.html"):
        assert (out / name).is_file()
    for attribute in ("pitch", "texture", "volume", "clarity", "rhythm"):
        slug = f"intrinsic-{attribute}"
        for path in (out / "plots" / f"confusion_{slug}.png", out / "plots" / f"confusion_{slug}.csv",
                     out / "plots" / f"per_class_{slug}.png",
                     out / "tasks" / slug / "final_classification_metrics.yaml",
                     out / "tasks" / slug / "predictions_classification.csv",
                     out / "tasks" / slug / "confusion_matrix_classification.csv"):
            assert path.is_file() and path.stat().st_size > 0, path
        assert (out / "plots" / f"confusion_{slug}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("situational", "intrinsic", "combined"):
        assert (out / "tasks" / name / "final_retrieval_metrics.yaml").is_file()
        assert (out / "plots" / f"recall_{name}.png").is_file()
    html = (out / "index.html").read_text()
    for image in ("plots/confusion_intrinsic-pitch.png", "plots/per_class_situational-classes.png",
                  "plots/recall_combined.png"):
        assert f"src='{image}'" in html


def test_metrics_json_is_consistent(paper_report):
    outcome, out, _ = paper_report
    data = json.loads((out / "metrics.json").read_text())
    assert data["suite"] == "paper" and data["status"] == "ok" and data["complete"] is False
    intrinsic_uars = [data["tasks"][f"intrinsic-{a}"]["metrics"]["Classification_UAR"]
                      for a in ("pitch", "texture", "volume", "clarity", "rhythm")]
    assert data["headline"]["Intrinsic UAR"] == pytest.approx(np.mean(intrinsic_uars))
    assert data["headline"]["Situational R@1"] == data["tasks"]["situational"]["metrics"]["R@1_A2T"]
    assert data["headline"]["Combined MedR"] == data["tasks"]["combined"]["metrics"]["MedR_A2T"]
    situational = data["tasks"]["situational"]
    assert (situational["n_scored"], situational["n_total"], situational["n_skipped"]) == (2, 3, 1)
    assert situational["skipped"][0]["reason"] == "file not found"
    assert situational["n_unique_captions"] == 2  # angry + calm (the remaining calm clip)
    for task in outcome.tasks:
        assert data["tasks"][task.task.name]["metrics"] == pytest.approx(task.metrics)
    # reference-compatible YAML holds the reference's five keys, in order, with the same numbers
    reference = yaml.safe_load((out / "tasks" / "intrinsic" / "final_retrieval_metrics.yaml").read_text())
    assert list(reference) == ["R@1_A2T", "R@5_A2T", "R@10_A2T", "MedR_A2T", "MeanR_A2T"]
    assert reference == pytest.approx({k: data["tasks"]["intrinsic"]["metrics"][k] for k in reference})


def test_markdown_main_table_has_the_papers_columns(paper_report):
    _, out, _ = paper_report
    text = (out / "report.md").read_text()
    header = "| Model | " + " | ".join(c[0] for c in PAPER_COLUMNS) + " |"
    assert header in text
    assert "| Model | Situational MedR | Intrinsic MedR | Combined MedR | Intrinsic Macro-F1 |" in text
    assert "items scored" in text and "c20.wav" in text  # coverage and the missing file are in the report


def test_reference_compatible_classification_files(paper_report):
    outcome, out, _ = paper_report
    task = next(t for t in outcome.tasks if t.task.name == "intrinsic-pitch")
    predictions = pd.read_csv(out / "tasks" / "intrinsic-pitch" / "predictions_classification.csv")
    assert list(predictions.columns[:4]) == ["prediction", "target", "id", "audio_path"]
    assert predictions["prediction"].tolist() == task.classification.predictions
    assert predictions["id"].tolist() == task.classification.ids
    lines = (out / "tasks" / "intrinsic-pitch" / "confusion_matrix_classification.csv").read_text().splitlines()
    assert lines[0] == "True Label,deep,nasal,shrill"  # what the reference's pandas crosstab writes
    matrix = pd.read_csv(out / "plots" / "confusion_intrinsic-pitch.csv", index_col=0)
    assert matrix.to_numpy().tolist() == task.classification.confusion.tolist()
    top = json.loads((out / "tasks" / "intrinsic" / "top_10_retrieved_captions.json").read_text())
    assert {"audio_idx", "audio_id", "audio_path", "ground_truth_caption", "rank", "retrieved_top_k"} <= set(top[0])
    assert len(top[0]["retrieved_top_k"]) == 3  # k = min(10, unique captions)


def test_failed_task_is_reported_and_leaves_headline_empty(tmp_path):
    data = make_eval_datasets(tmp_path)
    for path in (data["root"] / "vox").glob("*.wav"):
        if path.name in {"c4.wav", "c5.wav", "c6.wav"}:  # every clip of classification_pitch: corrupt
            path.write_bytes(b"not audio")
    prepared = prepare_suite(builtin_suites()["intrinsic"], audio_root=str(data["root"]),
                             data_dir=str(data["data_dir"]))
    outcome = run_suite(ToneModel(), prepared, "intrinsic", progress=False)
    assert not outcome.ok
    failed = [t for t in outcome.tasks if t.status != "ok"]
    assert [t.task.name for t in failed] == ["intrinsic-pitch"]
    assert "no audio could be scored" in failed[0].error
    write_report(outcome, tmp_path / "r", plots=False)
    data = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert data["status"] == "failed" and data["headline"]["Intrinsic UAR"] is None
    assert data["headline"]["Intrinsic R@1"] is not None
    assert "FAILED" in (tmp_path / "r" / "report.md").read_text()


# ------------------------------------------------------------------------------------ the folder holds one run
def _intrinsic_outcome(data):
    prepared = prepare_suite(builtin_suites()["intrinsic"], audio_root=str(data["root"]),
                             data_dir=str(data["data_dir"]))
    return run_suite(ToneModel(), prepared, "intrinsic", progress=False)


def _tree(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_rerun_with_a_failing_task_leaves_no_stale_files(tmp_path):
    data = make_eval_datasets(tmp_path)
    out = tmp_path / "report"
    write_report(_intrinsic_outcome(data), out, plots=False)
    assert (out / "tasks" / "intrinsic-pitch" / "predictions_classification.csv").is_file()
    assert (out / "plots" / "confusion_intrinsic-pitch.csv").is_file()
    for name in ("c4.wav", "c5.wav", "c6.wav"):  # every clip of classification_pitch: corrupt this time
        (data["root"] / "vox" / name).write_bytes(b"not audio")
    second = _intrinsic_outcome(data)
    assert [t.task.name for t in second.tasks if t.status != "ok"] == ["intrinsic-pitch"]
    write_report(second, out, plots=False)
    files = _tree(out)
    assert not any("intrinsic-pitch" in name for name in files), files  # nothing from the earlier run
    assert "tasks/intrinsic-texture/predictions_classification.csv" in files
    manifest = json.loads((out / REPORT_MANIFEST).read_text())
    assert sorted(manifest["files"]) == [f for f in files if f != REPORT_MANIFEST]
    assert json.loads((out / "metrics.json").read_text())["tasks"]["intrinsic-pitch"]["status"] == "failed"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


def test_a_folder_with_foreign_files_is_refused_and_they_survive(tmp_path):
    data = make_eval_datasets(tmp_path)
    outcome = _intrinsic_outcome(data)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("the user's own notes")
    with pytest.raises(ReportFolderError, match="notes.txt"):
        write_report(outcome, out, plots=False)
    assert _tree(out) == ["notes.txt"] and (out / "notes.txt").read_text() == "the user's own notes"

    empty = tmp_path / "empty"
    empty.mkdir()
    write_report(outcome, empty, plots=False)  # an empty folder is fine
    assert (empty / "metrics.json").is_file()


def test_a_file_added_to_an_earlier_report_is_refused_and_survives(tmp_path):
    data = make_eval_datasets(tmp_path)
    outcome = _intrinsic_outcome(data)
    out = tmp_path / "report"
    write_report(outcome, out, plots=False)
    before = {name: (out / name).read_bytes() for name in _tree(out)}
    (out / "tasks" / "my-analysis.ipynb").write_text("{}")
    with pytest.raises(ReportFolderError, match="my-analysis.ipynb"):
        write_report(outcome, out, plots=False)
    assert (out / "tasks" / "my-analysis.ipynb").read_text() == "{}"
    assert {name: (out / name).read_bytes() for name in before} == before  # the earlier report is untouched

    (out / "tasks" / "my-analysis.ipynb").unlink()
    with open(out / "report.md", "a") as handle:  # a report file the user edited is not ours to replace either
        handle.write("\nmy comments\n")
    assert foreign_entries(out) == ["report.md"]
    with pytest.raises(ReportFolderError):
        write_report(outcome, out, plots=False)
    assert (out / "report.md").read_text().endswith("my comments\n")

    folder = tmp_path / "not-a-folder"
    folder.write_text("x")
    with pytest.raises(ReportFolderError, match="not a folder"):
        write_report(outcome, folder, plots=False)


def test_a_file_added_while_the_report_is_written_survives(tmp_path, monkeypatch):
    import paraspeechclap.evaluate.report as report_module

    data = make_eval_datasets(tmp_path)
    outcome = _intrinsic_outcome(data)
    out = tmp_path / "report"
    write_report(outcome, out, plots=False)
    original = report_module._write_report_files

    def slow_writer(*args, **kwargs):
        written = original(*args, **kwargs)
        (out / "arrived-meanwhile.txt").write_text("keep me")
        return written

    monkeypatch.setattr(report_module, "_write_report_files", slow_writer)
    with pytest.raises(ReportFolderError, match="arrived-meanwhile.txt"):
        write_report(outcome, out, plots=False)
    assert (out / "arrived-meanwhile.txt").read_text() == "keep me"
    assert (out / "metrics.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
