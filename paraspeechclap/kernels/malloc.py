"""glibc malloc kept in the state where freed blocks are reused rather than faulted in afresh from mmap."""
from __future__ import annotations

import ctypes
import functools
import os
import sys

MALLOC_ENV = "PARASPEECHCLAP_MALLOC"  # "0": leave glibc's malloc settings alone
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # glibc's mallopt parameter numbers
MMAP_THRESHOLD_BYTES = 32 << 20  # the ceiling of glibc's own dynamic mmap threshold on 64-bit


def mallopt(parameter: int, value: int) -> bool:
    """glibc's ``mallopt(parameter, value)``; False where it is not available (not Linux, musl and other libcs)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(parameter, int(value)))
    except (OSError, AttributeError):
        return False


@functools.lru_cache(maxsize=1)
def keep_freed_blocks() -> bool:
    """Set glibc's thresholds where it gets by itself after freeing a 32 MB block (once, process-wide); False if not."""
    # until glibc gets there every tensor over 128 KB is a fresh mmap whose pages fault in on first touch, and whether
    # it gets there depends on what happened to be freed before; PARASPEECHCLAP_MALLOC=0 leaves malloc alone
    if os.environ.get(MALLOC_ENV, "1").strip() == "0":
        return False
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD_BYTES)


def release_freed_memory() -> bool:
    """Give freed heap pages back to the OS (glibc ``malloc_trim``); False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):  # musl and other libcs have no malloc_trim
        return False
