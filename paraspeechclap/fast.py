"""Faster inference paths that keep the answers: SDPA attention for WavLM, int8 dynamic quantization."""
from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn


def _wavlm_sdpa_attention(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None,
                          gated_position_bias: torch.Tensor):
    """Drop-in for ``WavLMAttention.torch_multi_head_self_attention`` using fused scaled-dot-product attention.

    The stock version calls ``F.multi_head_attention_forward(need_weights=True)``, which materialises and averages
    the attention weights. Same maths: q/k/v projections, per-head gated relative position bias, key padding mask.
    """
    batch, length, _ = hidden_states.shape
    heads, head_dim = self.num_heads, self.head_dim

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.view(batch, length, heads, head_dim).transpose(1, 2)

    query = split(self.q_proj(hidden_states))
    key = split(self.k_proj(hidden_states))
    value = split(self.v_proj(hidden_states))
    bias = gated_position_bias.view(batch, heads, length, length).to(query.dtype)
    if attention_mask is not None:
        padding = attention_mask.ne(1)[:, None, None, :]
        bias = bias.masked_fill(padding, float("-inf"))
    output = F.scaled_dot_product_attention(query, key, value, attn_mask=bias,
                                            dropout_p=self.dropout if self.training else 0.0)
    output = output.transpose(1, 2).reshape(batch, length, heads * head_dim)
    return self.out_proj(output), None


def use_sdpa_attention(model: nn.Module) -> int:
    """Switch every WavLM attention module inside ``model`` to SDPA; returns how many were switched."""
    switched = 0
    for module in model.modules():
        if type(module).__name__ == "WavLMAttention" and hasattr(module, "torch_multi_head_self_attention"):
            module.torch_multi_head_self_attention = types.MethodType(_wavlm_sdpa_attention, module)
            switched += 1
    return switched


def quantize_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 quantization of the speech tower's ``nn.Linear`` layers (CPU only), in place.

    The text tower stays fp32: its embeddings are cached per string, so it is rarely the bottleneck, and int8
    moved text rankings far more than audio ones (BENCHMARKS.md).
    """
    from torch.ao.quantization import quantize_dynamic

    quantize_dynamic(model.audio_branch, {nn.Linear}, dtype=torch.qint8, inplace=True)
    return model
