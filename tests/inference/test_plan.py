"""Windows bounded by the encoder's own attention cost; batches bounded in rows, frames and attention bytes."""
from __future__ import annotations

import pytest
from transformers import WavLMConfig, WavLMModel

from paraspeechclap.inference.plan import EncoderCost, Window, plan_batches, window_size, window_spans


def large_like_cost() -> EncoderCost:
    """WavLM-Large's conv stack (stride 320) and 16 heads, with one tiny layer (only the cost rule matters)."""
    config = WavLMConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=16, intermediate_size=32,
                         conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    return EncoderCost.of(WavLMModel(config))


def test_paper_model_keeps_its_30_second_windows():
    cost = large_like_cost()
    assert cost.frames(30 * 16000) == 1499
    assert window_size(cost, 30.0, 5.0, 16000) == (480000, 80000)


def test_stride_20_tower_gets_windows_bounded_by_attention(tiny_model):
    cost = tiny_model.engine.cost
    assert cost.frames(30 * 16000) == 23999  # 30 s would be 24k frames: gigabytes of attention per window
    window, overlap = window_size(cost, 30.0, 5.0, 16000)
    assert window < 30 * 16000 and cost.attention_bytes(cost.frames(window)) <= 512 * 2**20
    assert cost.attention_bytes(cost.frames(window + 400)) > 512 * 2**20  # the largest window that fits
    assert overlap == int(80000 * window / 480000)


@pytest.mark.parametrize("window, overlap", [(0.0, 0.0), (-1.0, 0.0), (10.0, 10.0), (10.0, -1.0)])
def test_configuration_is_validated(tiny_model, window, overlap):
    with pytest.raises(ValueError):
        window_size(tiny_model.engine.cost, window, overlap, 16000)


def test_window_spans_cover_and_align_to_the_end():
    assert window_spans(100, 200, 20) == [(0, 100)]
    spans = window_spans(1000, 300, 50)
    assert spans[0] == (0, 300) and spans[-1] == (700, 1000)
    assert all(e - s == 300 for s, e in spans)
    with pytest.raises(ValueError):
        window_spans(1000, 0, 0)


def test_batches_group_similar_lengths_within_every_bound():
    cost = large_like_cost()
    lengths = [16000 * s for s in (30, 30, 30, 12, 11, 10, 3, 2, 2, 1)]
    windows = [Window(i, 0, n) for i, n in enumerate(lengths)]
    batches = plan_batches(windows, cost, max_clips=4, max_frames=cost.frames(30 * 16000))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        longest = max(cost.frames(lengths[i]) for i in batch)
        assert len(batch) <= 4 and longest * len(batch) <= cost.frames(30 * 16000)
        assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)
    assert batches[:3] == [[0], [1], [2]]  # a full window fills a batch alone
    assert batches[3] == [3, 4]            # 12 s + 11 s pad to 24 s; a third would pass 30 s
