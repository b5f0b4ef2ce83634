"""Switch a model's modules to this room's drop-in forwards (instance-level) and back to the classes' own."""
from __future__ import annotations

import types

from torch import nn

from . import attention, conv, linear

# kind -> (forward, which modules it replaces), in the order they are switched; declared once for both directions
FAST_PATHS = {
    "attention": ((attention.wavlm_attention_forward, attention.fits),),
    "feature_encoder": ((conv.layer_norm_conv_forward, conv.fits_conv_layer),
                        (conv.feature_encoder_forward, conv.fits_feature_encoder)),
    "positional_conv": ((conv.positional_conv_forward, conv.fits_positional_conv),),
    "linear": ((linear.linear_forward, linear.fits_linear), (linear.feed_forward_forward, linear.fits_feed_forward)),
}
FAST_FORWARDS = tuple(forward for pairs in FAST_PATHS.values() for forward, _ in pairs)


def switch(model: nn.Module, forward, matches) -> int:
    """Give every module inside ``model`` for which ``matches(module)`` holds ``forward`` as its own; returns how many."""
    switched = 0
    for module in model.modules():
        if matches(module):
            module.forward = types.MethodType(forward, module)
            switched += 1
    return switched


def use_fast_paths(model: nn.Module, kinds: tuple[str, ...] = tuple(FAST_PATHS)) -> dict[str, int]:
    """This room's forwards (same maths) for the modules inside ``model``; returns how many of each kind were switched."""
    unknown = sorted(set(kinds) - set(FAST_PATHS))
    if unknown:
        raise ValueError(f"unknown fast paths {unknown}; choose from {sorted(FAST_PATHS)}")
    return {kind: sum(switch(model, forward, matches) for forward, matches in FAST_PATHS[kind]) for kind in kinds}


def use_stock_paths(model: nn.Module, forwards: tuple = FAST_FORWARDS) -> int:
    """Back to the classes' own forwards (the reference code) for modules switched to one of ``forwards``; how many."""
    restored = 0
    for module in model.modules():
        forward = vars(module).get("forward")
        if isinstance(forward, types.MethodType) and forward.__func__ in forwards:
            del module.forward
            restored += 1
    return restored
