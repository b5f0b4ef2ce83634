"""The precision policy: which numeric precision inference runs in, decided explicitly and portably.

``auto`` picks bf16 only where bf16 matrix multiplication is native, else fp32:
- CPU: the AVX-512 BF16 extension or AMX-BF16 on x86 (read from the real ISA flags in ``/proc/cpuinfo``, not from
  oneDNN's "supported", which is also true where bf16 is only emulated and ~40x slower than fp32), or the BF16
  feature on AArch64;
- CUDA: compute capability 8.0 or newer (Ampere, Hopper, ...); older GPUs emulate bf16.
and only for towers whose weights can be converted (see :func:`tower_accepts_bf16_weights`).

``PARASPEECHCLAP_NATIVE_BF16=0/1`` overrides the detection (for machines whose flags lie, and for tests).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import torch

from ..precisions import PRECISIONS  # noqa: F401 - the one declaration, re-exported

_X86_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
_ARM_BF16_FLAGS = {"bf16"}


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's ISA feature flags (``flags`` on x86, ``Features`` on ARM); empty where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


def cpu_native_bf16(flags: frozenset[str] | None = None) -> bool:
    """True where the CPU multiplies bf16 matrices in hardware (AVX-512 BF16, AMX-BF16, ARM BF16)."""
    flags = cpu_flags() if flags is None else flags
    import platform

    if platform.machine().lower() in ("aarch64", "arm64"):
        return bool(flags & _ARM_BF16_FLAGS)
    return bool(flags & _X86_BF16_FLAGS)


def cuda_native_bf16(device: torch.device) -> bool:
    """Compute capability >= 8.0."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 matrix multiply is native on ``device`` (``PARASPEECHCLAP_NATIVE_BF16`` overrides)."""
    forced = os.environ.get("PARASPEECHCLAP_NATIVE_BF16", "").strip().lower()
    if forced in ("0", "1", "true", "false", "yes", "no"):
        return forced in ("1", "true", "yes")
    if device.type == "cuda":
        return cuda_native_bf16(device)
    if device.type == "cpu":
        return cpu_native_bf16()
    return False


def tower_accepts_bf16_weights(base: torch.nn.Module) -> bool:
    """Hugging Face transformer encoders run with bf16 weights; an encoder can opt out with a class attribute
    ``bf16_weights = False`` (this project's log-mel encoder does: its STFT front end needs fp32, and it is too
    small for bf16 to pay)."""
    return bool(getattr(base, "bf16_weights", True))


def resolve_precision(precision: str, device: torch.device, speech_base: torch.nn.Module | None = None) -> str:
    """``auto`` -> ``bf16`` where native (and the speech tower takes bf16 weights), else ``fp32``; explicit values
    are checked (int8 is CPU only)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        if speech_base is not None and not tower_accepts_bf16_weights(speech_base):
            return "fp32"
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "int8" and device.type != "cpu":
        raise ValueError("int8 dynamic quantization runs on CPU only")
    return precision


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
