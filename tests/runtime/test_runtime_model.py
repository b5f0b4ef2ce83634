"""The torch-free runtime over an exported folder: no torch imported, the bulk loop's report-and-skip, streaming of
long files, the tokenizer, the attributes the HTTP service reads, and clear errors for folders it cannot read."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from export_fixtures import exported, load_source
from paraspeechclap.inference import embed_items
from paraspeechclap.runtime import MANIFEST_NAME, ExportFormatError, is_exported_folder, load

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return exported(tmp_path_factory, "tiny", "onnx")


@pytest.fixture(scope="module")
def model(folder):
    return load(folder)


def test_the_runtime_and_a_full_embed_import_no_torch(folder, golden_waveforms, tmp_path):
    clip = tmp_path / "clip.wav"
    sf.write(clip, golden_waveforms[0], 16000)
    script = f"""
import sys
from paraspeechclap import runtime
model = runtime.load({str(folder)!r})
audio = model.embed_audio([{str(clip)!r}])
model.classify_embeddings(audio, ["calm", "angry"])
model.timeline({str(clip)!r}, ["calm"], window_seconds=0.5, hop_seconds=0.25)
list(model.engine.embed_many([{str(clip)!r}, "missing.wav"]))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "huggingface_hub"))
print("HEAVY", heavy, audio.shape)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert "HEAVY [] (1, 24)" in done.stdout


