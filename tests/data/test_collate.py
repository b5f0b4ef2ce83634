"""Batch collation: concatenating two collated batches (the trainer adds order groups to a batch this way)."""
import numpy as np
import torch

from paraspeechclap.data.collate import collate, concat


def _item(n: int, i: int, text: str | None = "a caption") -> dict:
    item = {"audio": np.full(n, float(i), dtype=np.float32), "length": n, "path": f"p{i}", "index": i,
            "intrinsic_tags": [f"t{i}"]}
    if text is not None:
        item["text"] = f"{text} {i}"
    return item


def test_concat_pads_to_the_longer_and_keeps_rows_in_order():
    first = collate([_item(3, 0), _item(5, 1)], mask_padding=True, tag_columns=["intrinsic_tags"])
    second = collate([_item(7, 2), {"error": "unreadable", "path": "bad", "index": 9}], mask_padding=True,
                     tag_columns=["intrinsic_tags"])
    both = concat(first, second)
    assert both["size"] == 3 and both["audio"].shape == (3, 7)
    assert both["audio_attention_mask"].sum(1).tolist() == [3, 5, 7]
    assert both["audio_lengths"].tolist() == [3, 5, 7]
    assert torch.equal(both["audio"][2], torch.full((7,), 2.0))
    assert both["text"] == ["a caption 0", "a caption 1", "a caption 2"]
    assert both["tags"]["intrinsic_tags"] == [["t0"], ["t1"], ["t2"]]
    assert both["indices"] == [0, 1, 2] and both["errors"] == [("bad", "unreadable")]


def test_concat_audio_only_keeps_the_first_batch_captions_and_tags():
    first = collate([_item(4, 0)], tag_columns=["intrinsic_tags"])
    second = collate([_item(2, 1), _item(6, 2)], tag_columns=["intrinsic_tags"])
    both = concat(first, second, audio_only=True)
    assert both["size"] == 3 and both["audio"].shape == (3, 6)
    assert both["text"] == ["a caption 0"] and both["tags"]["intrinsic_tags"] == [["t0"]]
    empty = collate([{"error": "x", "path": "q", "index": 3}])
    assert concat(first, empty)["size"] == 1 and concat(first, empty)["errors"] == [("q", "x")]
    assert concat(empty, second, audio_only=True)["size"] == 0  # no captions: nothing to train on
