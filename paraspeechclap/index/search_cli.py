"""``paraspeechclap search INDEX "text" [--like clip.wav] [--where SQL] --top 20``: clips, scores and tags."""
from __future__ import annotations

import argparse
import sys

from .. import output

TABLE_COLUMNS = ["rank", "score", "id", "duration", "tags", "audio"]
HELP = "search an annotation index by description and/or example clip, with SQL filters over its columns"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("index", help="index folder, or an annotation folder with _index/")
    parser.add_argument("text", nargs="?", default=None, help="a description, e.g. 'a deep raspy voice speaking slowly'")
    parser.add_argument("--like", default=None, help="an example clip: find clips that sound like it")
    parser.add_argument("--where", default=None,
                        help="filter: one expression over the annotation columns, e.g. \"duration > 3 AND pitch = "
                             "'deep'\" (columns: id, audio, duration, status, tags, caption, each attribute, p_*; "
                             "comparisons, AND/OR/NOT, IN, BETWEEN, LIKE, pure functions; nothing that reads files)")
    parser.add_argument("--top", type=int, default=20, help="number of clips (default 20)")
    parser.add_argument("--model", default=None,
                        help="model that embeds the query (default: the one recorded in the index); it must be the "
                             "model whose embeddings the index holds")
    parser.add_argument("--device", default=None, help="device for the query embedding (default: cpu/cuda auto)")
    output.add_arguments(parser)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def run(args: argparse.Namespace) -> int:
    from .core import Index, IndexError_
    from .filters import FilterError, validate_where

    if not args.text and not args.like:
        print("error: give a description, --like CLIP, or both", file=sys.stderr)
        return 2
    try:
        fmt = output.chosen_format(args)
        output.check_output(args.out, [p for p in (args.like,) if p], args.overwrite)
        index = Index.open(args.index)
        if args.where is not None:  # refused before any model is loaded
            validate_where(args.where, index.columns)
        model = index.load_model(args.model, args.device)
        hits = index.search(args.text, like=args.like, where=args.where, top=args.top, model=model)
    except FilterError as err:
        print(f"error: --where: {err}", file=sys.stderr)
        return 2
    except (IndexError_, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - DuckDB reports an accepted filter that fails to run (a type error)
        if type(err).__module__.startswith("duckdb") or type(err).__module__.startswith("_duckdb"):
            print(f"error: --where: {' '.join(str(err).split())}", file=sys.stderr)
            return 2
        raise
    query = {"text": args.text, "like": args.like, "where": args.where, "top": args.top}
    provenance = dict(model.provenance(), index=str(index.folder))
    rows = [{c: hit.get(c) for c in TABLE_COLUMNS} | hit for hit in hits]  # the table's columns lead
    output.emit(fmt, args.out, provenance=provenance, document={"query": query, "results": hits}, rows=rows,
                table=lambda: table_text(hits))
    return 0


def table_text(hits: list[dict]) -> str:
    cells = [[_cell(hit.get(c)) for c in TABLE_COLUMNS] for hit in hits]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(TABLE_COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(TABLE_COLUMNS, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines) + "\n"
