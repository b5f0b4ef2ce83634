"""Exports of the reference-tiny fixture and mini: parity with the torch fp32 path, the manifest, the variants'
tolerances, and the folder rules (atomic, never over a folder the command did not write)."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from export_fixtures import exported, load_source
from paraspeechclap.export import TOLERANCES, export_model
from paraspeechclap.export.graphs import ExportError
from paraspeechclap.export.probes import agreement
from paraspeechclap.runtime import MANIFEST_NAME, load, read_manifest


@pytest.fixture(scope="module")
def tiny():
    return load_source("tiny")


@pytest.fixture(scope="module")
def clips(golden_waveforms, tiny):
    """The fixture's clips, one of them long enough for three windows of the fixture tower (5.9 s)."""
    long = np.tile(np.concatenate(golden_waveforms), 8)[: int(tiny.engine.window * 2.4)]
    return [*golden_waveforms, long]


def test_tiny_fp32_export_is_within_1e4_of_torch_fp32(tmp_path_factory, tiny, clips, golden):
    model = load(exported(tmp_path_factory, "tiny", "onnx"), precision="fp32")
    texts = golden["json"]["texts"]
    reference = tiny.embed_audio([(c, 16000) for c in clips])
    audio = model.embed_audio([(c, 16000) for c in clips], batch_size=4)  # batched, padded, masked in the graph
    assert np.abs(audio - reference).max() <= 1e-4
    assert np.abs(model.embed_text(texts) - tiny.embed_text(texts)).max() <= 1e-4
    assert agreement(reference, audio)["centred_min_cos"] >= 0.9999 and agreement(reference, audio)["nn_preserved"]
    torch_probs = tiny.classify([(c, 16000) for c in clips[:3]], ["deep", "whispered", "angry"])
    probs = model.classify([(c, 16000) for c in clips[:3]], ["deep", "whispered", "angry"])
    for a, b in zip(torch_probs, probs):
        assert a.keys() == b.keys() and max(abs(a[k] - b[k]) for k in a) <= 1e-4


def test_manifest_holds_what_preprocessing_needs(tmp_path_factory, tiny):
    folder = exported(tmp_path_factory, "tiny", "onnx")
    doc = read_manifest(folder)
    audio, text, model = doc["audio"], doc["text"], doc["model"]
    assert (audio["sampling_rate"], audio["do_normalize"], audio["window_seconds"]) == (16000, True, 30.0)
    assert (audio["window_samples"], audio["overlap_samples"]) == (tiny.engine.window, tiny.engine.overlap)
    assert audio["min_samples"] == tiny.engine.min_audio_samples and audio["attention_heads"] == 2
    assert text["pooling"] == "first" and text["template"] == tiny.config.prompt_template
    assert text["inputs"] == ["input_ids", "attention_mask"]
    assert model["identity"] == tiny.identity() and model["logit_scale"] == pytest.approx(tiny.logit_scale)
    assert {"torch", "onnxruntime", "paraspeechclap"} <= set(model["versions"])
    assert set(doc["graphs"]["speech_tower"]) == {"fp32", "int8"} and doc["checks"]["fp32"]["within_tolerance"]
    assert doc["checks"]["int8"]["tolerance"] == TOLERANCES["int8"]
    assert sorted(doc["outputs"]) == sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                                            if p.is_file() and p.name != MANIFEST_NAME)


def test_int8_variant_keeps_its_stated_tolerance(tmp_path_factory, tiny, clips):
    model = load(exported(tmp_path_factory, "tiny", "onnx"), precision="int8")
    assert model.precision == "int8"
    measured = agreement(tiny.embed_audio([(c, 16000) for c in clips]), model.embed_audio([(c, 16000) for c in clips]))
    assert measured["centred_min_cos"] >= TOLERANCES["int8"]["centred_min_cos"] and measured["nn_preserved"]


def test_openvino_export_fp32_parity_and_bf16_where_native(tmp_path_factory, tiny, clips):
    pytest.importorskip("openvino")
    import openvino as ov

    folder = exported(tmp_path_factory, "tiny", "openvino")
    reference = tiny.embed_audio([(c, 16000) for c in clips])
    fp32 = load(folder, precision="fp32")
    assert fp32.precision == "fp32" and np.abs(fp32.embed_audio([(c, 16000) for c in clips]) - reference).max() <= 1e-4
    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        with pytest.raises(ValueError, match="does not multiply bf16 natively"):
            load(folder, precision="bf16")
        assert load(folder).precision == "fp32"  # auto
        pytest.skip("this CPU has no native bf16: the bf16 variant is checked where it has")
    bf16 = load(folder)  # auto: bf16 here
    measured = agreement(reference, bf16.embed_audio([(c, 16000) for c in clips]))
    assert bf16.precision == "bf16" and measured["centred_min_cos"] >= TOLERANCES["bf16"]["centred_min_cos"]
    assert measured["nn_preserved"]


