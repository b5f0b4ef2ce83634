"""Dynamic int8 quantization of the speech tower's linear layers (CPU only)."""
from __future__ import annotations

import torch
from torch import nn

from .linear import feed_forward_forward, linear_forward
from .malloc import release_freed_memory
from .switch import use_stock_paths


def quantize_int8(model: nn.Module) -> nn.Module:
    """Quantize ``model.audio_branch``'s ``nn.Linear`` layers to dynamic int8 in place; the text tower stays fp32."""
    # text embeddings are cached per string (rarely the bottleneck), and int8 moved text rankings far more than audio
    from torch.ao.quantization import quantize_dynamic

    # the quantized modules take over the float modules' attributes; the oneDNN forwards read float weights
    use_stock_paths(model.audio_branch, (linear_forward, feed_forward_forward))
    quantize_dynamic(model.audio_branch, {nn.Linear}, dtype=torch.qint8, inplace=True)
    release_freed_memory()  # the replaced fp32 weights stay in the heap otherwise
    return model
