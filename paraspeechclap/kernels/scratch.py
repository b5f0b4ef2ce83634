"""Memory reused across calls: per-thread scratch tensors, and values derived from weights cached per weights version."""
from __future__ import annotations

import math
import threading

import torch

_SCRATCH = threading.local()


def scratch(slot: str, shape: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised ``shape`` tensor on this thread's ``slot``: a fresh large tensor per layer costs page faults."""
    # the slot grows, never shrinks, until released; a caller is done with a slot's last tensor before asking again
    numel = math.prod(shape)
    key = (dtype, torch.device(device), torch.is_inference_mode_enabled())  # inference tensors stay in that mode
    held = getattr(_SCRATCH, slot, None)
    if held is None or held[0] != key or held[1].numel() < numel:
        setattr(_SCRATCH, slot, None)  # let the smaller one go first
        held = (key, torch.empty(numel, dtype=dtype, device=device))
        setattr(_SCRATCH, slot, held)
    return held[1][:numel].view(shape)


def scratch_bytes(slot: str) -> int:
    """Bytes this thread holds in scratch ``slot`` (0 when empty)."""
    held = getattr(_SCRATCH, slot, None)
    return 0 if held is None else held[1].numel() * held[1].element_size()


def release_scratch_slots(*slots: str) -> None:
    """Let this thread's scratch ``slots`` go."""
    for slot in slots:
        setattr(_SCRATCH, slot, None)


def release_scratch() -> None:
    """Let all of this thread's scratch tensors go, so that an idle model holds none (the engine calls it per call)."""
    vars(_SCRATCH).clear()


def cached(owner, attr: str, key, build):
    """``build()`` kept as ``owner.<attr> = (key, value)`` and rebuilt (the old value let go first) when ``key`` changes."""
    # the one cache of values derived from weights: position biases, conv kernels, the weight-normed positional kernel
    held = getattr(owner, attr, None)
    if held is None or held[0] != key:
        setattr(owner, attr, None)
        held = (key, build())
        setattr(owner, attr, held)
    return held[1]


def weights_key(weight: torch.Tensor) -> tuple:
    """What a value derived from ``weight`` depends on: its identity, in-place version, dtype and device."""
    return weight.data_ptr(), tensor_version(weight), weight.dtype, weight.device


def tensor_version(tensor) -> int | None:
    """torch's in-place version counter of ``tensor``; None for inference tensors, which keep none."""
    try:
        return tensor._version
    except RuntimeError:
        return None
