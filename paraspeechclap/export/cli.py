"""``paraspeechclap export MODEL --format onnx|openvino --out DIR``."""
from __future__ import annotations

import argparse
import sys

HELP = "export a model's towers to ONNX or OpenVINO for the torch-free runtime (paraspeechclap.runtime)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .writer import VARIANTS

    parser.add_argument("model", help="'mini', a released alias, a .pth.tar file, a save_pretrained folder or a hub "
                                      "repo id (as --model of the other commands)")
    parser.add_argument("--format", required=True, choices=sorted(VARIANTS), dest="backend",
                        help="onnx: ONNX Runtime (fp32, int8); openvino: OpenVINO IR (fp32; bf16 on CPUs with "
                             "native bf16)")
    parser.add_argument("--out", required=True, help="the folder to write (must not exist, unless it is an "
                                                     "earlier export of this command)")
    parser.add_argument("--variants", help="comma-separated precisions besides fp32 (default: all the format has: "
                        + "; ".join(f"{k}: {','.join(v)}" for k, v in VARIANTS.items()) + ")")
    parser.add_argument("--speech-model", help="speech encoder (hub id or folder) for a raw .pth.tar checkpoint")
    parser.add_argument("--text-model", help="text encoder (hub id or folder) for a raw .pth.tar checkpoint")
    parser.add_argument("--embedding-dim", type=int, help="embedding size of a raw .pth.tar checkpoint")
    parser.add_argument("--revision", help="hub revision of a released checkpoint or hub repo")


def run(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from ..modelspec import ModelSpec
    from .graphs import ExportError
    from .writer import export_model, summary

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip()) if args.variants else None
    try:
        model = ModelSpec(args.model, speech_model=args.speech_model, text_model=args.text_model,
                          embedding_dim=args.embedding_dim, device="cpu", precision="fp32", revision=args.revision).load()
        out = export_model(model, Path(args.out), args.backend, variants,
                           source={"model": args.model, "revision": args.revision})
    except (ExportError, FileExistsError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"exported {model.name} ({args.backend}) to {out}")
    print(summary(out))
    return 0
