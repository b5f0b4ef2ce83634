"""The inference room: the one road from inputs to embeddings (decoding, windows, batches, precision, device,
the text cache and the bulk loop that reports and skips bad items).

Names are imported on first use, so that the torch-free parts (``loop``, ``plan``, ``decode``, ``stream``, ``bulk``,
``text_cache``: what :mod:`paraspeechclap.runtime` runs on) import without torch; ``InferenceEngine`` and the
precision policy load torch.
"""
from __future__ import annotations

from ..lazy import lazy_exports

# name -> module that defines it
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".bulk": ["embed_items"],
    ".engine": ["InferenceEngine"],
    ".loop": ["EmbeddingLoop", "ItemResult", "as_audio_list"],
    ".precision": ["PRECISIONS", "native_bf16", "resolve_device", "resolve_precision"],
})
