"""kernels/conv.py: the copy-free feature encoder keeps the stock conv layers' maths (fp32 within 1e-5, in blocks of
frames too, gradients too), reuses its scratch, and the positional conv's cached kernel follows the weights."""
from __future__ import annotations

import numpy as np
import torch

import paraspeechclap.kernels.conv as conv_module
import paraspeechclap.kernels.scratch as scratch_module
from paraspeechclap.kernels.switch import FAST_FORWARDS, use_fast_paths, use_stock_paths


def _feature_encoder(model):
    return model.audio_branch.base.feature_extractor


def fast_forwards(model) -> int:
    return sum(getattr(vars(m).get("forward"), "__func__", None) in FAST_FORWARDS for m in model.modules())


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
    monkeypatch.setattr(conv_module, "CONV_CHUNK_ROWS", 7)
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
    scratch_module.release_scratch()
    with torch.no_grad():
        first = encoder(first_wave)
        slots = {name: held[1].data_ptr() for name, held in vars(scratch_module._SCRATCH).items()}
        kept = first.clone()
        second = encoder(second_wave)
        again = {name: held[1].data_ptr() for name, held in vars(scratch_module._SCRATCH).items()}
    assert {"conv_out0", "conv_out1", "conv_block"} <= set(slots) and again == slots
    assert torch.equal(first, kept) and not torch.allclose(first, second)
    assert all(first.data_ptr() != ptr for ptr in slots.values())
    scratch_module.release_scratch()
    assert not vars(scratch_module._SCRATCH)


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


def test_positional_conv_caches_its_weight_normed_kernel_and_follows_the_weights(tiny_model_factory):
    """Without gradients the positional conv embedding computes its weight-normed kernel once per version of its
    parameters: the same output as the stock module, before and after an in-place change; with gradients it is
    the stock module (gradients reach both parameters)."""
    model = tiny_model_factory()
    module = next(m for m in model.audio_branch.base.modules() if type(m).__name__.endswith("PositionalConvEmbedding"))
    assert getattr(vars(module).get("forward"), "__func__", None) is conv_module.positional_conv_forward
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
    originals = conv_module.weight_norm_originals(module.conv)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in originals)


def test_feature_encoder_lets_large_scratch_go_before_the_transformer(tiny_model_factory, monkeypatch):
    """Layer outputs over CONV_SCRATCH_KEEP_BYTES together are not held after the encoder (long windows keep the
    peak they had); under it they are."""
    model = tiny_model_factory()
    encoder = _feature_encoder(model)
    wave = torch.from_numpy(np.random.default_rng(6).standard_normal((1, 8000)).astype(np.float32) * 0.1)
    for keep, held in ((1 << 30, True), (1024, False)):
        monkeypatch.setattr(conv_module, "CONV_SCRATCH_KEEP_BYTES", keep)
        scratch_module.release_scratch()
        with torch.no_grad():
            out = encoder(wave)
        assert (scratch_module.scratch_bytes("conv_out0") > 0) is held
        assert (scratch_module.scratch_bytes("conv_out1") > 0) is held
        assert out.shape[-1] > 0
    scratch_module.release_scratch()
