"""kernels/position_bias.py: the cached relative-position bias equals the stock one and follows the weights."""
from __future__ import annotations

import torch

from paraspeechclap.kernels.position_bias import relative_position_bias


def test_cached_position_bias_follows_the_weights(tiny_model_factory):
    """The cached bias (fp32: the T x T tensor; bf16 on CPU: the flipped view) is rebuilt when the embedding
    weights change in place, and equals the stock bias of the new weights (read back in key order)."""
    model = tiny_model_factory()
    layer = next(m for m in model.audio_branch.base.modules()
                 if type(m).__name__ == "WavLMAttention" and hasattr(m, "rel_attn_embed"))
    length = 23
    for dtype in (torch.float32, torch.bfloat16):
        layer.to(dtype)
        with torch.no_grad():
            first = relative_position_bias(layer, length)
            assert relative_position_bias(layer, length) is first
            layer.rel_attn_embed.weight.mul_(2.0)
            second = relative_position_bias(layer, length)
            stock = layer.compute_bias(length, length)
        assert second is not first
        in_order = second.flip(-1) if getattr(second, "_keys_flipped", False) else second
        assert getattr(second, "_keys_flipped", False) == (dtype == torch.bfloat16)
        torch.testing.assert_close(in_order.float(), stock.view_as(in_order).float(), atol=0, rtol=0)
