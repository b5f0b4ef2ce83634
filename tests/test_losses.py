"""Loss parity with the reference fixture (clip_loss, multitask_total, multitask_classification)."""
from __future__ import annotations

import pytest
import torch

from paraspeechclap.losses import ClassificationHead, classification_loss, clip_loss, multi_hot, multitask_loss


@pytest.fixture(scope="module")
def golden(golden):
    return golden, golden["json"]


def _rel(a, b):
    return abs(float(a) - float(b)) / max(abs(float(b)), 1e-12)


def test_clip_loss_parity(golden):
    d, _ = golden
    audio = torch.from_numpy(d["audio_proj_batch"]).double()
    text = torch.from_numpy(d["text_proj"]).double()
    loss = clip_loss(text, audio, float(d["logit_scale"]))
    assert _rel(loss, d["clip_loss"]) < 1e-5
    # float32 as well
    loss32 = clip_loss(text.float(), audio.float(), torch.tensor(float(d["logit_scale"])))
    assert _rel(loss32, d["clip_loss"]) < 1e-5


def test_multitask_parity(golden, tiny_model):
    d, meta = golden
    with torch.no_grad():  # the tag prompts through the fixture model's text tower (eval mode, unnormalised)
        tokens = {"input_ids": torch.from_numpy(d["tag_input_ids"]),
                  "attention_mask": torch.from_numpy(d["tag_attention_mask"])}
        tag_emb = tiny_model.encode_text(tokens, normalize=False).double()
    audio = torch.from_numpy(d["audio_proj_batch"]).double()
    text = torch.from_numpy(d["text_proj"]).double()
    vocab = meta["tag_vocab"]
    head = ClassificationHead(tag_emb, meta["batch_tags"], {t: i for i, t in enumerate(vocab)}, name="intrinsic_tags")
    out = multitask_loss(text, audio, float(d["logit_scale"]), [head])
    assert _rel(out["contrastive_loss"], d["clip_loss"]) < 1e-5
    assert _rel(out["classification_loss"], d["multitask_classification"]) < 1e-5
    assert _rel(out["total_loss"], d["multitask_total"]) < 1e-5
    assert out["valid_intrinsic_tags"] == 3
    # heads are averaged, not summed
    out2 = multitask_loss(text, audio, float(d["logit_scale"]), [head, head])
    assert _rel(out2["classification_loss"], d["multitask_classification"]) < 1e-5
    # weight
    out3 = multitask_loss(text, audio, float(d["logit_scale"]), [head], classification_weight=0.5)
    assert _rel(out3["total_loss"], float(d["clip_loss"]) + 0.5 * float(d["multitask_classification"])) < 1e-5


def test_classification_no_valid_rows_is_zero_with_graph():
    a = torch.randn(3, 4, requires_grad=True)
    t = torch.randn(2, 4, requires_grad=True)
    loss, n = classification_loss(a, ClassificationHead(t, [[], [], []], {"x": 0, "y": 1}))
    assert n == 0 and float(loss) == 0.0
    loss.backward()
    assert a.grad is not None


def test_multi_hot_unknown_tag():
    with pytest.raises(KeyError):
        multi_hot([["zzz"]], {"a": 0})
    assert multi_hot([["a"], []], {"a": 0, "b": 1}).tolist() == [[1, 0], [0, 0]]


def test_gather_without_process_group_is_identity():
    from paraspeechclap.losses import gather_features, gather_objects

    x = torch.randn(2, 3)
    assert gather_features(x) is x
    assert gather_objects([1]) == [[1]]
