"""Released aliases against a stand-in hub on 127.0.0.1 (real HTTP through huggingface_hub, private cache).

The fixture's checkpoint is served under the release names; the encoder repos serve the fixture's encoder folders.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from standin_hub import SPEECH_REPO, TEXT_REPO, set_offline
from paraspeechclap import hub as hub_module
from paraspeechclap.loading import CheckpointError, HubUnavailableError, ReleaseNotFoundError, registry
from paraspeechclap.loading.resolve import resolve_checkpoint

REPO = "ajd12342/paraspeechclap-intrinsic"
NEW, OLD = "slap-intrinsic.pth.tar", "paraspeechclap-intrinsic.pth.tar"
PINNED = "e80ad8eb199f7573f07f617c15a7497504151838"


def _load(**kwargs):
    from paraspeechclap import ParaSpeechCLAP

    return ParaSpeechCLAP.from_pretrained("intrinsic", embedding_dim=24, device="cpu", precision="fp32", **kwargs)


def _check_golden(model, golden, golden_waveforms):
    np.testing.assert_allclose(model.embed_text(golden["json"]["texts"]), golden["text_emb"], atol=1e-5)
    np.testing.assert_allclose(model.embed_audio([(w, 16000) for w in golden_waveforms]),
                               golden["audio_emb_batch"], atol=1e-5)


def _no_encoder_weights(hub):
    weights = [r for r in hub.requests if r[1].startswith((f"/{SPEECH_REPO}/", f"/{TEXT_REPO}/"))
               and not r[1].endswith(".json")]
    assert weights == [], f"encoder weights (or other non-config files) were requested: {weights}"
    assert hub.fetched("config.json"), "the encoders' config files should come from the hub"


def test_hub_holding_only_the_new_name_loads(standin_hub, fixture_dir, golden, golden_waveforms):
    commit = standin_hub.add_repo(REPO, {NEW: fixture_dir / "checkpoint.pth.tar", "README.md": b"# readme\n"})
    model = _load()
    _check_golden(model, golden, golden_waveforms)
    assert ("GET", f"/{REPO}/resolve/main/{NEW}") in standin_hub.requests
    assert any(p.startswith(f"/api/models/{REPO}/tree/main") for _, p in standin_hub.requests), "repo not listed"
    assert not standin_hub.fetched(OLD), "the listing should have spared asking for the other name"
    _no_encoder_weights(standin_hub)
    cached = Path(os.environ["HF_HUB_CACHE"]) / f"models--{REPO.replace('/', '--')}" / "snapshots" / commit / NEW
    assert cached.is_file()


def test_hub_holding_only_the_old_name_loads(standin_hub, fixture_dir, golden, golden_waveforms):
    standin_hub.add_repo(REPO, {OLD: fixture_dir / "checkpoint-legacy-weightnorm.pth.tar"})
    _check_golden(_load(), golden, golden_waveforms)
    assert ("GET", f"/{REPO}/resolve/main/{OLD}") in standin_hub.requests
    assert not standin_hub.fetched(NEW)


def test_the_new_name_is_preferred_when_both_exist(standin_hub, fixture_dir):
    standin_hub.add_repo(REPO, {OLD: b"old", NEW: (fixture_dir / "checkpoint.pth.tar")})
    resolved = resolve_checkpoint(registry.get_bundle("intrinsic"))
    assert resolved.filename == NEW and resolved.path.read_bytes() == (fixture_dir / "checkpoint.pth.tar").read_bytes()
    assert not standin_hub.fetched(OLD)


def test_hub_holding_neither_name_says_what_was_looked_for(standin_hub):
    standin_hub.add_repo(REPO, {"README.md": b"x", "slap-intrinsic-step1500.pth.tar": b"y"})
    with pytest.raises(ReleaseNotFoundError) as info:
        _load()
    message = str(info.value)
    assert REPO in message and NEW in message and OLD in message and "revision main" in message
    assert "slap-intrinsic-step1500.pth.tar" in message  # what the repo does hold


def test_unknown_revision_is_named_in_the_error(standin_hub, fixture_dir):
    standin_hub.add_repo(REPO, {NEW: fixture_dir / "checkpoint.pth.tar"})
    with pytest.raises(ReleaseNotFoundError) as info:
        resolve_checkpoint(registry.get_bundle("intrinsic"), revision="no-such-branch")
    message = str(info.value)
    assert "no-such-branch" in message and REPO in message and NEW in message and "RevisionNotFound" in message


def test_revision_selects_the_commit(standin_hub, fixture_dir, golden, golden_waveforms):
    commit = standin_hub.add_repo(REPO, {NEW: fixture_dir / "checkpoint.pth.tar"})
    _check_golden(_load(revision=commit), golden, golden_waveforms)
    assert ("GET", f"/{REPO}/resolve/{commit}/{NEW}") in standin_hub.requests


def test_checksum_mismatch_at_the_pinned_commit_fails(standin_hub, fixture_dir):
    """The registry's real hash of slap-intrinsic.pth.tar at the pinned commit vs the fixture's bytes."""
    standin_hub.add_repo(REPO, {NEW: fixture_dir / "checkpoint.pth.tar"}, commit=PINNED)
    for revision in (None, PINNED):
        with pytest.raises(CheckpointError) as info:
            _load(revision=revision)
        message = str(info.value)
        assert "SHA-256 mismatch" in message and "22b37acc1bb27a26034614b6eab1562131a4197b86fd0221e45350f927663ad2" in message
        assert hashlib.sha256((fixture_dir / "checkpoint.pth.tar").read_bytes()).hexdigest() in message


def test_checksum_is_checked_only_for_its_commit_and_file(standin_hub, fixture_dir, golden, golden_waveforms,
                                                         monkeypatch):
    data = (fixture_dir / "checkpoint.pth.tar").read_bytes()
    commit = standin_hub.add_repo(REPO, {NEW: data})
    bundle = registry.get_bundle("intrinsic")
    right = registry.Checksum(commit, NEW, hashlib.sha256(data).hexdigest())
    wrong = registry.Checksum(commit, NEW, "0" * 64)
    table = registry._default_registry()
    monkeypatch.setitem(table, "intrinsic", replace(bundle, checksums=(right,)))
    assert resolve_checkpoint(registry.get_bundle("intrinsic")).sha256 == right.sha256
    _check_golden(_load(), golden, golden_waveforms)
    monkeypatch.setitem(table, "intrinsic", replace(bundle, checksums=(wrong,)))
    with pytest.raises(CheckpointError, match="SHA-256 mismatch"):
        _load()
    other_commit = registry.Checksum("1" * 40, NEW, "0" * 64)  # a hash for another commit does not apply
    other_file = registry.Checksum(commit, OLD, "0" * 64)  # nor one for the other file name
    monkeypatch.setitem(table, "intrinsic", replace(bundle, checksums=(other_commit, other_file)))
    assert resolve_checkpoint(registry.get_bundle("intrinsic")).sha256 is None


def test_offline_after_a_download_uses_the_cache(standin_hub, fixture_dir, golden, golden_waveforms, monkeypatch):
    commit = standin_hub.add_repo(REPO, {NEW: fixture_dir / "checkpoint.pth.tar"})
    _load()  # fills the cache
    standin_hub.stop()
    seen = len(standin_hub.requests)
    set_offline(monkeypatch, True)
    _check_golden(_load(), golden, golden_waveforms)
    _check_golden(_load(revision=commit), golden, golden_waveforms)
    assert len(standin_hub.requests) == seen
    with pytest.raises(HubUnavailableError) as info:  # a revision never downloaded is not in the cache
        _load(revision="v2")
    message = str(info.value)
    assert "HF_HUB_OFFLINE" in message and REPO in message and NEW in message and "v2" in message
    assert "hf download" in message


def test_offline_with_an_empty_cache_says_what_to_download(standin_hub, monkeypatch):
    set_offline(monkeypatch, True)
    with pytest.raises(HubUnavailableError) as info:
        _load()
    message = str(info.value)
    assert REPO in message and NEW in message and OLD in message and "revision main" in message
    assert f"hf download {REPO} {NEW}" in message and "HF_HUB_OFFLINE" in message
    assert standin_hub.requests == []


def test_a_mirror_without_the_listing_api_still_resolves(standin_hub, fixture_dir, golden, golden_waveforms):
    """Listing fails (here: 404 on the tree API); each name is then asked for in turn."""
    standin_hub.add_repo(REPO, {OLD: fixture_dir / "checkpoint.pth.tar"})
    standin_hub.tree_api = False
    resolved = resolve_checkpoint(registry.get_bundle("intrinsic"))
    assert resolved.filename == OLD
    assert ("HEAD", f"/{REPO}/resolve/main/{NEW}") in standin_hub.requests  # asked, 404, moved on


def test_environment_alone_points_huggingface_hub_at_the_stand_in(standin_hub, fixture_dir, tmp_path):
    """A fresh interpreter that only gets HF_ENDPOINT / HF_HOME / HF_HUB_CACHE (no patched constants)."""
    commit = standin_hub.add_repo("ajd12342/paraspeechclap-combined",
                                  {"slap-combined.pth.tar": fixture_dir / "checkpoint.pth.tar"})
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=standin_hub.url, HF_HOME=str(tmp_path / "fresh"), HF_HUB_CACHE=str(tmp_path / "fresh/hub"))
    code = ("import json; from paraspeechclap.loading import get_bundle, resolve_checkpoint; "
            "r = resolve_checkpoint(get_bundle('combined')); "
            "print(json.dumps({'file': r.filename, 'commit': r.commit, 'path': str(r.path)}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["file"] == "slap-combined.pth.tar" and result["commit"] == commit
    assert result["path"].startswith(str(tmp_path / "fresh/hub"))


def test_sha256_is_streamed_and_exact(tmp_path):
    path = tmp_path / "blob"
    data = os.urandom(3 * 1024 + 7)
    path.write_bytes(data)
    assert hub_module.sha256_file(path, chunk_size=1000) == hashlib.sha256(data).hexdigest()


def test_network_errors_are_told_apart_from_answers(standin_hub, fixture_dir):
    from huggingface_hub import errors

    standin_hub.add_repo(REPO, {NEW: fixture_dir / "checkpoint.pth.tar"})
    with pytest.raises(errors.HfHubHTTPError) as answer:  # the hub answered: no such file
        hub_module.download_file(REPO, OLD)
    assert hub_module.is_missing_entry(answer.value) and not hub_module.is_network_error(answer.value)
    with pytest.raises(errors.HfHubHTTPError) as answer:
        hub_module.list_repo_files(REPO, revision="nope")
    assert not hub_module.is_missing_entry(answer.value) and not hub_module.is_network_error(answer.value)
    try:  # nobody listens on the discard port: connection refused, as huggingface_hub's HTTP client reports it
        from huggingface_hub.utils import get_session

        get_session().get("http://127.0.0.1:9/")
    except Exception as err:
        refused = err
    assert hub_module.is_network_error(refused) and not hub_module.is_missing_entry(refused)
    assert hub_module.is_network_error(errors.OfflineModeIsEnabled("offline"))
    assert hub_module.is_network_error(errors.LocalEntryNotFoundError("not cached"))


def test_a_save_pretrained_folder_published_on_the_hub_loads(standin_hub, tiny_model, golden, golden_waveforms,
                                                             tmp_path, monkeypatch):
    folder = tiny_model.save_pretrained(tmp_path / "published")
    files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    assert "tokenizer/tokenizer.json" in files
    commit = standin_hub.add_repo("someone/tiny-clap", files)
    from paraspeechclap import ParaSpeechCLAP

    for revision in (None, commit):
        model = ParaSpeechCLAP.from_pretrained("someone/tiny-clap", revision=revision, device="cpu", precision="fp32")
        _check_golden(model, golden, golden_waveforms)
    standin_hub.stop()
    set_offline(monkeypatch, True)
    _check_golden(ParaSpeechCLAP.from_pretrained("someone/tiny-clap", device="cpu", precision="fp32"),
                  golden, golden_waveforms)


def test_a_verified_file_is_hashed_once_per_process(standin_hub, fixture_dir, monkeypatch):
    from paraspeechclap.loading import resolve as resolve_module

    data = (fixture_dir / "checkpoint.pth.tar").read_bytes()
    commit = standin_hub.add_repo(REPO, {NEW: data})
    bundle = replace(registry.get_bundle("intrinsic"),
                     checksums=(registry.Checksum(commit, NEW, hashlib.sha256(data).hexdigest()),))
    calls = []
    real = hub_module.sha256_file
    monkeypatch.setattr(hub_module, "sha256_file", lambda path, **kw: calls.append(path) or real(path, **kw))
    monkeypatch.setattr(resolve_module, "_HASHED", {})
    first = resolve_checkpoint(bundle)
    second = resolve_checkpoint(bundle)
    assert first.sha256 == second.sha256 and len(calls) == 1
    bad = replace(bundle, checksums=(registry.Checksum(commit, NEW, "0" * 64),))
    with pytest.raises(CheckpointError):  # the remembered hash is the file's, so a wrong expectation still fails
        resolve_checkpoint(bad)
    assert len(calls) == 1
