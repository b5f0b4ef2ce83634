"""Released-format files: they load strictly and reproduce the authors' outputs; only harmless variants pass."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from reference_fixture import load_tiny
from paraspeechclap.loading import CheckpointError, read_state_dict, save_released_format


@pytest.mark.parametrize("checkpoint", ["checkpoint.pth.tar", "checkpoint-legacy-weightnorm.pth.tar"])
def test_both_checkpoint_files_reproduce_golden_embeddings(fixture_dir, golden, golden_waveforms, checkpoint):
    model = load_tiny(fixture_dir, checkpoint)
    assert model.logit_scale == pytest.approx(float(golden["logit_scale"]), rel=1e-6)
    single = np.stack([model.embed_audio((w, 16000)) [0] for w in golden_waveforms])
    np.testing.assert_allclose(single, golden["audio_emb_single"], atol=1e-5)
    batched = model.embed_audio([(w, 16000) for w in golden_waveforms], batch_size=4)
    np.testing.assert_allclose(batched, golden["audio_emb_batch"], atol=1e-5)
    np.testing.assert_allclose(model.embed_text(golden["json"]["texts"]), golden["text_emb"], atol=1e-5)
    with torch.no_grad():  # the torch API on the authors' own preprocessed batch
        values = torch.from_numpy(golden["input_values"])
        mask = torch.from_numpy(golden["attention_mask"])
        proj = model.encode_audio(values, mask, normalize=False).numpy()
        tokens = {"input_ids": torch.from_numpy(golden["input_ids"]),
                  "attention_mask": torch.from_numpy(golden["text_attention_mask"])}
        text_proj = model.encode_text(tokens, normalize=False).numpy()
    np.testing.assert_allclose(proj, golden["audio_proj_batch"], atol=1e-5)
    np.testing.assert_allclose(text_proj, golden["text_proj"], atol=1e-5)


def test_prepare_audio_matches_authors_feature_extractor(tiny_model, golden, golden_waveforms):
    values, mask = tiny_model.prepare_audio(golden_waveforms)
    np.testing.assert_allclose(values.numpy(), golden["input_values"], atol=1e-5)
    np.testing.assert_array_equal(mask.numpy(), golden["attention_mask"])


def _save(state, path):
    torch.save(state, path)
    return path


def _load_raw(fixture_dir, checkpoint):
    from paraspeechclap import ParaSpeechCLAP

    return ParaSpeechCLAP.from_pretrained(checkpoint, speech_model=fixture_dir / "speech",
                                          text_model=fixture_dir / "text", embedding_dim=24, device="cpu",
                                          precision="fp32")


def test_strict_load_names_missing_and_unexpected_keys(fixture_dir, tmp_path):
    state = read_state_dict(fixture_dir / "checkpoint.pth.tar")
    state.pop("audio_projection.linear2.weight")
    state["audio_projection.extra.weight"] = torch.zeros(2)
    with pytest.raises(CheckpointError) as info:
        _load_raw(fixture_dir, _save(state, tmp_path / "bad.pth.tar"))
    message = str(info.value)
    assert "audio_projection.linear2.weight" in message and "audio_projection.extra.weight" in message
    assert "missing keys" in message and "unexpected keys" in message


def test_shape_mismatch_is_fatal(fixture_dir, tmp_path):
    state = read_state_dict(fixture_dir / "checkpoint.pth.tar")
    state["text_projection.layer_norm.bias"] = torch.zeros(7)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        _load_raw(fixture_dir, _save(state, tmp_path / "bad.pth.tar"))


def test_tolerated_variants_load(fixture_dir, golden, tmp_path):
    state = read_state_dict(fixture_dir / "checkpoint.pth.tar")
    dropped = [k for k in state if ".pooler." in k or k.endswith("masked_spec_embed")]
    assert dropped, "fixture should contain a pooler and masked_spec_embed"
    for key in dropped:
        state.pop(key)
    state["text_branch.base.embeddings.position_ids"] = torch.arange(514)[None]
    model = _load_raw(fixture_dir, _save(state, tmp_path / "variant.pth.tar"))
    np.testing.assert_allclose(model.embed_text(golden["json"]["texts"]), golden["text_emb"], atol=1e-5)


def test_pickled_objects_are_refused(fixture_dir, tmp_path):
    path = tmp_path / "evil.pth.tar"
    torch.save({"weights": Path("/etc/passwd")}, path)  # not a plain tensor dict: needs full unpickling
    with pytest.raises(CheckpointError):
        _load_raw(fixture_dir, path)


def _fake_hub_cache(cache: Path, repo_id: str, files: dict[str, Path]) -> None:
    """Lay out files as huggingface_hub's cache does (refs/main -> snapshots/<commit>/...)."""
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0" * 40
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    for name, source in files.items():
        shutil.copy(source, snapshot / name)


