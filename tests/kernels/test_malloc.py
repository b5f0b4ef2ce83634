"""kernels/malloc.py: glibc's thresholds are set once, and left alone when asked."""
from __future__ import annotations

import paraspeechclap.kernels.malloc as malloc_module


def test_malloc_is_tuned_once_on_glibc_and_left_alone_when_asked(monkeypatch):
    """``keep_freed_blocks`` sets glibc's thresholds (True on Linux with glibc, as here) and does nothing with
    PARASPEECHCLAP_MALLOC=0."""
    import platform

    malloc_module.keep_freed_blocks.cache_clear()
    try:
        monkeypatch.setenv(malloc_module.MALLOC_ENV, "0")
        assert malloc_module.keep_freed_blocks() is False
        malloc_module.keep_freed_blocks.cache_clear()
        monkeypatch.delenv(malloc_module.MALLOC_ENV)
        glibc = platform.libc_ver()[0] == "glibc"
        assert malloc_module.keep_freed_blocks() is glibc
    finally:
        malloc_module.keep_freed_blocks.cache_clear()
