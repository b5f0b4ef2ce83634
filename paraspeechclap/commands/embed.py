"""``paraspeechclap embed``: audio embeddings to Parquet, ``.npz`` or ``.npy`` (+ file list), with provenance."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..modelspec import ModelSpec
from . import inputs

HELP = "audio embeddings to .npy (+ file list) or Parquet"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    inputs.add_arguments(parser)
    parser.add_argument("--out", required=True,
                        help="output .parquet or .npz (one file with paths and provenance) or .npy (+ .txt file list)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    ModelSpec.add_arguments(parser)


def write_embeddings(out: Path, paths: list[str], emb, provenance: dict) -> None:
    """Embeddings, their paths and the provenance committed together: one Parquet or ``.npz`` container, or for
    ``.npy`` the array and its ``.txt`` file list, both fully written before either is renamed into place."""
    import numpy as np

    from ..fileio import atomic_path
    from ..output import write_parquet

    if out.suffix == ".parquet":
        write_parquet([{"path": p, "embedding": row.tolist()} for p, row in zip(paths, emb)], out, provenance)
    elif out.suffix == ".npz":
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, embeddings=emb, paths=np.array(paths, dtype=str),
                         provenance=np.array(json.dumps(provenance)))
    else:
        with atomic_path(out.with_suffix(".txt")) as txt, atomic_path(out) as npy:
            with open(npy, "wb") as handle:
                np.save(handle, emb)
            Path(txt).write_text("\n".join(paths) + "\n", encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix not in (".npy", ".npz", ".parquet"):
        print(f"error: --out must end in .npy, .npz or .parquet, got {out}", file=sys.stderr)
        return 2
    extra = [str(out.with_suffix(".txt"))] if out.suffix == ".npy" else []
    model, good, emb, failed, total = inputs.start(args, [args.out, *extra])
    if not good:
        return 1
    write_embeddings(out, good, emb, model.provenance())
    print(f"wrote {len(good)} embeddings of dimension {emb.shape[1]} to {out}"
          + (f" (file list: {out.with_suffix('.txt')})" if out.suffix == ".npy" else "")
          + f"; {model.precision} on {model.engine.device}")
    return inputs.finish(failed, total)