def test_bulk_loop_reports_bad_items_and_keeps_the_rest(model, golden_waveforms, tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt nonsense")
    items = [(golden_waveforms[0], 16000), str(corrupt), (np.zeros(10, np.float32), 16000),
             str(tmp_path / "absent.flac"), (golden_waveforms[1], 16000)]
    results = list(embed_items(model, items))
    assert [r.ok for r in results] == [True, False, False, False, True] and [r.index for r in results] == list(range(5))
    assert "corrupt" in results[1].error and "too short" in results[2].error and "not found" in results[3].error
    expected = model.embed_audio([items[0], items[4]])
    np.testing.assert_allclose(np.stack([results[0].embedding, results[4].embedding]), expected, atol=1e-6)


def test_a_failing_graph_run_costs_only_its_own_item(folder, golden_waveforms, monkeypatch):
    """The one-window retry of the shared loop, with ONNX Runtime's own error type: a batch that fails is rerun one
    window at a time and only the window that still fails is reported."""
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail

    model = load(folder)
    run = model.graphs.run
    bad_length = len(golden_waveforms[1])

    def flaky(graph, feeds):
        if graph == "speech_tower" and (feeds["attention_mask"].sum(1) == bad_length).any():
            raise Fail("injected failure")
        return run(graph, feeds)

    monkeypatch.setattr(model.graphs, "run", flaky)
    items = [(w, 16000) for w in golden_waveforms[:3]]
    results = list(model.engine.embed_many(items, batch_size=3))
    assert [r.ok for r in results] == [True, False, True] and "injected failure" in results[1].error
    expected = load(folder).embed_audio([items[0], items[2]])
    np.testing.assert_allclose(np.stack([results[0].embedding, results[2].embedding]), expected, atol=1e-6)


def test_long_files_stream_through_the_same_road(model, golden_waveforms, tmp_path):
    long = np.tile(np.concatenate(golden_waveforms), 5)[: 16000 * 20]
    path = tmp_path / "long.flac"
    sf.write(path, long, 16000)
    whole = model.embed_audio(str(path))
    model.engine.stream_seconds = 8.0  # this instance streams files over 8 s (statistics, then windows)
    try:
        streamed = model.embed_audio(str(path))
    finally:
        del model.engine.stream_seconds
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_timeline_and_similarity_match_torch(model, golden_waveforms):
    tiny = load_source("tiny")
    clip = (np.concatenate(golden_waveforms[:3]), 16000)
    ours = model.timeline(clip, ["calm", "angry"], window_seconds=1.0, hop_seconds=0.5)
    theirs = tiny.timeline(clip, ["calm", "angry"], window_seconds=1.0, hop_seconds=0.5)
    assert ours["start"] == theirs["start"] and ours["provenance"]["model"] == theirs["provenance"]["model"]
    np.testing.assert_allclose(ours["scores"], theirs["scores"], atol=1e-4)
    np.testing.assert_allclose(model.similarity(clip, ["deep"]), tiny.similarity(clip, ["deep"]), atol=1e-4)


def test_tokenizer_gives_the_torch_models_ids(model):
    tiny = load_source("tiny")
    texts = ["A calm voice.", "x", "deep " * 200, "Ünïcode ✓ and  spaces"]  # one past max_length: truncated
    ours = model.engine.tokenizer(texts)
    theirs = tiny.tokenize(texts)
    for name in ("input_ids", "attention_mask"):
        np.testing.assert_array_equal(ours[name], theirs[name].numpy())


def test_what_the_http_service_reads_of_a_model(model, golden_waveforms):
    wave = model.engine.decode((golden_waveforms[0], 16000))
    assert model.engine.sampling_rate == 16000 and wave.dtype == np.float32
    assert model.config.embedding_dim == 24 and model.logit_scale == pytest.approx(20.0)
    assert model.config.speech_config["model_type"] == "wavlm"
    provenance = model.provenance()
    assert provenance["identity"] == model.identity() != provenance["exported_from"]["identity"]
    assert provenance["runtime"].startswith("onnxruntime") and provenance["precision"] == "fp32"
    probs = model.classify_embeddings(model.embed_audio((wave, 16000)), ["calm", "angry"])
    assert sum(probs[0].values()) == pytest.approx(1.0)
    assert model.embed_text(["a"]).shape == (1, 24) and "a" in model.engine.text_cache


def test_folders_it_cannot_read_get_a_clear_error(folder, tmp_path):
    assert is_exported_folder(folder) and not is_exported_folder(tmp_path) and not is_exported_folder(folder / "x")
    with pytest.raises(ExportFormatError, match="no paraspeechclap-export.json"):
        load(tmp_path)
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    doc = json.loads((folder / MANIFEST_NAME).read_text())
    for change, message in (({"format_version": 99}, "format_version 99"),
                            ({"audio": {**doc["audio"], "frame_rule": [{"kernel": 3}]}}, "frame_rule step"),
                            ({"audio": {**doc["audio"], "window_samples": 5}}, "windows"),
                            ({"graphs": {**doc["graphs"], "text": {"fp32": "gone.onnx"}}}, "gone.onnx")):
        (bad / MANIFEST_NAME).write_text(json.dumps({**doc, **change}))
        with pytest.raises(ExportFormatError, match=message):
            load(bad)
    with pytest.raises(ValueError, match="bf16 needs an OpenVINO export"):
        load(folder, precision="bf16")


def test_the_http_app_serves_an_exported_model_without_torch(folder, golden_waveforms):
    """`serve --model DIR`: the serve command's model options load the runtime's model, and create_app over it
    answers classify, score and embed with the exported model's provenance."""
    pytest.importorskip("fastapi")
    import argparse
    import base64
    import io

    from fastapi.testclient import TestClient

    from paraspeechclap.modelspec import ModelSpec
    from paraspeechclap.runtime import ExportedModel
    from paraspeechclap.serve.app import create_app
    from paraspeechclap.serve.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    model = ModelSpec.from_args(parser.parse_args(["--model", str(folder), "--precision", "fp32"])).load()
    assert isinstance(model, ExportedModel)
    buffer = io.BytesIO()
    sf.write(buffer, golden_waveforms[0], 16000, format="WAV")
    audio = {"base64": base64.b64encode(buffer.getvalue()).decode()}
    with TestClient(create_app(model), base_url="http://localhost") as client:   # the Host check allows loopback names
        classify = client.post("/v1/classify", json={"audio": audio, "candidates": ["calm", "angry"]})
        score = client.post("/v1/score", json={"audio": audio, "captions": ["a calm voice"]})
        embed = client.post("/v1/embed", json={"audio": [audio], "texts": ["deep"]})
    assert classify.status_code == score.status_code == embed.status_code == 200
    assert classify.json()["provenance"]["identity"] == model.identity()
    expected = model.embed_audio((golden_waveforms[0], 16000))[0]
    np.testing.assert_allclose(embed.json()["audio"][0], expected, atol=1e-5)


def test_the_cli_classifies_with_an_exported_folder(folder, golden_waveforms, tmp_path, capsys):
    from paraspeechclap.cli import main

    clip = tmp_path / "clip.wav"
    sf.write(clip, golden_waveforms[0], 16000)
    assert main(["classify", str(clip), "--model", str(folder), "--candidates", "calm", "angry",
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["provenance"]["exported_from"]["backend"] == "onnx"
    assert sum(r["probability"] for r in doc["results"][0]["ranking"]) == pytest.approx(1.0)
