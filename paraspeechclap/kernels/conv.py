"""The conv feature encoder without layout copies (in cache-sized blocks of frames), and the positional conv's kernel cached."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .linear import exact_gelu, linear_weights
from .scratch import cached, release_scratch_slots, scratch, scratch_bytes, weights_key

CONV_CHUNK_ROWS = 4096  # output frames per block of the no-gradient conv path: one block's rows stay in cache
CONV_SCRATCH_KEEP_BYTES = 160 << 20  # conv layer outputs kept for the next clip up to this size (15 s in fp32)


def layer_norm_conv_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    """Drop-in for ``LayerNormConvLayer.forward`` that keeps activations channels last, so no conv copies its input."""
    # a conv without padding is the matrix product of the input's windows with the kernel, and in channels-last memory
    # each window is one contiguous run; without gradients on CPU it runs in blocks (blocked_conv_forward)
    if not torch.is_grad_enabled() and hidden_states.device.type == "cpu" and (
            hidden_states.shape[1] == 1 or hidden_states.transpose(1, 2).is_contiguous()):
        return blocked_conv_forward(self, hidden_states).transpose(1, 2)
    conv = self.conv
    (kernel,), (stride,) = conv.kernel_size, conv.stride
    if hidden_states.shape[1] == 1:
        frames = hidden_states[:, 0].unfold(-1, kernel, stride)  # [B, T', kernel]
        out = F.linear(frames, conv.weight.view(conv.out_channels, kernel), conv.bias)  # [B, T', C']
    else:
        out = F.conv2d(hidden_states.unsqueeze(2), conv.weight.unsqueeze(2), conv.bias, stride=(1, stride))
        out = out.squeeze(2).transpose(1, 2)  # [B, T', C']: contiguous when conv2d wrote channels last
    return self.activation(self.layer_norm(out)).transpose(1, 2)


def window_weight(conv: nn.Conv1d) -> torch.Tensor:
    """The kernel as ``[out, kernel * in]`` in window order (frame-major, channels inner), cached per weights version."""
    weight = conv.weight
    return cached(conv, "_window_weight", weights_key(weight),
                  lambda: weight.detach().permute(0, 2, 1).reshape(conv.out_channels, -1).contiguous())


def blocked_conv_forward(self, hidden_states: torch.Tensor, slot: str | None = None) -> torch.Tensor:
    """``activation(layer_norm(conv(x)))`` as ``[B, T', C']``, block by block of output frames while they are in cache."""
    # hidden_states: [B, 1, T] or a channels-last [B, C, T] view; the output is new, or scratch ``slot`` when given
    conv = self.conv
    (kernel,), (stride,) = conv.kernel_size, conv.stride
    batch, channels, length = hidden_states.shape
    frames = (length - kernel) // stride + 1
    base = hidden_states if channels == 1 else hidden_states.transpose(1, 2)  # [B, 1, T] or [B, T, C]: contiguous
    base = base.contiguous()
    windows = base.as_strided((batch, frames, kernel * channels),
                              (length * channels, stride * channels, 1), base.storage_offset())
    weight = window_weight(conv)
    dtype, device = hidden_states.dtype, hidden_states.device
    shape = (batch, frames, conv.out_channels)
    out = torch.empty(shape, dtype=dtype, device=device) if slot is None else scratch(slot, shape, dtype, device)
    blocks = scratch("conv_block", (min(frames, CONV_CHUNK_ROWS), kernel * channels), dtype, device)
    gelu = exact_gelu(self.activation)
    for row in range(batch):
        for start in range(0, frames, CONV_CHUNK_ROWS):
            block = blocks[:min(CONV_CHUNK_ROWS, frames - start)]
            block.copy_(windows[row, start:start + len(block)])
            normed = self.layer_norm(linear_weights(block, weight, conv.bias))
            out[row, start:start + len(block)] = torch.ops.aten.gelu_(normed) if gelu else self.activation(normed)
    return out


def feature_encoder_forward(self, input_values: torch.Tensor) -> torch.Tensor:
    """Drop-in for ``FeatureEncoder.forward``: without gradients on CPU the layers in between write into two scratch slots."""
    layers = self.conv_layers
    if torch.is_grad_enabled() or input_values.device.type != "cpu" or not all(
            getattr(vars(layer).get("forward"), "__func__", None) is layer_norm_conv_forward for layer in layers):
        return type(self).forward(self, input_values)
    hidden = input_values[:, None]
    for index, layer in enumerate(layers):  # each layer reads one slot and writes the other; the last, a new tensor
        slot = None if index == len(layers) - 1 else f"conv_out{index % 2}"
        hidden = blocked_conv_forward(layer, hidden, slot).transpose(1, 2)
    slots = ("conv_out0", "conv_out1")
    if sum(scratch_bytes(slot) for slot in slots) > CONV_SCRATCH_KEEP_BYTES:
        release_scratch_slots(*slots)  # long windows: not held through the transformer layers (peak memory)
    return hidden


def weight_norm_originals(conv: nn.Module) -> tuple | None:
    """The parameters of ``conv``'s weight-norm parametrization (magnitude, direction), or None without one."""
    parametrization = getattr(getattr(conv, "parametrizations", None), "weight", None)
    if parametrization is None or not hasattr(parametrization, "original1"):
        return None
    return parametrization.original0, parametrization.original1


def positional_conv_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    """Drop-in for ``PositionalConvEmbedding.forward`` with its weight-normed kernel cached, not recomputed per call."""
    conv = self.conv
    originals = weight_norm_originals(conv)
    if torch.is_grad_enabled() or originals is None:
        return type(self).forward(self, hidden_states)
    weight = cached(conv, "_normed_weight", tuple(weights_key(p) for p in originals), lambda: conv.weight.detach())
    out = conv._conv_forward(hidden_states.transpose(1, 2), weight, conv.bias)
    return self.activation(self.padding(out)).transpose(1, 2)


def _plain_conv(conv: nn.Module) -> bool:
    """A ``Conv1d`` without padding, dilation or groups: a matrix product of its input's windows."""
    return (isinstance(conv, nn.Conv1d) and conv.padding == (0,) and conv.dilation == (1,) and conv.groups == 1
            and conv.padding_mode == "zeros")


def fits_conv_layer(module: nn.Module) -> bool:
    """A WavLM/wav2vec2 layer-norm conv layer over a plain conv."""
    return type(module).__name__.endswith("LayerNormConvLayer") and _plain_conv(getattr(module, "conv", None))


def fits_feature_encoder(module: nn.Module) -> bool:
    """A WavLM/wav2vec2 feature encoder (a list of conv layers)."""
    return type(module).__name__.endswith("FeatureEncoder") and isinstance(getattr(module, "conv_layers", None),
                                                                           nn.ModuleList)


def fits_positional_conv(module: nn.Module) -> bool:
    """A WavLM/wav2vec2 positional conv embedding whose conv is weight-normed by a parametrization."""
    return (type(module).__name__.endswith("PositionalConvEmbedding") and hasattr(module, "padding")
            and weight_norm_originals(getattr(module, "conv", None)) is not None)
