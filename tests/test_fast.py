"""fast.py's drop-in forwards keep the maths of the modules they replace: the copy-free feature encoder (fp32 within
1e-5, gradients too) and the unfused bf16 CPU attention (against fp32 attention, within bf16's stated tolerance)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from paraspeechclap.fast import _bf16_cpu_attention, use_fast_paths, use_stock_paths


def _feature_encoder(model):
    return model.audio_branch.base.feature_extractor


def test_fast_feature_encoder_matches_the_stock_conv_layers(tiny_model_factory):
    model = tiny_model_factory()
    encoder = _feature_encoder(model)
    waves = torch.from_numpy(np.random.default_rng(0).standard_normal((3, 12000)).astype(np.float32) * 0.1)
    with torch.no_grad():
        fast = encoder(waves)
        assert use_stock_paths(model) == 2 + 3  # attention layers, conv layers of the fixture tower
        stock = encoder(waves)
    assert fast.shape == stock.shape
    torch.testing.assert_close(fast, stock, atol=1e-5, rtol=1e-5)
    assert use_fast_paths(model) == {"attention": 2, "feature_encoder": 3}


def test_fast_feature_encoder_gradients_match_the_stock_ones(tiny_model_factory):
    model = tiny_model_factory()
    encoder = _feature_encoder(model).train()
    waves = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 8000)).astype(np.float32) * 0.1)

    def grads():
        encoder.zero_grad()
        for p in encoder.parameters():
            p.requires_grad_(True)
        encoder(waves).square().mean().backward()
        return [p.grad.clone() for p in encoder.parameters()]

    fast = grads()
    use_stock_paths(model)
    stock = grads()
    for a, b in zip(fast, stock):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


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
    got = _bf16_cpu_attention(*(x.bfloat16() for x in (q, k, v, gate, bias)), mask).float()
    error = (got - exact).abs()
    assert error.max() <= 0.05 and error.mean() <= 2e-3, (error.max(), error.mean())
    v_changed = v.clone()
    v_changed[1, :, 60:] += 100.0  # values behind the mask must not leak into the output
    again = _bf16_cpu_attention(*(x.bfloat16() for x in (q, k, v_changed, gate, bias)), mask).float()
    assert torch.equal(again[1], got[1])
