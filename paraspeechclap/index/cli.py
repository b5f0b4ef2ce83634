"""``paraspeechclap index build ANNOTATIONS [--out INDEX]``: build or extend the ANN index of an annotation folder."""
from __future__ import annotations

import argparse
import json
import sys

from .. import output

HELP = "build (or extend with new shards) the ANN index of an annotation folder; 'index info' describes one"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="index_command", required=True)
    build = sub.add_parser("build", help="build the index, or add the shards completed since the last build")
    build.add_argument("annotations", help="annotation folder (paraspeechclap annotate --out)")
    build.add_argument("--out", default=None, help="index folder (default ANNOTATIONS/_index)")
    build.add_argument("--backend", default=None, choices=["usearch", "faiss"],
                       help="ANN library for a new index (default faiss: HNSW32; chosen by measurement, see the README)")
    build.add_argument("--connectivity", type=int, default=None, help="HNSW graph degree (usearch 16, faiss 32)")
    build.add_argument("--expansion-add", type=int, default=128, help="HNSW efConstruction (default 128)")
    build.add_argument("--expansion-search", type=int, default=128, help="HNSW efSearch (default 128)")
    build.add_argument("--threads", type=int, default=0, help="build threads (0: all cores)")
    info = sub.add_parser("info", help="print an index's description (JSON, or a table)")
    info.add_argument("index", help="index folder, or an annotation folder with _index/")
    output.add_arguments(info, formats=("json", "table"))


def run(args: argparse.Namespace) -> int:
    from .core import Index, IndexError_

    try:
        if args.index_command == "info":
            fmt = "json" if args.format is None and args.out is None else output.chosen_format(args)
            output.check_output(args.out, [], args.overwrite)
            index = Index.open(args.index)
            meta = dict(index.meta)
            meta["shards"] = len(meta["shards"])
            provenance = meta.pop("model", {})
            document = meta | {"folder": str(index.folder)}
            output.emit(fmt, args.out, provenance=provenance, document=document, rows=[document],
                        table=lambda: "".join(f"{k:<20}{v}\n" for k, v in {**document, "model": provenance}.items()))
            return 0
        index = Index.build(args.annotations, out=args.out, backend=args.backend, connectivity=args.connectivity,
                            expansion_add=args.expansion_add, expansion_search=args.expansion_search,
                            threads=args.threads, quiet=False)
    except (IndexError_, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"index": str(index.folder), "backend": index.meta["backend"], "vectors": len(index),
                      "shards": len(index.meta["shards"]), "build_seconds": round(index.meta["last_build_seconds"], 3)}))
    return 0
