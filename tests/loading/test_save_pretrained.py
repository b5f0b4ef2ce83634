"""save_pretrained folders: round trip offline, committed atomically, never replacing a folder it did not write."""
from __future__ import annotations

import json

import numpy as np
import pytest

from paraspeechclap.loading import save_pretrained
from paraspeechclap.loading import save as save_module


def test_save_pretrained_round_trip_offline(tiny_model, golden, golden_waveforms, tmp_path, monkeypatch):
    folder = tiny_model.save_pretrained(tmp_path / "saved")
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "paraspeechclap" and config["embedding_dim"] == 24
    assert config["speech_config"]["model_type"] == "wavlm" and config["text_pooling"] == "first"
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer" / "tokenizer.json").is_file()
    assert (folder / "feature_extractor" / "preprocessor_config.json").is_file()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "temporary folders left behind"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from paraspeechclap import ParaSpeechCLAP

    loaded = ParaSpeechCLAP.from_pretrained(folder, device="cpu", precision="fp32")
    np.testing.assert_allclose(loaded.embed_audio([(w, 16000) for w in golden_waveforms]),
                               golden["audio_emb_batch"], atol=1e-5)
    np.testing.assert_allclose(loaded.embed_text(golden["json"]["texts"]), golden["text_emb"], atol=1e-5)
    (folder / "stale.txt").write_text("from an earlier save")
    tiny_model.save_pretrained(folder)  # overwriting its own folder works and leaves no debris
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]
    assert not (folder / "stale.txt").exists()


def test_config_is_stamped_and_older_or_newer_configs_are_told_apart(tiny_model, tmp_path, monkeypatch):
    from paraspeechclap import ParaSpeechCLAP, schemas

    folder = tiny_model.save_pretrained(tmp_path / "saved")
    config = json.loads((folder / "config.json").read_text())
    assert config["format_version"] == 1 and list(config)[:1] == ["model_type"]
    assert schemas.read(folder / "config.json", "saved-model-config")["embedding_dim"] == 24
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    del config["format_version"]  # a folder saved before versions: version 0, still read
    (folder / "config.json").write_text(json.dumps(config))
    assert schemas.read(folder / "config.json", "saved-model-config")["format_version"] == 1
    assert ParaSpeechCLAP.from_pretrained(folder, device="cpu", precision="fp32").config.embedding_dim == 24
    (folder / "config.json").write_text(json.dumps(dict(config, format_version=2)))
    with pytest.raises(schemas.SchemaError, match=r"config.json: field 'format_version': written as version 2, "
                                                  r"newer .*\(expected saved-model-config version 1\)"):
        schemas.read(folder / "config.json", "saved-model-config")
    (folder / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "speech_config"}))
    with pytest.raises(schemas.SchemaError, match=r"field 'speech_config': is missing"):
        schemas.read(folder / "config.json", "saved-model-config")


@pytest.mark.parametrize("kind", ["foreign-files", "empty", "other-config", "a-file"])
def test_a_folder_it_did_not_write_is_never_replaced(tiny_model, tmp_path, kind):
    target = tmp_path / "target"
    if kind == "a-file":
        target.write_text("precious")
    else:
        target.mkdir()
        if kind == "foreign-files":
            (target / "notes.txt").write_text("precious")
        elif kind == "other-config":
            (target / "config.json").write_text(json.dumps({"model_type": "bert"}))
    before = sorted(p.name for p in target.iterdir()) if target.is_dir() else target.read_text()
    with pytest.raises(FileExistsError, match="refusing to replace"):
        save_pretrained(tiny_model, target)
    after = sorted(p.name for p in target.iterdir()) if target.is_dir() else target.read_text()
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]  # nothing written beside it either


def test_a_failed_save_keeps_the_previous_folder(tiny_model, tmp_path, monkeypatch):
    folder = save_pretrained(tiny_model, tmp_path / "saved")
    weights = (folder / "model.safetensors").read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(save_module, "atomic_write_text", broken)
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(tiny_model, folder)
    assert (folder / "model.safetensors").read_bytes() == weights and (folder / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]
