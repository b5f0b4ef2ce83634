"""One command-line entry point: ``paraspeechclap <command>``.

Inference commands (``score``, ``classify``, ``embed``) live here; the others live in their rooms as modules
exposing ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import csv
import importlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from .data.rows import AUDIO_SUFFIXES, read_rows  # noqa: F401 - AUDIO_SUFFIXES re-exported for callers

# command -> module (each exposes HELP, add_arguments, run)
ROOM_COMMANDS = {
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


# ---------------------------------------------------------------------------------------------- inputs
def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every command that loads a model shares."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", default="mini",
                       help="'mini' (embedded, default), 'intrinsic', 'situational', 'combined', a .pth.tar file, "
                            "a save_pretrained folder or a hub repo id")
    group.add_argument("--speech-model", help="speech encoder (hub id or folder) for a raw .pth.tar checkpoint")
    group.add_argument("--text-model", help="text encoder (hub id or folder) for a raw .pth.tar checkpoint")
    group.add_argument("--embedding-dim", type=int, help="embedding size of a raw .pth.tar checkpoint")
    group.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    group.add_argument("--revision", help="hub revision (branch, tag or commit) of a released checkpoint or hub repo")
    group.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "int8"],
                       help="numeric precision (auto: bf16 where the hardware multiplies bf16 natively, else fp32; "
                            "the precision used is recorded in --json and embed outputs)")
    group.add_argument("--batch-size", type=int, default=None,
                       help="clips per batch, sorted by length (default 8)")


def load_model_from_args(args: argparse.Namespace):
    from .api import ParaSpeechCLAP

    return ParaSpeechCLAP.from_pretrained(args.model, speech_model=args.speech_model, text_model=args.text_model,
                                          embedding_dim=args.embedding_dim, device=args.device,
                                          precision=args.precision, revision=getattr(args, "revision", None))


def manifest_paths(path: Path, problems: dict[str, str]) -> list[str]:
    """Audio paths listed in a manifest (see :func:`expand_inputs`)."""
    return expand_inputs([str(path)], problems)


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


def embed_inputs(model, args: argparse.Namespace, paths: list[str], failed: dict[str, str]):
    """The one bulk loop for classify/score/embed: (good paths, embeddings [N, D], {bad input: reason}, total).

    Inputs are decoded a few ahead of the encoder and embedded as they come; a bad manifest row (already in
    ``failed``), an unreadable file or an item the encoder cannot take is reported and skipped."""
    import numpy as np

    from .inference import embed_items

    good, rows = [], []
    for result in embed_items(model, paths, batch_size=args.batch_size, progress=len(paths) > 16):
        if result.ok:
            good.append(paths[result.index])
            rows.append(result.embedding)
        else:
            failed[paths[result.index]] = result.error
            print(f"error: {result.name}: {result.error}", file=sys.stderr)
    emb = np.stack(rows) if rows else np.zeros((0, model.config.embedding_dim), np.float32)
    return good, emb, failed, len(paths) + sum(1 for key in failed if key not in paths)


def check_output(out: str | None, inputs: Sequence[str], overwrite: bool) -> None:
    """Refuse an output path that is one of the inputs, or (without ``--overwrite``) an existing file."""
    if out is None:
        return
    target = Path(out).resolve()
    for item in inputs:
        if Path(item).resolve() == target:
            raise ValueError(f"--out {out} is one of the inputs; refusing to overwrite it")
    if Path(out).exists() and not overwrite:
        raise ValueError(f"--out {out} exists; pass --overwrite to replace it")


def write_output(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    from .fileio import atomic_write_text

    atomic_write_text(out, text)


def _finish(failed: dict, total: int) -> int:
    if failed:
        print(f"{len(failed)} of {total} input(s) failed and were skipped", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------------------------- commands
def _start(args: argparse.Namespace, extra_outputs: Sequence[str] = ()):
    failed: dict[str, str] = {}
    paths = expand_inputs(args.inputs, failed)
    for out in [getattr(args, "out", None), *extra_outputs]:
        check_output(out, [*args.inputs, *paths], getattr(args, "overwrite", False))
    model = load_model_from_args(args)
    good, emb, failed, total = embed_inputs(model, args, paths, failed)
    if not good:
        print("error: no readable audio", file=sys.stderr)
    return model, good, emb, failed, total


def run_classify(args: argparse.Namespace) -> int:
    import numpy as np

    model, good, audio_emb, failed, total = _start(args)
    if not good:
        return 1
    sims = audio_emb @ model.embed_prompts(args.candidates, args.template).T
    probs = model.classify_embeddings(audio_emb, args.candidates, args.template)
    records = []
    for path, sim_row, prob in zip(good, sims, probs):
        order = np.argsort(-sim_row, kind="stable")
        ranking = [{"style": args.candidates[i], "similarity": float(sim_row[i]),
                    "probability": prob[args.candidates[i]]} for i in order]
        records.append({"path": path, "prediction": ranking[0]["style"], "ranking": ranking})
    if args.json:
        text = json.dumps({"model": args.model, "provenance": model.provenance(),
                           "template": args.template or model.config.prompt_template,
                           "results": records, "failed": failed}, indent=2) + "\n"
    elif args.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["path", "style", "rank", "similarity", "probability"])
        for rec in records:
            for rank, r in enumerate(rec["ranking"], 1):
                writer.writerow([rec["path"], r["style"], rank, f"{r['similarity']:.6f}", f"{r['probability']:.6f}"])
        text = buffer.getvalue()
    else:
        lines = []
        for rec in records:
            lines += [f"\n{rec['path']}", f"{'Style':<20}{'Similarity':>12}{'Probability':>12}", "-" * 44]
            lines += [f"{r['style']:<20}{r['similarity']:>12.4f}{r['probability']:>12.1%}" for r in rec["ranking"]]
            lines.append(f"Predicted style: {rec['prediction']}")
        text = "\n".join(lines).lstrip("\n") + "\n"
    write_output(text, args.out)
    return _finish(failed, total)


def run_score(args: argparse.Namespace) -> int:
    model, good, audio_emb, failed, total = _start(args)
    if not good:
        return 1
    sims = audio_emb @ model.embed_text(args.text).T
    if args.json:
        text = json.dumps({"model": args.model, "provenance": model.provenance(), "texts": args.text,
                           "failed": failed, "results": [{"path": p, "scores": dict(zip(args.text, map(float, row)))}
                                                         for p, row in zip(good, sims)]}, indent=2) + "\n"
    elif args.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["path", "text", "similarity"])
        for p, row in zip(good, sims):
            writer.writerows([p, t, f"{s:.6f}"] for t, s in zip(args.text, row))
        text = buffer.getvalue()
    else:
        width = max(len(p) for p in good)
        lines = [f"[{number}] {t}" for number, t in enumerate(args.text, 1)]
        lines.append(f"{'audio':<{width}}" + "".join(f"{'[' + str(n) + ']':>10}" for n in range(1, len(args.text) + 1)))
        lines += [f"{p:<{width}}" + "".join(f"{s:>10.4f}" for s in row) for p, row in zip(good, sims)]
        text = "\n".join(lines) + "\n"
    write_output(text, args.out)
    return _finish(failed, total)


def write_embeddings(out: Path, paths: list[str], emb, provenance: dict) -> None:
    """Embeddings, their paths and the provenance committed together: one Parquet or ``.npz`` container, or for
    ``.npy`` the array and its ``.txt`` file list, both fully written before either is renamed into place."""
    import numpy as np

    from .fileio import atomic_path

    if out.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"path": paths, "embedding": [row.tolist() for row in emb]})
        table = table.replace_schema_metadata({b"paraspeechclap": json.dumps(provenance).encode()})
        with atomic_path(out) as tmp:
            pq.write_table(table, tmp)
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


def run_embed(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix not in (".npy", ".npz", ".parquet"):
        print(f"error: --out must end in .npy, .npz or .parquet, got {out}", file=sys.stderr)
        return 2
    model, good, emb, failed, total = _start(args, [str(out.with_suffix(".txt"))] if out.suffix == ".npy" else [])
    if not good:
        return 1
    write_embeddings(out, good, emb, model.provenance())
    print(f"wrote {len(good)} embeddings of dimension {emb.shape[1]} to {out}"
          + (f" (file list: {out.with_suffix('.txt')})" if out.suffix == ".npy" else "")
          + f"; {model.precision} on {model.engine.device}")
    return _finish(failed, total)


def _add_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="audio files, globs, folders, or CSV/TSV/JSONL manifests")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def _add_output_format(parser: argparse.ArgumentParser) -> None:
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON instead of a table")
    fmt.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    parser.add_argument("--out", help="write the output to this file (atomically) instead of stdout")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="paraspeechclap", description="ParaSpeechCLAP: speech <-> style descriptions")
    parser.add_argument("--version", action="version", version=f"paraspeechclap {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command", required=True)

    classify = sub.add_parser("classify", help="zero-shot style classification of audio files")
    _add_inputs(classify)
    classify.add_argument("--candidates", nargs="+", required=True, help="candidate styles, e.g. deep shrill nasal")
    classify.add_argument("--template", action="append",
                          help="prompt template with {} (repeat to average several; default: the model's)")
    _add_output_format(classify)
    add_model_arguments(classify)
    classify.set_defaults(func=run_classify)

    score = sub.add_parser("score", help="cosine similarity of audio files to style descriptions")
    _add_inputs(score)
    score.add_argument("--text", action="append", required=True, help="a style description (repeatable)")
    _add_output_format(score)
    add_model_arguments(score)
    score.set_defaults(func=run_score)

    embed = sub.add_parser("embed", help="audio embeddings to .npy (+ file list) or Parquet")
    _add_inputs(embed)
    embed.add_argument("--out", required=True,
                       help="output .parquet or .npz (one file with paths and provenance) or .npy (+ .txt file list)")
    add_model_arguments(embed)
    embed.set_defaults(func=run_embed)

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
