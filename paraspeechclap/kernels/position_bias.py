"""WavLM's relative-position bias from its 2T-1 distinct distances, cached per length and weights version."""
from __future__ import annotations

import torch
from torch import nn

from .scratch import cached, weights_key


def toeplitz_bias(module: nn.Module, length: int) -> torch.Tensor:
    """Exactly ``module.compute_bias(T, T)`` as ``[1, heads, T, T]`` without the stock code's six T x T temporaries."""
    # the bias depends only on j - i: the 2T-1 distances' embeddings spread over T x T by one strided view and one copy
    values = distance_embeddings(module, torch.arange(-(length - 1), length))  # j - i
    heads = values.shape[0]
    rows = values.as_strided((heads, length, length), (2 * length - 1, 1, 1))  # rows[h, r, j] = values[h, r + j]
    return rows.flip(1)[None]  # bias[h, i, j] = values[h, (T - 1 - i) + j] = embedding of distance j - i


def distance_embeddings(module: nn.Module, distances: torch.Tensor) -> torch.Tensor:
    """``[heads, len(distances)]``: the bias of each relative distance ``j - i`` (its bucket's embedding)."""
    distances = distances.to(module.rel_attn_embed.weight.device)
    return module.rel_attn_embed(module._relative_positions_bucket(distances)).transpose(0, 1).contiguous()


def flipped_bias(module: nn.Module, length: int) -> torch.Tensor:
    """The bias for keys in reverse order, a strided view of 2T-1 values marked ``_keys_flipped`` (no T x T tensor)."""
    # flipped[h, i, j'] = bias[h, i, T - 1 - j'] depends on i + j' only
    values = distance_embeddings(module, torch.arange(length - 1, -length, -1))  # i + j' -> j - i
    heads, count = values.shape
    view = values.as_strided((1, heads, length, length), (heads * count, count, 1, 1))
    view._keys_flipped = True
    return view


def relative_position_bias(module: nn.Module, length: int) -> torch.Tensor:
    """The first layer's bias: flipped in bf16 on CPU without gradients, else in order; cached when no gradients flow."""
    weight = module.rel_attn_embed.weight
    if torch.is_grad_enabled() and weight.requires_grad:
        return toeplitz_bias(module, length)
    # building it costs more than a small tower's attention; GPUs keep the keys in order (measured on CPUs only)
    build = flipped_bias if weight.dtype != torch.float32 and weight.device.type == "cpu" else toeplitz_bias
    return cached(module, "_bias_cache", (length, *weights_key(weight)),
                  torch.inference_mode()(lambda: build(module, length)))
