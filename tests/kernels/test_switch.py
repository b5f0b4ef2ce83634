"""kernels/switch.py: the fast paths keep the answers of the reference (correctness only, no timings). Every model here
asks for its precision explicitly, so the tests mean the same on CPUs with and without native bf16.

On a paper-shaped but shallow random speech tower (small_tower.py), against WavLM's stock attention in fp32, one clip
at a time, no mask:
* fp32, SDPA attention and the copy-free conv layers, batched with masks through ``embed_audio``: within 2e-5;
* bf16 (weights converted once): centred cosine >= 0.99 and every clip's nearest reference neighbour kept (also on
  the reference-tiny fixture; the paper-shaped tower only where bf16 is native, emulated bf16 takes minutes there).
"Centred" = after subtracting the reference's mean embedding: with random weights all raw embeddings point nearly
the same way (raw cosine ~0.99 between different clips), so only the centred part tells clips apart.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from small_tower import centred, small_model

from paraspeechclap.kernels.switch import FAST_PATHS, use_fast_paths, use_stock_paths


def test_fp32_sdpa_batched_with_masks_matches_stock_attention_one_clip_at_a_time(reference):
    waves, expected, _ = reference
    model = small_model("fp32")
    assert model.precision == "fp32"
    for batch_size in (1, 8):
        got = model.embed_audio([(w, 16000) for w in waves], batch_size=batch_size, max_batch_seconds=60)
        np.testing.assert_allclose(got, expected, atol=2e-5)


def native_bf16_cpu() -> bool:
    from paraspeechclap.inference.precision import native_bf16

    return native_bf16(torch.device("cpu"))


@pytest.mark.parametrize("tower", ["tiny", "small"])
def test_bf16_keeps_centred_embeddings_and_neighbours(request, tower):
    """bf16 weights and activations (8 mantissa bits): the stated tolerance is the issue's accuracy bar, centred
    cosine >= 0.99 with every nearest neighbour kept; raw cosines stay above 0.999."""
    if tower == "small":
        if not native_bf16_cpu():
            pytest.skip("bf16 is emulated on this CPU: the paper-shaped tower would take minutes (the tiny one runs)")
        waves, expected, _ = request.getfixturevalue("reference")
        model = small_model("bf16")
    else:
        from reference_fixture import load_tiny

        waves, expected = request.getfixturevalue("tiny_reference")
        model = load_tiny(precision="bf16")
    assert model.precision == "bf16"
    assert next(model.audio_branch.base.parameters()).dtype == torch.bfloat16
    assert model.audio_projection.linear1.weight.dtype == torch.float32  # the heads stay fp32
    got = model.embed_audio([(w, 16000) for w in waves], max_batch_seconds=60)
    assert got.dtype == np.float32 and np.isfinite(got).all()
    cos, kept = centred(expected, got)
    assert cos >= 0.99 and kept, cos
    assert (got * expected).sum(axis=1).min() >= 0.999




def test_fast_paths_switch_by_kind_and_back(tiny_model_factory):
    """Each kind switches only its own modules; the stock paths restore exactly what was switched; an unknown kind
    is refused by name."""
    model = tiny_model_factory()
    base = model.audio_branch.base
    switched = use_stock_paths(base)
    assert switched > 0 and use_stock_paths(base) == 0
    counts = {kind: use_fast_paths(base, (kind,))[kind] for kind in FAST_PATHS}
    assert counts["attention"] == 2 and counts["feature_encoder"] == 4 and counts["positional_conv"] == 1
    assert sum(counts.values()) == switched == use_stock_paths(base)
    with pytest.raises(ValueError, match="unknown fast paths \\['sdpa'\\]"):
        use_fast_paths(base, ("sdpa",))
