"""kernels/attention.py: the unfused bf16 CPU attention (against fp32 attention, within bf16's stated tolerance) and
the bf16 attention layer with its keys in reverse order, by either kernel."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import paraspeechclap.kernels.cpu as cpu_module
from paraspeechclap.kernels.attention import bf16_cpu_attention


def _exact_attention(q, k, v, gate, bias, mask):
    full = (gate * bias).expand(q.shape[0], -1, -1, -1).clone()
    if mask is not None:
        full.masked_fill_(mask.ne(1)[:, None, None, :], float("-inf"))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=full)


def test_bf16_cpu_attention_is_fp32_attention_within_bf16_tolerance():
    """Stated tolerance: on unit-variance inputs the outputs differ from fp32 by <= 0.05 at most and <= 2e-3 on
    average (SDPA's fused bf16 kernel: ~0.004 / 2e-4); masked keys get no weight."""
    torch.manual_seed(0)
    batch, heads, length, dim = 2, 4, 97, 32
    q, k, v = (torch.randn(batch, heads, length, dim) for _ in range(3))
    # the engine's layout: projections are [B, T, heads, dim] transposed into [B, heads, T, dim] views
    q, k, v = (x.transpose(1, 2).contiguous().transpose(1, 2) for x in (q, k, v))
    gate = torch.rand(batch, heads, length, 1) + 1.0
    bias = torch.randn(1, heads, length, length)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, 60:] = 0
    exact = _exact_attention(q, k, v, gate, bias, mask)
    got = bf16_cpu_attention(*(x.bfloat16() for x in (q, k, v, gate, bias)), mask).float()
    error = (got - exact).abs()
    assert error.max() <= 0.05 and error.mean() <= 2e-3, (error.max(), error.mean())
    v_changed = v.clone()
    v_changed[1, :, 60:] += 100.0  # values behind the mask must not leak into the output
    again = bf16_cpu_attention(*(x.bfloat16() for x in (q, k, v_changed, gate, bias)), mask).float()
    assert torch.equal(again[1], got[1])


@pytest.mark.parametrize("amx", [False, True])
def test_bf16_attention_layer_with_reversed_keys_is_fp32_attention_within_bf16_tolerance(tiny_model_factory,
                                                                                         monkeypatch, amx):
    """The first attention layer of the fixture tower in bf16 without gradients (keys reversed, the bias a strided
    view of its 2T-1 values, the gated bias in the per-thread scratch tensor) against the same layer in fp32 (keys
    in order): the unfused kernel (CPUs without AMX) and SDPA (with AMX), both forced here. Stated tolerance: max
    <= 0.05 and mean <= 2e-3 of the output's scale; padded keys get no weight; a second length reuses nothing."""
    monkeypatch.setattr(cpu_module, "cpu_has_amx", lambda: amx)
    model = tiny_model_factory()
    layer = next(m for m in model.audio_branch.base.modules()
                 if type(m).__name__ == "WavLMAttention" and hasattr(m, "rel_attn_embed"))
    torch.manual_seed(0)
    for length in (61, 40):
        hidden = torch.randn(2, length, layer.embed_dim)
        mask = torch.ones(2, length, dtype=torch.long)
        mask[1, length // 2:] = 0
        with torch.no_grad():
            exact, _, bias32 = layer(hidden, attention_mask=mask)
            assert not getattr(bias32, "_keys_flipped", False)  # fp32 keeps the keys in order
            layer.to(torch.bfloat16)
            got, _, bias16 = layer(hidden.bfloat16(), attention_mask=mask)
            moved = hidden.clone()
            moved[1, length // 2:] += 100.0  # hidden states of padded frames: their keys and values are masked
            again, _, _ = layer(moved.bfloat16(), attention_mask=mask)
            layer.to(torch.float32)
        assert bias16._keys_flipped and bias16.shape == (1, layer.num_heads, length, length)
        scale = exact.abs().max()
        error = (got.float() - exact).abs() / scale
        assert error.max() <= 0.05 and error.mean() <= 2e-3, (length, amx, error.max(), error.mean())
        torch.testing.assert_close(again[1, :length // 2], got[1, :length // 2], atol=0, rtol=0)
