"""``paraspeechclap timeline``: how well each caption fits each moment of a long recording, as a plot or JSON."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "per-window caption scores over a long recording (plot .png or .json)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .modelspec import ModelSpec

    parser.add_argument("audio", help="an audio file")
    parser.add_argument("--captions", nargs="+", required=True, help="style descriptions to follow over time")
    parser.add_argument("--window", type=float, default=3.0, help="window length in seconds (default 3)")
    parser.add_argument("--hop", type=float, default=1.0, help="hop between windows in seconds (default 1)")
    parser.add_argument("--out", required=True, help="output .png (plot) or .json (numbers)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    ModelSpec.add_arguments(parser)


def plot(result: dict, title: str = ""):
    """A matplotlib figure: one line per caption, cosine against window centre time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    scores = np.asarray(result["scores"])
    centres = (np.asarray(result["start"]) + np.asarray(result["end"])) / 2
    figure, axes = plt.subplots(figsize=(10, 3.5))
    for column, caption in enumerate(result["captions"]):
        axes.plot(centres, scores[:, column], label=caption, marker="." if len(centres) < 60 else None)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("cosine")
    axes.set_title(title or "style timeline")
    axes.legend(loc="upper right", fontsize="small")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def run(args: argparse.Namespace) -> int:
    from .fileio import atomic_write, atomic_write_json
    from .modelspec import ModelSpec
    from .output import check_output

    out = Path(args.out)
    if out.suffix not in (".png", ".json"):
        print(f"error: --out must end in .png or .json, got {out}", file=sys.stderr)
        return 2
    check_output(args.out, [args.audio], args.overwrite)
    model = ModelSpec.from_args(args).load()
    result = model.timeline(args.audio, args.captions, window_seconds=args.window, hop_seconds=args.hop)
    if out.suffix == ".json":
        atomic_write_json(out, result)
    else:
        figure = plot(result, title=Path(args.audio).name)
        atomic_write(out, lambda handle: figure.savefig(handle, format="png", dpi=110), binary=True)
    best = [result["captions"][max(range(len(row)), key=row.__getitem__)] for row in result["scores"]]
    print(f"{len(result['start'])} windows over {result['seconds']:.1f} s; best caption per window: "
          + json.dumps(best[:10]) + (" ..." if len(best) > 10 else "") + f"; wrote {out}")
    return 0