def test_alias_loads_from_filled_cache_offline(fixture_dir, golden, tmp_path, monkeypatch):
    """A cache laid out by hand, holding the release README's (old) file name: found offline without listing."""
    cache = tmp_path / "hub"
    _fake_hub_cache(cache, "ajd12342/paraspeechclap-situational",
                    {"paraspeechclap-situational.pth.tar": fixture_dir / "checkpoint.pth.tar"})
    _fake_hub_cache(cache, "microsoft/wavlm-large",
                    {n: fixture_dir / "speech" / n for n in ("config.json", "preprocessor_config.json")})
    _fake_hub_cache(cache, "ibm-granite/granite-embedding-278m-multilingual",
                    {n: fixture_dir / "text" / n for n in ("config.json", "tokenizer.json", "tokenizer_config.json")})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    from paraspeechclap import ParaSpeechCLAP

    model = ParaSpeechCLAP.from_pretrained("situational", embedding_dim=24, device="cpu", precision="fp32")
    assert model.config.speech_model == "microsoft/wavlm-large"
    np.testing.assert_allclose(model.embed_text(golden["json"]["texts"]), golden["text_emb"], atol=1e-5)


def test_unknown_source_is_a_clear_error():
    from paraspeechclap import ParaSpeechCLAP

    with pytest.raises(FileNotFoundError, match="model source not found"):
        ParaSpeechCLAP.from_pretrained("no/such/file.pth.tar")


def test_revision_is_refused_for_local_sources(fixture_dir):
    from paraspeechclap import ParaSpeechCLAP

    with pytest.raises(ValueError, match="hub sources only"):
        ParaSpeechCLAP.from_pretrained(fixture_dir / "checkpoint.pth.tar", speech_model=fixture_dir / "speech",
                                       text_model=fixture_dir / "text", embedding_dim=24, revision="main")
    with pytest.raises(ValueError, match="hub sources only"):
        ParaSpeechCLAP.from_pretrained("mini", revision="main")


def test_released_alias_fetches_encoder_metadata_never_encoder_weights(fixture_dir, monkeypatch):
    """Only config/tokenizer/preprocessor files of the base encoders are requested from the hub."""
    import fnmatch

    import huggingface_hub

    from paraspeechclap.loading import PAPER_SPEECH_MODEL, PAPER_TEXT_MODEL, loaders
    from paraspeechclap.loading.resolve import ResolvedCheckpoint

    requested = []

    def fake_snapshot_download(repo_id, allow_patterns=None, **kwargs):
        requested.append((repo_id, list(allow_patterns or ["*"])))
        return str(fixture_dir / ("speech" if "wavlm" in repo_id else "text"))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setattr(loaders, "resolve_checkpoint", lambda bundle, revision=None: ResolvedCheckpoint(
        fixture_dir / "checkpoint.pth.tar", bundle.repo_id, bundle.filenames[0], revision, None, None))
    from paraspeechclap import ParaSpeechCLAP

    ParaSpeechCLAP.from_pretrained("combined", embedding_dim=24, device="cpu", precision="fp32")
    assert {repo for repo, _ in requested} == {PAPER_SPEECH_MODEL, PAPER_TEXT_MODEL}
    for _, patterns in requested:
        for weights in ("model.safetensors", "pytorch_model.bin", "model-00001-of-00002.safetensors", "tf_model.h5"):
            assert not any(fnmatch.fnmatch(weights, p) for p in patterns)
        assert any(fnmatch.fnmatch("config.json", p) for p in patterns)


def test_save_released_format_round_trip(tiny_model, fixture_dir, golden, tmp_path):
    path = save_released_format(tiny_model, tmp_path / "out" / "model.pth.tar")
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pth.tar"]  # no temporary left
    state = read_state_dict(path)  # weights-only: a plain tensor dict
    assert set(state) == set(tiny_model.state_dict())
    model = _load_raw(fixture_dir, path)
    np.testing.assert_allclose(model.embed_text(golden["json"]["texts"]), golden["text_emb"], atol=1e-5)
