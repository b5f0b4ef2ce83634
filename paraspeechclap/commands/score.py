"""``paraspeechclap score``: cosine similarity of audio files to style descriptions."""
from __future__ import annotations

import argparse

from .. import output
from ..modelspec import ModelSpec
from . import inputs

HELP = "cosine similarity of audio files to style descriptions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    inputs.add_arguments(parser)
    parser.add_argument("--text", action="append", required=True, help="a style description (repeatable)")
    output.add_arguments(parser, aliases=("json", "csv"))
    ModelSpec.add_arguments(parser)


def table_text(texts: list[str], paths: list[str], sims) -> str:
    width = max(len(p) for p in paths)
    lines = [f"[{number}] {t}" for number, t in enumerate(texts, 1)]
    lines.append(f"{'audio':<{width}}" + "".join(f"{'[' + str(n) + ']':>10}" for n in range(1, len(texts) + 1)))
    lines += [f"{p:<{width}}" + "".join(f"{s:>10.4f}" for s in row) for p, row in zip(paths, sims)]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    fmt = output.chosen_format(args)
    model, good, audio_emb, failed, total = inputs.start(args, [args.out])
    if not good:
        return 1
    sims = audio_emb @ model.embed_text(args.text).T
    results = [{"path": p, "scores": dict(zip(args.text, map(float, row)))} for p, row in zip(good, sims)]
    rows = [{"path": p, "text": t, "similarity": float(s)} for p, row in zip(good, sims) for t, s in zip(args.text, row)]
    output.emit(fmt, args.out, provenance=model.provenance(), rows=rows,
                document={"model": args.model, "texts": args.text, "results": results, "failed": failed},
                table=lambda: table_text(args.text, good, sims))
    return inputs.finish(failed, total)
