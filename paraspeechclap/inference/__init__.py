"""The inference room: the one road from inputs to embeddings (decoding, windows, batches, precision, device,
the text cache and the bulk loop that reports and skips bad items).

Names are imported on first use, so that the torch-free parts (``loop``, ``plan``, ``decode``, ``stream``, ``bulk``,
``text_cache``: what :mod:`paraspeechclap.runtime` runs on) import without torch; ``InferenceEngine`` and the
precision policy load torch.
"""
from __future__ import annotations

import importlib
from typing import Any

# name -> module that defines it
_EXPORTS = {
    ".bulk": ["embed_items"],
    ".engine": ["InferenceEngine"],
    ".loop": ["EmbeddingLoop", "ItemResult", "as_audio_list"],
    ".precision": ["PRECISIONS", "native_bf16", "resolve_device", "resolve_precision"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