def test_mini_exports_to_onnx_and_keeps_its_answers(tmp_path_factory, golden_waveforms):
    source = load_source("mini")
    model = load(exported(tmp_path_factory, "mini", "onnx"))
    clips = [(w, 16000) for w in golden_waveforms] + [(golden_waveforms[0][:300], 16000)]  # one under the tower's
    assert np.abs(model.embed_audio(clips) - source.embed_audio(clips)).max() <= 1e-4       # longest conv context
    texts = ["A person is speaking in a calm style.", "whispering"]
    assert np.abs(model.embed_text(texts) - source.embed_text(texts)).max() <= 1e-4
    assert read_manifest(model.folder)["text"]["pooling"] == "mean"


def test_mini_exports_to_openvino_with_its_ffts_as_matrix_products(tmp_path_factory, golden_waveforms):
    pytest.importorskip("openvino")
    source = load_source("mini")
    model = load(exported(tmp_path_factory, "mini", "openvino"))
    assert model.precision == "fp32"  # auto: the log-mel tower keeps fp32, as in torch
    clips = [(w, 16000) for w in golden_waveforms] + [(golden_waveforms[1][:2000], 16000)]
    assert np.abs(model.embed_audio(clips) - source.embed_audio(clips)).max() <= 1e-4


def test_dft_tables_give_torchs_stft_and_irfft():
    import torch

    from paraspeechclap.export.graphs import _irfft_as_matmul, _stft_as_matmul

    x = torch.randn(2, 5000, dtype=torch.float64)
    window = torch.hann_window(400, dtype=torch.float64)
    ours = _stft_as_matmul(x, 512, hop_length=160, win_length=400, window=window)
    theirs = torch.stft(x, 512, hop_length=160, win_length=400, window=window, center=False, return_complex=True)
    torch.testing.assert_close(ours.real, theirs.real, atol=1e-9, rtol=0)
    torch.testing.assert_close(ours.imag, theirs.imag, atol=1e-9, rtol=0)
    spectrum = torch.rand(2, 257, 7, dtype=torch.float64)
    torch.testing.assert_close(_irfft_as_matmul(spectrum, n=512, dim=1), torch.fft.irfft(spectrum, n=512, dim=1),
                               atol=1e-12, rtol=0)
    with pytest.raises(ExportError, match="center=False"):
        _stft_as_matmul(x, 512, center=True)


def test_the_command_replaces_only_its_own_export(tmp_path_factory, tmp_path, tiny, fixture_dir, capsys):
    from paraspeechclap.cli import main

    ours = tmp_path / "ours"
    shutil.copytree(exported(tmp_path_factory, "tiny", "onnx"), ours)
    argv = ["export", str(fixture_dir / "checkpoint.pth.tar"), "--speech-model", str(fixture_dir / "speech"),
            "--text-model", str(fixture_dir / "text"), "--embedding-dim", "24", "--format", "onnx", "--variants", "fp32",
            "--out"]
    assert main(argv + [str(ours)]) == 0  # an earlier export of this command: replaced
    printed = capsys.readouterr().out
    assert f"to {ours}" in printed and "fp32 (ran in fp32): audio max|diff|" in printed
    assert set(read_manifest(ours)["graphs"]["speech_tower"]) == {"fp32"} and not (ours / "speech_tower.int8.onnx").exists()

    (ours / "notes.txt").write_text("mine")  # a file the command did not write: the folder is no longer its own
    assert main(argv + [str(ours)]) == 2 and "refusing to replace" in capsys.readouterr().err
    assert (ours / "notes.txt").read_text() == "mine"
    (ours / "notes.txt").unlink()
    (ours / "text.onnx").write_bytes(b"changed")  # a file it wrote, changed since
    with pytest.raises(FileExistsError):
        export_model(tiny, ours, "onnx", variants=("fp32",))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / MANIFEST_NAME).write_text(json.dumps({"written_by": "someone else", "outputs": {}}))
    with pytest.raises(FileExistsError):
        export_model(tiny, foreign, "onnx")
    assert sorted(os.listdir(tmp_path)) == ["foreign", "ours"]  # no temporary folder left behind


def test_bad_requests_are_refused_before_any_work(tmp_path, tiny):
    with pytest.raises(ValueError, match="variants"):
        export_model(tiny, tmp_path / "a", "onnx", variants=("bf16",))
    with pytest.raises(ValueError, match="format must be one of"):
        export_model(tiny, tmp_path / "b", "tflite")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        export_model(tiny, tmp_path / "file", "onnx")
    assert os.listdir(tmp_path) == ["file"]
