"""The one bulk loop every command uses: embed many inputs, report the bad ones, keep the rest.

For this project's models it is :meth:`InferenceEngine.embed_many` (bounded decode prefetch, windows, batches,
one-window retry). Any other object with the core numpy API (``embed_audio(items, batch_size=...)``, rows
L2-normalised: a user's own model or a test double) gets the same contract from a generic loop: chunks of inputs,
and a chunk that raises is redone one input at a time so that one bad input costs only itself.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..audio import describe
from .loop import ItemResult


def embed_items(model: Any, items: Sequence[Any], batch_size: int | None = None, progress: bool = False,
                on_done: Callable[[ItemResult], None] | None = None) -> Iterator[ItemResult]:
    """One :class:`ItemResult` per input, in input order (``on_done`` is called with each as it is yielded)."""
    engine = getattr(model, "engine", None)
    if engine is not None and callable(getattr(engine, "embed_many", None)):
        results = engine.embed_many(items, batch_size=batch_size, progress=progress, total=len(items))
    else:
        results = _generic(model, items, batch_size)
    for result in results:
        if on_done is not None:
            on_done(result)
        yield result


def _generic(model: Any, items: Sequence[Any], batch_size: int | None) -> Iterator[ItemResult]:
    batch_size = batch_size or getattr(model, "default_batch_size", 8)
    chunk = 16 * batch_size
    for start in range(0, len(items), chunk):
        part = list(items[start:start + chunk])
        try:
            rows = list(np.asarray(model.embed_audio(part, batch_size=batch_size), dtype=np.float32))
            if len(rows) != len(part):
                raise RuntimeError(f"the model returned {len(rows)} embeddings for {len(part)} inputs")
            outcomes: list = rows
        except Exception:  # noqa: BLE001 - find the bad input(s), keep the rest
            outcomes = []
            for item in part:
                try:
                    outcomes.append(np.asarray(model.embed_audio([item], batch_size=1), np.float32)[0])
                except Exception as err:  # noqa: BLE001
                    outcomes.append(err)
        for offset, (item, outcome) in enumerate(zip(part, outcomes)):
            result = ItemResult(start + offset, describe(item))
            if isinstance(outcome, BaseException):
                result.error = str(getattr(outcome, "problem", None) or f"{type(outcome).__name__}: {outcome}")
            elif not np.all(np.isfinite(outcome)):
                result.error = "the model returned NaN or Inf"
            else:
                result.embedding = outcome
            yield result
