"""The inference room: the one road from inputs to embeddings (decoding, windows, batches, precision, device,
the text cache and the bulk loop that reports and skips bad items)."""
from .bulk import embed_items
from .engine import InferenceEngine, ItemResult, as_audio_list
from .precision import PRECISIONS, native_bf16, resolve_device, resolve_precision

__all__ = ["embed_items", "InferenceEngine", "ItemResult", "as_audio_list", "PRECISIONS", "native_bf16", "resolve_device",
           "resolve_precision"]
