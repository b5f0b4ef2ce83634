"""Model soups: the weighted average of fine-tunes of one architecture, written as a save_pretrained folder."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from paraspeechclap.train.soup import normalised_weights, soup


@pytest.fixture
def two_folders(tiny_model_factory, tmp_path, monkeypatch):
    """The reference-tiny model and a copy whose floating-point weights moved by a known amount."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    a = tiny_model_factory()
    b = tiny_model_factory()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in b.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return a.save_pretrained(tmp_path / "a"), b.save_pretrained(tmp_path / "b"), a, b


def test_soup_is_the_weighted_average_of_the_weights(two_folders):
    fa, fb, a, b = two_folders
    mixed = soup([fa, fb], [3, 1])  # normalised: 0.75 / 0.25
    sa, sb, sm = a.state_dict(), b.state_dict(), mixed.state_dict()
    assert set(sm) == set(sa)
    moved = 0
    for key, value in sm.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.75 * sa[key] + 0.25 * sb[key], atol=1e-6, rtol=1e-6)
            moved += int(not torch.equal(sa[key], sb[key]))
        else:
            assert torch.equal(value, sa[key])
    assert moved > 10
    assert "0.75" in mixed.name and "0.25" in mixed.name


def test_soup_cli_writes_a_folder_that_loads(two_folders, tmp_path, golden_waveforms):
    from paraspeechclap import ParaSpeechCLAP
    from paraspeechclap.cli import main

    fa, fb, a, _ = two_folders
    assert main(["soup", str(fa), str(fb), "--weights", "1", "0", "--out", str(tmp_path / "soup")]) == 0
    assert json.loads((tmp_path / "soup" / "config.json").read_text())["model_type"] == "paraspeechclap"
    loaded = ParaSpeechCLAP.from_pretrained(tmp_path / "soup", device="cpu", precision="fp32")
    waves = [(w, 16000) for w in golden_waveforms]
    np.testing.assert_allclose(loaded.embed_audio(waves), a.prepare_for_inference("cpu", "fp32").embed_audio(waves),
                               atol=1e-5)


def test_soup_refuses_other_architectures_and_bad_weights(two_folders, tiny_model_factory, tmp_path):
    fa, fb, _, _ = two_folders
    other = tiny_model_factory()
    other.config.projection_dropout = 0.1  # a different recipe: not one architecture's fine-tune
    fo = other.save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="projection_dropout"):
        soup([fa, fo])
    with pytest.raises(ValueError, match="2 models but 3 weights"):
        soup([fa, fb], [1, 1, 1])
    with pytest.raises(ValueError, match="at least two"):
        normalised_weights(1, None)
    with pytest.raises(ValueError, match=">= 0"):
        normalised_weights(2, [1, -1])
    assert normalised_weights(4, None) == [0.25] * 4


def test_soup_never_replaces_a_folder_it_did_not_write(two_folders, tmp_path):
    from paraspeechclap.cli import main

    fa, fb, _, _ = two_folders
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    assert main(["soup", str(fa), str(fb), "--out", str(precious)]) == 1
    assert [p.name for p in precious.iterdir()] == ["notes.txt"]
