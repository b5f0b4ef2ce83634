"""A thread-safe LRU cache of text embeddings that can never serve embeddings of older weights (no torch needed:
the version key is the caller's, e.g. ``engine.weights_version`` of the text tower)."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Hashable, Sequence

import numpy as np

from ..lazy import lazy_exports

# ``weights_version`` (torch modules' fingerprint) lives with the torch engine; this module needs no torch
__getattr__ = lazy_exports(__name__, {"paraspeechclap.inference.engine": ["weights_version"]})[0]


class TextCache:
    """Distinct string -> embedding row, bounded LRU; emptied whenever the weights version changes."""

    def __init__(self, size: int = 10000):
        self.size = int(size)
        self._lock = threading.Lock()
        self._rows: "OrderedDict[str, np.ndarray]" = OrderedDict()
        self._version: Hashable = None

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, text: str) -> bool:
        return text in self._rows

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def get_many(self, texts: Sequence[str], version: Hashable,
                 compute: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """Rows for ``texts`` in order; the missing ones come from ``compute(missing)`` (called outside the lock,
        then stored only if the weights version is still the one they were computed with)."""
        with self._lock:
            if version != self._version:
                self._rows.clear()
                self._version = version
            found = {t: self._rows[t] for t in texts if t in self._rows}
        missing = sorted({t for t in texts if t not in found}, key=len)
        fresh = dict(zip(missing, compute(missing))) if missing else {}
        rows = [fresh[t] if t in fresh else found[t] for t in texts]
        with self._lock:
            if version == self._version:
                for text, row in fresh.items():
                    self._rows[text] = row
                for text in texts:
                    if text in self._rows:
                        self._rows.move_to_end(text)
                while len(self._rows) > self.size:
                    self._rows.popitem(last=False)
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
