"""fast.py's drop-in forwards keep the maths of the modules they replace: the copy-free feature encoder (fp32 within
1e-5, in blocks of frames too, gradients too), the oneDNN linear layers (fp32 within 1e-5; F.linear whenever
gradients are on), the unfused bf16 CPU attention (against fp32 attention, within bf16's stated tolerance) and the
bf16 attention layer with its keys in reverse order, by either kernel."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import paraspeechclap.fast as fast_module
from paraspeechclap.fast import _FAST_FORWARDS, _bf16_cpu_attention, use_fast_paths, use_stock_paths


def _feature_encoder(model):
    return model.audio_branch.base.feature_extractor


def test_fast_feature_encoder_matches_the_stock_conv_layers(tiny_model_factory):
    model = tiny_model_factory()
    encoder = _feature_encoder(model)
    waves = torch.from_numpy(np.random.default_rng(0).standard_normal((3, 12000)).astype(np.float32) * 0.1)
    with torch.no_grad():
        fast = encoder(waves)
        restored = use_stock_paths(model)
        assert fast_forwards(model) == 0
        stock = encoder(waves)
    assert fast.shape == stock.shape
    torch.testing.assert_close(fast, stock, atol=1e-5, rtol=1e-5)
    switched = use_fast_paths(model.audio_branch.base)
    # the fixture tower: 2 attention layers, 3 conv layers and their encoder, 1 positional conv
    assert (switched["attention"], switched["feature_encoder"], switched["positional_conv"]) == (2, 4, 1)
    assert sum(switched.values()) + sum(use_fast_paths(model.text_branch.base).values()) == restored


def test_feature_encoder_in_blocks_of_frames_matches_the_stock_conv_layers(tiny_model_factory, monkeypatch):
    """Without gradients the conv layers run block by block of output frames; blocks of 7 frames (an uneven last
    block in every layer, several rows) give the stock layers' output within 1e-5."""
    model = tiny_model_factory()
    encoder = _feature_encoder(model)
    waves = torch.from_numpy(np.random.default_rng(3).standard_normal((2, 9001)).astype(np.float32) * 0.1)
    monkeypatch.setattr(fast_module, "CONV_CHUNK_ROWS", 7)
    with torch.no_grad():
        blocked = encoder(waves)
        for conv in (m.conv for m in encoder.modules() if hasattr(m, "conv")):
            conv.weight.mul_(1.5)  # the kernels in window order are cached: they must follow in-place changes
        blocked_changed = encoder(waves)
        use_stock_paths(model)
        stock_changed = encoder(waves)
        for conv in (m.conv for m in encoder.modules() if hasattr(m, "conv")):
            conv.weight.div_(1.5)
        stock = encoder(waves)
    torch.testing.assert_close(blocked, stock, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(blocked_changed, stock_changed, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(blocked_changed, blocked, atol=1e-3)


def test_feature_encoder_layers_in_between_reuse_scratch_and_the_output_is_the_callers(tiny_model_factory):
    """Without gradients the conv layers before the last write into two per-thread scratch tensors (and copy their
    window rows into a third), reused by the next call; the encoder's output is a new tensor that a later call does
    not overwrite; ``release_scratch`` lets them all go."""
    model = tiny_model_factory()
    encoder = _feature_encoder(model)
    rng = np.random.default_rng(4)
    first_wave, second_wave = (torch.from_numpy(rng.standard_normal((1, 8000)).astype(np.float32) * 0.1)
                               for _ in range(2))
    fast_module.release_scratch()
    with torch.no_grad():
        first = encoder(first_wave)
        slots = {name: held[1].data_ptr() for name, held in vars(fast_module._SCRATCH).items()}
        kept = first.clone()
        second = encoder(second_wave)
        again = {name: held[1].data_ptr() for name, held in vars(fast_module._SCRATCH).items()}
    assert {"conv_out0", "conv_out1", "conv_block"} <= set(slots) and again == slots
    assert torch.equal(first, kept) and not torch.allclose(first, second)
    assert all(first.data_ptr() != ptr for ptr in slots.values())
    fast_module.release_scratch()
    assert not vars(fast_module._SCRATCH)


def fast_forwards(model) -> int:
    return sum(getattr(vars(m).get("forward"), "__func__", None) in _FAST_FORWARDS for m in model.modules())


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


def test_onednn_linear_layers_equal_torch_linear_and_keep_gradients(tiny_model_factory):
    """fp32 through oneDNN within 1e-5 of F.linear (stock) on the whole fixture model; with gradients enabled the
    layers take F.linear, so training gets real gradients."""
    import torch.nn as nn

    model = tiny_model_factory()
    linear = next(m for m in model.audio_branch.base.modules() if type(m) is nn.Linear)
    assert getattr(vars(linear).get("forward"), "__func__", None) in _FAST_FORWARDS
    x = torch.randn(3, 5, linear.in_features, requires_grad=True)
    y = linear(x)
    y.sum().backward()
    assert x.grad is not None and torch.allclose(y, F.linear(x, linear.weight, linear.bias))
    waves = [(np.random.default_rng(2).standard_normal(9000).astype(np.float32) * 0.1, 16000)]
    fast = model.embed_audio(waves)
    use_stock_paths(model)
    np.testing.assert_allclose(model.embed_audio(waves), fast, atol=1e-5)


@pytest.mark.parametrize("amx", [False, True])
def test_bf16_attention_layer_with_reversed_keys_is_fp32_attention_within_bf16_tolerance(tiny_model_factory,
                                                                                         monkeypatch, amx):
    """The first attention layer of the fixture tower in bf16 without gradients (keys reversed, the bias a strided
    view of its 2T-1 values, the gated bias in the per-thread scratch tensor) against the same layer in fp32 (keys
    in order): the unfused kernel (CPUs without AMX) and SDPA (with AMX), both forced here. Stated tolerance: max
    <= 0.05 and mean <= 2e-3 of the output's scale; padded keys get no weight; a second length reuses nothing."""
    monkeypatch.setattr(fast_module, "cpu_has_amx", lambda: amx)
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


def test_cached_position_bias_follows_the_weights(tiny_model_factory):
    """The cached bias (fp32: the T x T tensor; bf16 on CPU: the flipped view) is rebuilt when the embedding
    weights change in place, and equals the stock bias of the new weights (read back in key order)."""
    from paraspeechclap.fast import _relative_position_bias

    model = tiny_model_factory()
    layer = next(m for m in model.audio_branch.base.modules()
                 if type(m).__name__ == "WavLMAttention" and hasattr(m, "rel_attn_embed"))
    length = 23
    for dtype in (torch.float32, torch.bfloat16):
        layer.to(dtype)
        with torch.no_grad():
            first = _relative_position_bias(layer, length)
            assert _relative_position_bias(layer, length) is first
            layer.rel_attn_embed.weight.mul_(2.0)
            second = _relative_position_bias(layer, length)
            stock = layer.compute_bias(length, length)
        assert second is not first
        in_order = second.flip(-1) if getattr(second, "_keys_flipped", False) else second
        assert getattr(second, "_keys_flipped", False) == (dtype == torch.bfloat16)
        torch.testing.assert_close(in_order.float(), stock.view_as(in_order).float(), atol=0, rtol=0)


@pytest.mark.parametrize("capability, env, onednn", [("AVX512", None, True), ("AVX2", None, False),
                                                     ("AVX2", "onednn", True), ("AVX512", "torch", False)])
def test_fp32_linear_backend_follows_the_isa_or_the_environment(monkeypatch, tiny_model_factory, capability, env,
                                                                onednn):
    """fp32 linear layers go through oneDNN only where torch's kernels use AVX-512 (or when the environment says
    so); both backends give the stock layers' answers within 1e-5, GELU fused or in place."""
    if not fast_module.onednn_linear_supports(torch.float32):
        pytest.skip("torch has no oneDNN linear op here")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    if env is None:
        monkeypatch.delenv(fast_module.LINEAR_BACKEND_ENV, raising=False)
    else:
        monkeypatch.setenv(fast_module.LINEAR_BACKEND_ENV, env)
    fast_module.onednn_linear_wins.cache_clear()
    try:
        assert fast_module.onednn_linear_wins(torch.float32) is onednn
        calls = []
        pointwise = torch.ops.mkldnn._linear_pointwise
        monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", lambda *a: calls.append(1) or pointwise(*a))
        x, weight, bias = torch.randn(7, 16), torch.randn(32, 16), torch.randn(32)
        with torch.no_grad():
            for gelu in (False, True):
                got = fast_module._linear_weights(x, weight, bias, gelu)
                want = F.linear(x, weight, bias)
                torch.testing.assert_close(got, F.gelu(want) if gelu else want, atol=1e-5, rtol=1e-5)
        assert bool(calls) is onednn
        model = tiny_model_factory()
        waves = [(np.random.default_rng(5).standard_normal(9000).astype(np.float32) * 0.1, 16000)]
        fast = model.embed_audio(waves)
        use_stock_paths(model)
        np.testing.assert_allclose(model.embed_audio(waves), fast, atol=1e-5)
    finally:
        fast_module.onednn_linear_wins.cache_clear()


def test_an_unknown_linear_backend_is_refused(monkeypatch):
    monkeypatch.setenv(fast_module.LINEAR_BACKEND_ENV, "mkl")
    fast_module.onednn_linear_wins.cache_clear()
    try:
        if fast_module.onednn_linear_supports(torch.float32):
            with pytest.raises(ValueError, match="onednn, torch or auto"):
                fast_module.onednn_linear_wins(torch.float32)
    finally:
        fast_module.onednn_linear_wins.cache_clear()


def test_positional_conv_caches_its_weight_normed_kernel_and_follows_the_weights(tiny_model_factory):
    """Without gradients the positional conv embedding computes its weight-normed kernel once per version of its
    parameters: the same output as the stock module, before and after an in-place change; with gradients it is
    the stock module (gradients reach both parameters)."""
    model = tiny_model_factory()
    module = next(m for m in model.audio_branch.base.modules() if type(m).__name__.endswith("PositionalConvEmbedding"))
    assert getattr(vars(module).get("forward"), "__func__", None) is fast_module._positional_conv_forward
    stock = type(module).forward
    hidden = torch.randn(2, 37, module.conv.in_channels)
    with torch.no_grad():
        first = module(hidden)
        cached = module.conv._normed_weight[1]
        assert module(hidden) is not None and module.conv._normed_weight[1] is cached  # not recomputed
        torch.testing.assert_close(first, stock(module, hidden), atol=0, rtol=0)
        module.conv.parametrizations.weight.original1.mul_(-0.5)
        changed = module(hidden)
        torch.testing.assert_close(changed, stock(module, hidden), atol=0, rtol=0)
    assert not torch.allclose(changed, first)
    module(hidden).sum().backward()
    originals = fast_module._weight_norm_originals(module.conv)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in originals)


def test_malloc_is_tuned_once_on_glibc_and_left_alone_when_asked(monkeypatch):
    """``keep_freed_blocks`` sets glibc's thresholds (True on Linux with glibc, as here) and does nothing with
    PARASPEECHCLAP_MALLOC=0."""
    import platform

    fast_module.keep_freed_blocks.cache_clear()
    try:
        monkeypatch.setenv(fast_module.MALLOC_ENV, "0")
        assert fast_module.keep_freed_blocks() is False
        fast_module.keep_freed_blocks.cache_clear()
        monkeypatch.delenv(fast_module.MALLOC_ENV)
        glibc = platform.libc_ver()[0] == "glibc"
        assert fast_module.keep_freed_blocks() is glibc
    finally:
        fast_module.keep_freed_blocks.cache_clear()


def test_feature_encoder_lets_large_scratch_go_before_the_transformer(tiny_model_factory, monkeypatch):
    """Layer outputs over CONV_SCRATCH_KEEP_BYTES together are not held after the encoder (long windows keep the
    peak they had); under it they are."""
    model = tiny_model_factory()
    encoder = _feature_encoder(model)
    wave = torch.from_numpy(np.random.default_rng(6).standard_normal((1, 8000)).astype(np.float32) * 0.1)
    for keep, held in ((1 << 30, True), (1024, False)):
        monkeypatch.setattr(fast_module, "CONV_SCRATCH_KEEP_BYTES", keep)
        fast_module.release_scratch()
        with torch.no_grad():
            out = encoder(wave)
        assert (fast_module._scratch_bytes("conv_out0") > 0) is held
        assert (fast_module._scratch_bytes("conv_out1") > 0) is held
        assert out.shape[-1] > 0
    fast_module.release_scratch()
