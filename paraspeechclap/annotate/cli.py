"""``paraspeechclap annotate INPUT... --out DIR``: Parquet shards of embeddings, probabilities, tags, captions."""
from __future__ import annotations

import argparse
import json
import sys

HELP = "annotate a corpus into Parquet shards (embeddings, class probabilities, tags, captions); resumable"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..modelspec import ModelSpec

    parser.add_argument("inputs", nargs="+", help="audio folders, audio files or manifests (read by paraspeechclap.data)")
    parser.add_argument("--out", required=True, help="output folder (Parquet shards + _manifest.json)")
    parser.add_argument("--engine", default="local", choices=["local", "torchrun", "ray"],
                        help="local worker processes (default), torchrun ranks, or Ray Data")
    parser.add_argument("--workers", type=int, default=None,
                        help="local/Ray: model workers (default: one per GPU, else min(4, cores))")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: cores / workers)")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray instance)")
    parser.add_argument("--shard-size", type=int, default=1000, help="rows per shard (default 1000)")
    parser.add_argument("--embedding-dtype", default="float32", choices=["float16", "float32"])
    parser.add_argument("--no-captions", action="store_true", help="leave the caption column empty")
    parser.add_argument("--attributes", default=None, help="attribute table JSON (default: the model family's own)")
    parser.add_argument("--audio-root", default=None, help="root that manifest audio paths are relative to")
    parser.add_argument("--split", default=None,
                        help="split of rows that do not name one in a 'split' field, and of a Hugging Face dataset input "
                             "(default: the split a manifest's file name names, as test.jsonl or dev.csv, else train)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    ModelSpec.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from .engines import run as run_engine
    from ..modelspec import ModelSpec
    from .job import AnnotateError, JobConfig

    try:
        config = JobConfig(inputs=list(args.inputs), out=args.out, model=ModelSpec.from_args(args),
                           shard_size=args.shard_size, embedding_dtype=args.embedding_dtype, batch_size=args.batch_size,
                           captions=not args.no_captions, attributes=args.attributes, audio_root=args.audio_root,
                           split=args.split)
        summary = run_engine(config, engine=args.engine, workers=args.workers, threads=args.threads,
                             address=args.address, quiet=args.quiet)
    except (AnnotateError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0
