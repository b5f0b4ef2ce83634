"""What this CPU's kernels can do, as torch itself detects it."""
from __future__ import annotations

import functools

import torch


@functools.lru_cache(maxsize=1)
def cpu_has_amx() -> bool:
    """Whether torch's CPU kernels can use AMX tiles here (torch's check, which also asks whether the OS allows them)."""
    check = getattr(getattr(torch, "cpu", None), "_is_amx_tile_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False
