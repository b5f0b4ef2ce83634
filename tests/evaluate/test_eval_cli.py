"""End to end: `paraspeechclap evaluate` on a synthetic manifest with the reference-tiny model."""
import json

import numpy as np
import pytest

from paraspeechclap.cli import main
from paraspeechclap.evaluate import metrics as M

from eval_helpers import write_manifest


@pytest.fixture
def model_args(fixture_dir):
    return ["--model", str(fixture_dir / "checkpoint.pth.tar"), "--speech-model", str(fixture_dir / "speech"),
            "--text-model", str(fixture_dir / "text"), "--embedding-dim", "24", "--device", "cpu", "--quiet"]


def test_evaluate_manifest_end_to_end(tmp_path, tone_set, model_args, tiny_model, capsys):
    (tone_set["root"] / "synth" / "clip1.wav").unlink()  # missing: reported, counted, exit code 3
    out, cache = tmp_path / "report", tmp_path / "cache"
    candidates = ["shrill", "nasal", "deep", "calm"]
    argv = ["evaluate", "--suite", str(tone_set["manifest"]), "--candidates", *candidates,
            "--audio-root", str(tone_set["root"]), "--out", str(out), "--cache-dir", str(cache), *model_args]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "10 of 12 items scored" in err  # two tasks (retrieval, classification) over the same 6 rows
    assert "1 of 6 items skipped" in err and "clip1.wav" in err

    for name in ("metrics.json", "report.md", "index.html", "plots/confusion_set-classification.png",
                 "plots/confusion_set-classification.csv", "plots/per_class_set-classification.png",
                 "tasks/set-retrieval/top_10_retrieved_captions.json",
                 "tasks/set-classification/predictions_classification.csv"):
        assert (out / name).is_file(), name
    report = json.loads((out / "metrics.json").read_text())
    assert report["model"]["provenance"]["precision"] == "fp32"  # what produced the numbers is recorded
    assert report["model"]["provenance"]["identity"] == tiny_model.identity()
    retrieval, classification = report["tasks"]["set-retrieval"], report["tasks"]["set-classification"]
    for task in (retrieval, classification):
        assert (task["n_scored"], task["n_total"], task["n_skipped"]) == (5, 6, 1)
        assert task["skipped"][0]["id"] == "utt1" and "not found" in task["skipped"][0]["reason"]

    # the JSON numbers equal the metrics computed directly from the public API
    kept = [i for i in range(6) if i != 1]
    paths = [str(tone_set["root"] / "synth" / f"clip{i}.wav") for i in kept]
    audio = tiny_model.embed_audio(paths)
    captions = [tone_set["rows"][i]["text_description"] for i in kept]
    captions = [c if isinstance(c, str) else c[0] for c in captions]
    unique, targets = M.deduplicate_captions(captions)
    similarity = audio.astype(np.float64) @ tiny_model.embed_text(unique).astype(np.float64).T
    assert retrieval["metrics"] == pytest.approx(M.retrieval_metrics(similarity, targets), abs=1e-6)

    prompts = tiny_model.embed_text([f"A person is speaking in a {c} style." for c in candidates])
    predicted = [candidates[j] for j in np.argmax(audio @ prompts.T, axis=1)]
    gold = [tone_set["rows"][i]["classification_tag"] for i in kept]
    assert classification["metrics"] == pytest.approx(M.classification_metrics(gold, predicted, candidates), abs=1e-6)
    assert classification["candidates"] == candidates
    assert report["cache"]["embedded"] == 5
    assert report["cache"]["journal_mode"] == "wal" and report["cache"]["disabled"] is None
    assert (out / "report_manifest.json").is_file()

    # other candidates and templates: no audio is embedded again; --allow-missing turns exit 3 into 0; the
    # earlier report in the same folder is replaced as a whole
    argv2 = ["evaluate", "--suite", str(tone_set["manifest"]), "--candidates", "deep", "nasal", "shrill",
             "--templates", "{} voice", "a {} speaker", "--audio-root", str(tone_set["root"]),
             "--out", str(out), "--cache-dir", str(cache), "--allow-missing", *model_args]
    assert main(argv2) == 0
    second = json.loads((out / "metrics.json").read_text())
    assert second["cache"]["embedded"] == 0 and second["cache"]["hits"] >= 5
    assert second["settings"]["templates"] == ["{} voice", "a {} speaker"]
    assert second["tasks"]["set-retrieval"]["metrics"] == pytest.approx(retrieval["metrics"])


def test_evaluate_fails_loudly(tmp_path, tone_set, model_args, capsys):
    base = ["evaluate", "--audio-root", str(tone_set["root"]), "--no-cache", "--out", str(tmp_path / "r"), *model_args]
    # a gold label outside the candidates
    assert main(base + ["--suite", str(tone_set["manifest"]), "--candidates", "deep", "nasal"]) == 1
    assert "not among the candidates" in capsys.readouterr().err
    # an empty set: a zero-byte JSONL, a CSV with only its header
    write_manifest(tmp_path / "empty.jsonl", [])
    assert main(base + ["--suite", str(tmp_path / "empty.jsonl")]) == 1
    assert "empty" in capsys.readouterr().err
    (tmp_path / "empty.csv").write_text("source,relative_audio_path,classification_tag\n")
    assert main(base + ["--suite", str(tmp_path / "empty.csv")]) == 1
    assert "empty" in capsys.readouterr().err
    # a model that cannot be loaded
    assert main(["evaluate", "--suite", str(tone_set["manifest"]), "--audio-root", str(tone_set["root"]),
                 "--model", str(tmp_path / "nope.pth.tar"), "--no-cache", "--quiet"]) == 1
    assert "cannot load model" in capsys.readouterr().err
    assert not (tmp_path / "r" / "metrics.json").exists()


def test_evaluate_refuses_a_foreign_output_folder_before_loading_the_model(tmp_path, tone_set, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "keep.csv").write_text("the user's file\n")
    argv = ["evaluate", "--suite", str(tone_set["manifest"]), "--audio-root", str(tone_set["root"]),
            "--model", str(tmp_path / "nope.pth.tar"), "--no-cache", "--quiet", "--out", str(out)]
    assert main(argv) == 2  # a usage error, found before the (here unloadable) model is touched
    err = capsys.readouterr().err
    assert "keep.csv" in err and "refusing" in err and "cannot load model" not in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.csv"]
