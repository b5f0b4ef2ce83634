"""WavLM attention with one shared relative-position bias: SDPA, or in bf16 on CPUs without AMX two matmuls."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import cpu
from .position_bias import relative_position_bias
from .scratch import scratch


def wavlm_attention_forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                            position_bias: torch.Tensor | None = None, index: int = 0, **kwargs):
    """Drop-in for ``WavLMAttention.forward``: the bias built once, gated into one masked tensor, no weights averaged."""
    # without gradients in bf16 on CPU the keys come in reverse order (position_bias.flipped_bias): attention does not
    # depend on key order, only the summation order changes; fp32 keeps them in order, the path held to 1e-5
    batch, length, _ = hidden_states.shape
    heads, head_dim = self.num_heads, self.head_dim
    if position_bias is None:
        position_bias = relative_position_bias(self, length)
    shared = position_bias  # handed on to the next layer as it came (a view keeps its _keys_flipped mark)
    flipped = getattr(position_bias, "_keys_flipped", False)
    position_bias = position_bias.view(-1, heads, length, length)  # also accepts the stock [B * heads, T, T]

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.view(batch, length, heads, head_dim).transpose(1, 2)

    gate = _gate(self, hidden_states)
    query = split(self.q_proj(hidden_states))
    key = split(self.k_proj(hidden_states))
    value = split(self.v_proj(hidden_states))
    if flipped:
        key, value = key.flip(2), value.flip(2)
        attention_mask = None if attention_mask is None else attention_mask.flip(-1)
    if unfused_wins(query, self.training):
        output = bf16_cpu_attention(query, key, value, gate, position_bias, attention_mask)
    else:
        bias = gated_bias(gate, position_bias, query.dtype)  # [B, heads, T, T], the only full-size tensor
        if attention_mask is not None:
            bias.masked_fill_(attention_mask.ne(1)[:, None, None, :], float("-inf"))
        output = F.scaled_dot_product_attention(query, key, value, attn_mask=bias,
                                                dropout_p=self.dropout if self.training else 0.0)
    output = output.transpose(1, 2).reshape(batch, length, heads * head_dim)
    return self.out_proj(output), None, shared


def _gate(self, hidden_states: torch.Tensor) -> torch.Tensor:
    """WavLM's gru-style gate of each query frame, ``[B, heads, T, 1]``, from the contiguous per-head view."""
    batch, length, _ = hidden_states.shape
    heads, head_dim = self.num_heads, self.head_dim
    # the gate's linear layer acts per (frame, head): on the [B, T, heads, head_dim] view, no transposed copy
    projected = self.gru_rel_pos_linear(hidden_states.view(batch, length, heads, head_dim))
    projected = projected.view(batch, length, heads, 2, 4).sum(-1).transpose(1, 2)  # [B, heads, T, 2]
    gate_a, gate_b = torch.sigmoid(projected).chunk(2, dim=-1)
    return gate_a * (gate_b * self.gru_rel_pos_const - 1.0) + 2.0


def gated_bias(gate: torch.Tensor, position_bias: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``gate * position_bias`` in ``dtype``; without gradients in this thread's scratch, shared by all layers."""
    if torch.is_grad_enabled():
        return (gate * position_bias).to(dtype)
    shape = torch.broadcast_shapes(gate.shape, position_bias.shape)
    return torch.mul(gate, position_bias, out=scratch("bias", shape, dtype, gate.device))


def unfused_wins(query: torch.Tensor, training: bool) -> bool:
    """bf16 inference on a CPU without AMX, where two matmuls beat SDPA's fused CPU kernel with a float bias."""
    # with AMX tiles SDPA wins and is closer to fp32; fp32 (the exact path) and training keep SDPA
    return not training and query.dtype == torch.bfloat16 and query.device.type == "cpu" and not cpu.cpu_has_amx()


def bf16_cpu_attention(query, key, value, gate, position_bias, attention_mask):
    """softmax(q k^T / sqrt(d) + gate * bias) v, the gated bias added in place into bf16 scores (fp32 accumulation)."""
    scale = query.shape[-1] ** -0.5
    # key as [B, heads, T, d] rows (a cheap copy): the matmul reads k^T through its transpose flag, no transposing copy
    scores = torch.matmul(query * scale, key.contiguous().transpose(-1, -2))  # [B, heads, T, T]
    scores.addcmul_(gate.to(scores.dtype), position_bias.to(scores.dtype))
    if attention_mask is not None:
        scores.masked_fill_(attention_mask.ne(1)[:, None, None, :], float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), value)


def fits(module: nn.Module) -> bool:
    """Whether ``module`` is a WavLM attention layer (with its gate) that ``wavlm_attention_forward`` replaces."""
    return type(module).__name__ == "WavLMAttention" and hasattr(module, "gru_rel_pos_linear")
