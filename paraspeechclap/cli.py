"""One command-line entry point: ``paraspeechclap <command>``, only the dispatcher.

Every command lives in its room as a module exposing ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``
(``classify``, ``score`` and ``embed`` in :mod:`paraspeechclap.commands`); nothing in the package imports this module.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

# command -> module (each exposes HELP, add_arguments, run)
ROOM_COMMANDS = {
    "classify": "paraspeechclap.commands.classify",
    "score": "paraspeechclap.commands.score",
    "embed": "paraspeechclap.commands.embed",
    "train": "paraspeechclap.train.cli",
    "soup": "paraspeechclap.train.soup",
    "evaluate": "paraspeechclap.evaluate.cli",
    "rerank": "paraspeechclap.rerank.cli",
    "synth": "paraspeechclap.synth.cli",
    "demo": "paraspeechclap.demo",
    "timeline": "paraspeechclap.timeline",
    "annotate": "paraspeechclap.annotate.cli",
    "index": "paraspeechclap.index.cli",
    "search": "paraspeechclap.index.search_cli",
    "serve": "paraspeechclap.serve.cli",
    "export": "paraspeechclap.export.cli",
    "tts-eval": "paraspeechclap.ttseval.cli",
}


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="paraspeechclap", description="ParaSpeechCLAP: speech <-> style descriptions")
    parser.add_argument("--version", action="version", version=f"paraspeechclap {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command", required=True)

    for command, module_name in ROOM_COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                continue  # room not installed in this build
            raise
        room = sub.add_parser(command, help=module.HELP)
        module.add_arguments(room)
        room.set_defaults(func=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        try:
            return _dispatch(argv)
        finally:
            sys.stdout.flush()  # a reader that went away shows here, inside the handler, not at interpreter exit
    except BrokenPipeError:
        # `paraspeechclap ... | head`: stop quietly, as the Python docs' note on SIGPIPE does (stdout to devnull, so
        # the final flush cannot raise again); 141 is what a shell reports for a process ended by SIGPIPE
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _dispatch(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
