"""fast.py's drop-in forwards keep the maths of the modules they replace: the copy-free feature encoder (fp32 within
1e-5, gradients too)."""
from __future__ import annotations

import numpy as np
import torch

from paraspeechclap.fast import use_fast_paths, use_stock_paths


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
