"""kernels/linear.py: the oneDNN linear layers give torch's answers (fp32 within 1e-5; F.linear whenever gradients
are on), and the fp32 backend follows the ISA or the environment."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import paraspeechclap.kernels.linear as linear_module
from paraspeechclap.kernels.switch import FAST_FORWARDS, use_stock_paths


def test_onednn_linear_layers_equal_torch_linear_and_keep_gradients(tiny_model_factory):
    """fp32 through oneDNN within 1e-5 of F.linear (stock) on the whole fixture model; with gradients enabled the
    layers take F.linear, so training gets real gradients."""
    import torch.nn as nn

    model = tiny_model_factory()
    linear = next(m for m in model.audio_branch.base.modules() if type(m) is nn.Linear)
    assert getattr(vars(linear).get("forward"), "__func__", None) in FAST_FORWARDS
    x = torch.randn(3, 5, linear.in_features, requires_grad=True)
    y = linear(x)
    y.sum().backward()
    assert x.grad is not None and torch.allclose(y, F.linear(x, linear.weight, linear.bias))
    waves = [(np.random.default_rng(2).standard_normal(9000).astype(np.float32) * 0.1, 16000)]
    fast = model.embed_audio(waves)
    use_stock_paths(model)
    np.testing.assert_allclose(model.embed_audio(waves), fast, atol=1e-5)


@pytest.mark.parametrize("capability, env, onednn", [("AVX512", None, True), ("AVX2", None, False),
                                                     ("AVX2", "onednn", True), ("AVX512", "torch", False)])
def test_fp32_linear_backend_follows_the_isa_or_the_environment(monkeypatch, tiny_model_factory, capability, env,
                                                                onednn):
    """fp32 linear layers go through oneDNN only where torch's kernels use AVX-512 (or when the environment says
    so); both backends give the stock layers' answers within 1e-5, GELU fused or in place."""
    if not linear_module.onednn_linear_supports(torch.float32):
        pytest.skip("torch has no oneDNN linear op here")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    if env is None:
        monkeypatch.delenv(linear_module.LINEAR_BACKEND_ENV, raising=False)
    else:
        monkeypatch.setenv(linear_module.LINEAR_BACKEND_ENV, env)
    linear_module.onednn_linear_wins.cache_clear()
    try:
        assert linear_module.onednn_linear_wins(torch.float32) is onednn
        calls = []
        pointwise = torch.ops.mkldnn._linear_pointwise
        monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", lambda *a: calls.append(1) or pointwise(*a))
        x, weight, bias = torch.randn(7, 16), torch.randn(32, 16), torch.randn(32)
        with torch.no_grad():
            for gelu in (False, True):
                got = linear_module.linear_weights(x, weight, bias, gelu)
                want = F.linear(x, weight, bias)
                torch.testing.assert_close(got, F.gelu(want) if gelu else want, atol=1e-5, rtol=1e-5)
        assert bool(calls) is onednn
        model = tiny_model_factory()
        waves = [(np.random.default_rng(5).standard_normal(9000).astype(np.float32) * 0.1, 16000)]
        fast = model.embed_audio(waves)
        use_stock_paths(model)
        np.testing.assert_allclose(model.embed_audio(waves), fast, atol=1e-5)
    finally:
        linear_module.onednn_linear_wins.cache_clear()


def test_an_unknown_linear_backend_is_refused(monkeypatch):
    monkeypatch.setenv(linear_module.LINEAR_BACKEND_ENV, "mkl")
    linear_module.onednn_linear_wins.cache_clear()
    try:
        if linear_module.onednn_linear_supports(torch.float32):
            with pytest.raises(ValueError, match="onednn, torch or auto"):
                linear_module.onednn_linear_wins(torch.float32)
    finally:
        linear_module.onednn_linear_wins.cache_clear()
