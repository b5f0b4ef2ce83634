"""From command-line inputs (files, globs, folders, manifests) to embeddings, for classify, score and embed."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..data.rows import read_rows
from ..modelspec import ModelSpec
from ..output import check_output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="audio files, globs, folders, or CSV/TSV/JSONL manifests")


def expand_inputs(items: Sequence[str], problems: dict[str, str] | None = None) -> list[str]:
    """Audio files, globs, folders, manifests (JSONL/CSV/TSV/Parquet, Lhotse cuts) and datasets -> audio paths,
    read by :func:`paraspeechclap.data.rows.read_rows` (the one reader of rows and its one audio-path rule).

    A bad row (or an input that cannot be read, a glob that matches nothing) is reported on stderr and in
    ``problems`` as ``{ref: reason}`` (``FILE:LINE`` for manifest rows) and skipped; the other rows are kept."""
    problems = {} if problems is None else problems
    paths: list[str] = []
    for row in read_rows(list(items)):
        if row.ok:
            paths.append(row.audio)
        else:
            problems[row.ref] = row.error
            print(f"error: {row.ref}: {row.error} (row skipped)", file=sys.stderr)
    return paths


def embed_inputs(model, batch_size: int | None, paths: list[str], failed: dict[str, str]):
    """The one bulk loop for classify/score/embed: (good paths, embeddings [N, D], {bad input: reason}, total).

    Inputs are decoded a few ahead of the encoder and embedded as they come; a bad manifest row (already in
    ``failed``), an unreadable file or an item the encoder cannot take is reported and skipped."""
    import numpy as np

    from ..inference import embed_items

    good, rows = [], []
    for result in embed_items(model, paths, batch_size=batch_size, progress=len(paths) > 16):
        if result.ok:
            good.append(paths[result.index])
            rows.append(result.embedding)
        else:
            failed[paths[result.index]] = result.error
            print(f"error: {result.name}: {result.error}", file=sys.stderr)
    emb = np.stack(rows) if rows else np.zeros((0, model.config.embedding_dim), np.float32)
    return good, emb, failed, len(paths) + sum(1 for key in failed if key not in paths)


def start(args: argparse.Namespace, outputs: Sequence[str | None] = ()):
    """Inputs read, outputs checked (before the model loads), model loaded, every input embedded:
    ``(model, good paths, embeddings, {bad input: reason}, total)``."""
    failed: dict[str, str] = {}
    paths = expand_inputs(args.inputs, failed)
    for out in outputs:
        check_output(out, [*args.inputs, *paths], getattr(args, "overwrite", False))
    spec = ModelSpec.from_args(args)
    model = spec.load()
    good, emb, failed, total = embed_inputs(model, spec.batch_size, paths, failed)
    if not good:
        print("error: no readable audio", file=sys.stderr)
    return model, good, emb, failed, total


def finish(failed: dict, total: int) -> int:
    """Exit status of a bulk command: 1 when any input failed (reported on stderr), else 0."""
    if failed:
        print(f"{len(failed)} of {total} input(s) failed and were skipped", file=sys.stderr)
        return 1
    return 0
