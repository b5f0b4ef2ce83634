"""Search an annotation folder: ANN index over its embeddings, queries by text or example clip, SQL filters.

    from paraspeechclap.index import Index
    index = Index.build("annotations/")              # or Index.open("annotations/_index")
    index.search("a deep raspy voice speaking slowly", where="duration > 3 AND pitch = 'deep'", top=20)
"""
from __future__ import annotations

from .core import BACKENDS, DEFAULT_BACKEND, Index, IndexError_, ModelMismatch
from .filters import FilterError, validate_where

__all__ = ["Index", "IndexError_", "ModelMismatch", "FilterError", "validate_where", "BACKENDS", "DEFAULT_BACKEND"]
