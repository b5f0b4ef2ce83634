import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from tiny import write_corpus  # noqa: E402

from paraspeechclap.audio import load_audio, normalize_waveform
from paraspeechclap.data.collate import collate
from paraspeechclap.data.dataset import ParaSpeechCapsDataset, crop_or_pad
from paraspeechclap.data.sources import load_source


def test_crop_or_pad_reference_semantics():
    rng = np.random.default_rng(0)
    w = np.arange(10, dtype=np.float32)
    starts = {int(crop_or_pad(w, 4, rng)[0][0]) for _ in range(300)}
    assert starts == set(range(7))  # uniform over [0, L - crop], both ends inclusive
    out, n = crop_or_pad(w[:3], 5, rng)
    assert out.tolist() == [0, 1, 2, 0, 0] and n == 3
    out, n = crop_or_pad(w[:3], 5, rng, pad=False)
    assert out.tolist() == [0, 1, 2] and n == 3
    assert crop_or_pad(w, 4, None)[0].tolist() == [0, 1, 2, 3]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    m = write_corpus(root, 8, seconds=(0.3, 1.2), bad={5: "missing", 6: "corrupt"})
    return load_source(m), root / "audio"


def test_training_item_normalised_then_cropped(corpus):
    table, root = corpus
    ds = ParaSpeechCapsDataset(table, audio_root=root, crop_seconds=0.5, tag_columns=["intrinsic_tags"])
    item = ds[(3, 42)]
    full = normalize_waveform(load_audio(root / table[3]["source"] / table[3]["relative_audio_path"]))
    assert len(item["audio"]) == 8000
    # the window is a slice of the normalised full clip
    if item["length"] == 8000 and len(full) > 8000:
        starts = [s for s in range(len(full) - 8000 + 1) if np.allclose(full[s:s + 8000], item["audio"])]
        assert starts
    assert ds[(3, 42)]["audio"].tolist() == item["audio"].tolist()  # same seed -> same crop + caption
    assert item["intrinsic_tags"] == ["husky"]
    assert ds[(1, 0)]["intrinsic_tags"] == ["calm"]  # " CALM " normalised


def test_short_clip_padding_and_mask(corpus):
    table, root = corpus
    lens = [len(load_audio(root / r["source"] / r["relative_audio_path"])) for r in (table[0], table[1])]
    ds = ParaSpeechCapsDataset(table, audio_root=root, crop_seconds=2.0)
    a, b = ds[(0, 1)], ds[(1, 2)]
    assert len(a["audio"]) == 32000 and a["length"] == lens[0]
    batch = collate([a, b])
    assert batch["audio"].shape == (2, 32000) and batch["audio_attention_mask"].all()  # reference: zeros count
    assert batch["audio_lengths"].tolist() == lens
    dsm = ParaSpeechCapsDataset(table, audio_root=root, crop_seconds=2.0, mask_padding=True)
    bm = collate([dsm[(0, 1)], dsm[(1, 2)]], mask_padding=True)
    assert bm["audio"].shape[1] == max(lens)
    assert bm["audio_attention_mask"].sum(1).tolist() == lens


def test_caption_choice(corpus):
    table, root = corpus
    ds = ParaSpeechCapsDataset(table, audio_root=root, crop_seconds=0.5)
    caps = {ds[(1, s)]["text"] for s in range(40)}
    assert caps == set(table[1]["text_description"])
    ev = ParaSpeechCapsDataset(table, audio_root=root, train=False)
    assert {ev[1]["text"] for _ in range(5)} == {table[1]["text_description"][0]}
    assert len(ev[3]["audio"]) == ev[3]["length"]  # evaluation: the full clip


def test_bad_audio_reported_not_raised(corpus, caplog):
    table, root = corpus
    ds = ParaSpeechCapsDataset(table, audio_root=root, crop_seconds=0.5)
    missing, corrupt = ds[(5, 0)], ds[(6, 0)]
    assert "error" in missing and missing["path"].endswith("utt005.wav") and "not found" in missing["error"]
    assert "error" in corrupt and "utt006.wav" in corrupt["path"]
    batch = collate([ds[(4, 0)], missing, corrupt])
    assert batch["size"] == 1 and len(batch["errors"]) == 2
    assert collate([missing])["size"] == 0
    # through a DataLoader with workers: no worker crash
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate)
    got = list(loader)
    assert sum(b["size"] for b in got) == 6 and sum(len(b["errors"]) for b in got) == 2
