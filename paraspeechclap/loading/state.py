"""State dicts: reading released files safely, and fitting them to the model strictly.

Only plain tensor dicts are read (``torch.load(..., weights_only=True)`` or safetensors); known harmless naming
variants are adapted, anything else fails with the list of offending keys.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: it does not fit the model (the message lists the offending keys), it is
    not a plain state dict, or its bytes do not match the registry's SHA-256."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain state dict from a ``.pth.tar``/``.pt``/``.bin`` (``weights_only=True``) or ``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: not a loadable weights-only torch checkpoint ({err})") from None
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{path}: expected a plain state dict of tensors (the released format), "
                              f"got {type(data).__name__}")
    return dict(data)


_WEIGHT_NORM_PAIRS = [(".weight_g", ".parametrizations.weight.original0"),
                      (".weight_v", ".parametrizations.weight.original1")]


def _tolerated(key: str) -> bool:
    """Keys whose absence or presence is harmless at load time."""
    return (key.endswith("position_ids") or key.endswith("token_type_ids")
            or ".pooler." in key or key.endswith("masked_spec_embed"))


def adapt_state_dict(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor],
                     strict: bool = True) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename known harmless variants to the model's naming and check the rest.

    Tolerated: WavLM's positional-conv weight norm as ``weight_g``/``weight_v`` or
    ``parametrizations.weight.original0``/``original1``; a missing or extra ``position_ids`` buffer; an absent
    text pooler or ``masked_spec_embed``. Anything else raises :class:`CheckpointError` naming the keys.
    Returns the adapted state dict and the expected keys it does not provide (to keep from the model).
    """
    adapted: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key not in expected:
            for legacy, modern in _WEIGHT_NORM_PAIRS:
                if key.endswith(legacy) and key[: -len(legacy)] + modern in expected:
                    key = key[: -len(legacy)] + modern
                    break
                if key.endswith(modern) and key[: -len(modern)] + legacy in expected:
                    key = key[: -len(modern)] + legacy
                    break
        adapted[key] = tensor
    missing = sorted(k for k in expected if k not in adapted)
    unexpected = sorted(k for k in adapted if k not in expected)
    hard_missing = [k for k in missing if not _tolerated(k)]
    hard_unexpected = [k for k in unexpected if not _tolerated(k)]
    mismatched = [f"{k}: checkpoint {tuple(adapted[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in adapted if k in expected and adapted[k].shape != expected[k].shape]
    if strict and (hard_missing or hard_unexpected or mismatched):
        lines = []
        if hard_missing:
            lines.append(f"missing keys ({len(hard_missing)}): {hard_missing}")
        if hard_unexpected:
            lines.append(f"unexpected keys ({len(hard_unexpected)}): {hard_unexpected}")
        if mismatched:
            lines.append(f"shape mismatches ({len(mismatched)}): {mismatched}")
        raise CheckpointError("checkpoint does not match the model architecture:\n  " + "\n  ".join(lines))
    for key in unexpected:
        adapted.pop(key)
    return adapted, missing


def load_weights(model: torch.nn.Module, state: Mapping[str, torch.Tensor], strict: bool = True) -> list[str]:
    """Fill ``model`` from ``state`` (see :func:`adapt_state_dict`); returns the keys kept from the model."""
    expected = model.state_dict()
    adapted, missing = adapt_state_dict(state, expected, strict=strict)
    # Parameters absent from the checkpoint (tolerated) keep the model's own values.
    merged = {**{k: expected[k] for k in missing}, **adapted}
    model.load_state_dict(merged, strict=True)
    return missing
