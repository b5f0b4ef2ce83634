"""Corpus-scale annotation: Parquet shards of embeddings, class probabilities, tags and captions, with resume.

    from paraspeechclap.annotate import annotate
    annotate("corpus/audio", "annotations/", model="mini", workers=2)

See :mod:`.layout` (the files: shards per split, columns, metadata), :mod:`.job` (manifest, atomic commits, resume),
:mod:`.engines` (local, torchrun, Ray Data) and :mod:`.attributes` (the attribute -> classes table of each model
family, as data).
"""
from __future__ import annotations

from typing import Any


def annotate(inputs, out, model: str = "mini", engine: str = "local", workers: int | None = None,
             shard_size: int = 1000, embedding_dtype: str = "float32", device: str | None = None,
             precision: str = "auto", batch_size: int | None = None, captions: bool = True,
             attributes: str | None = None, audio_root: str | None = None, address: str | None = None,
             threads: int | None = None, quiet: bool = True, split: str | None = None, **model_options: Any) -> dict:
    """Annotate ``inputs`` (folders, files, manifests) into the folder ``out``; finished shards are skipped.
    ``threads``: torch threads per worker (default: the cores split between the workers); ``split``: the split of
    rows that do not name one (and of a Hugging Face dataset input)."""
    from .engines import run
    from ..modelspec import ModelSpec
    from .job import JobConfig

    config = JobConfig(inputs=[str(i) for i in (inputs if isinstance(inputs, (list, tuple)) else [inputs])],
                       out=str(out), model=ModelSpec(model, device=device, precision=precision, **model_options),
                       shard_size=shard_size, embedding_dtype=embedding_dtype, batch_size=batch_size,
                       captions=captions, attributes=attributes, audio_root=audio_root, split=split)
    return run(config, engine=engine, workers=workers, threads=threads, address=address, quiet=quiet)


__all__ = ["annotate"]
