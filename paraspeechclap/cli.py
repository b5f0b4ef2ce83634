"""One command-line entry point: ``paraspeechclap <command>``.

Inference commands (``score``, ``classify``, ``embed``) live here; the others live in their rooms as modules
exposing ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import csv
import glob
import importlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Sequence

# command -> module (each exposes HELP, add_arguments, run)
ROOM_COMMANDS = {
    "train": "paraspeechclap.train.cli",
    "evaluate": "paraspeechclap.evaluate.cli",
    "rerank": "paraspeechclap.rerank.cli",
    "synth": "paraspeechclap.synth.cli",
    "demo": "paraspeechclap.demo",
}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".opus"}


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
    group.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "int8"],
                       help="numeric precision for inference (auto: bf16 where the hardware has it, else fp32)")
    group.add_argument("--batch-size", type=int, default=None,
                       help="clips per batch, sorted by length (default 8)")


def load_model_from_args(args: argparse.Namespace):
    from .model import ParaSpeechCLAP

    return ParaSpeechCLAP.from_pretrained(args.model, speech_model=args.speech_model, text_model=args.text_model,
                                          embedding_dim=args.embedding_dim, device=args.device,
                                          precision=args.precision)


def _manifest_paths(path: Path) -> list[str]:
    """Audio paths listed in a CSV/JSONL manifest: a ``path``/``audio``/``audio_path`` column, or
    ``relative_audio_path`` (+ ``source``) resolved against ``audio_root`` when present."""
    rows: list[dict]
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{number}: invalid JSON ({err})") from None
    else:
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
    paths = []
    for number, row in enumerate(rows, 1):
        for key in ("path", "audio", "audio_path", "file"):
            if row.get(key):
                paths.append(str(row[key]))
                break
        else:
            if row.get("relative_audio_path"):
                root = Path(row.get("audio_root") or path.parent)
                paths.append(str(root / (row.get("source") or "") / row["relative_audio_path"]))
            else:
                raise ValueError(f"{path}: row {number} has no 'path' (or 'audio', 'audio_path', "
                                 f"'relative_audio_path') column")
    return paths


def expand_inputs(items: Sequence[str]) -> list[str]:
    """Files, globs, folders (audio files inside, recursively) and CSV/JSONL manifests -> list of paths."""
    paths: list[str] = []
    for item in items:
        path = Path(item)
        if path.suffix in (".csv", ".jsonl") and path.is_file():
            paths.extend(_manifest_paths(path))
        elif path.is_dir():
            paths.extend(sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES))
        elif any(ch in item for ch in "*?["):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                print(f"warning: no files match {item!r}", file=sys.stderr)
            paths.extend(matches)
        else:
            paths.append(item)  # missing files are reported when loaded
    return paths


def load_inputs(model, paths: Sequence[str]):
    """Decode every path; return (good paths, their waveforms, {bad path: reason})."""
    from .audio import AudioError, load_audio

    good, waves, failed = [], [], {}
    for path in paths:
        try:
            wave = load_audio(path, model.sampling_rate)
            model.check_length(wave, path)
        except AudioError as err:
            failed[path] = err.problem
            print(f"error: {err}", file=sys.stderr)
            continue
        good.append(path)
        waves.append(wave)
    return good, waves, failed


def write_output(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    from .fileio import atomic_write_text

    atomic_write_text(out, text)


def _finish(failed: dict, total: int) -> int:
    if failed:
        print(f"{len(failed)} of {total} file(s) failed and were skipped", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------------------------- commands
def run_classify(args: argparse.Namespace) -> int:
    model = load_model_from_args(args)
    paths = expand_inputs(args.inputs)
    good, waves, failed = load_inputs(model, paths)
    if not good:
        print("error: no readable audio", file=sys.stderr)
        return 1
    import numpy as np

    audio_emb = model.embed_waveforms(waves, batch_size=args.batch_size, progress=len(good) > 16)
    prompts = model.embed_prompts(args.candidates, args.template)
    sims = audio_emb @ prompts.T
    probs = model.classify_embeddings(audio_emb, args.candidates, args.template)
    records = []
    for path, sim_row, prob in zip(good, sims, probs):
        order = np.argsort(-sim_row, kind="stable")
        ranking = [{"style": args.candidates[i], "similarity": float(sim_row[i]),
                    "probability": prob[args.candidates[i]]} for i in order]
        records.append({"path": path, "prediction": ranking[0]["style"], "ranking": ranking})
    if args.json:
        text = json.dumps({"model": args.model, "template": args.template or model.config.prompt_template,
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
    return _finish(failed, len(paths))


def run_score(args: argparse.Namespace) -> int:
    model = load_model_from_args(args)
    paths = expand_inputs(args.inputs)
    good, waves, failed = load_inputs(model, paths)
    if not good:
        print("error: no readable audio", file=sys.stderr)
        return 1
    sims = model.embed_waveforms(waves, batch_size=args.batch_size, progress=len(good) > 16) @ model.embed_text(args.text).T
    if args.json:
        text = json.dumps({"model": args.model, "texts": args.text, "failed": failed,
                           "results": [{"path": p, "scores": dict(zip(args.text, map(float, row)))}
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
        lines = []
        for number, t in enumerate(args.text, 1):
            lines.append(f"[{number}] {t}")
        lines.append(f"{'audio':<{width}}" + "".join(f"{'[' + str(n) + ']':>10}" for n in range(1, len(args.text) + 1)))
        lines += [f"{p:<{width}}" + "".join(f"{s:>10.4f}" for s in row) for p, row in zip(good, sims)]
        text = "\n".join(lines) + "\n"
    write_output(text, args.out)
    return _finish(failed, len(paths))


def run_embed(args: argparse.Namespace) -> int:
    import numpy as np

    model = load_model_from_args(args)
    paths = expand_inputs(args.inputs)
    good, waves, failed = load_inputs(model, paths)
    if not good:
        print("error: no readable audio", file=sys.stderr)
        return 1
    emb = model.embed_waveforms(waves, batch_size=args.batch_size, progress=len(good) > 16)
    out = Path(args.out)
    from .fileio import atomic_path

    if out.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"path": good, "embedding": [row.tolist() for row in emb]})
        with atomic_path(out) as tmp:
            pq.write_table(table, tmp)
    elif out.suffix == ".npy":
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, emb)
        with atomic_path(out.with_suffix(".txt")) as tmp:
            Path(tmp).write_text("\n".join(good) + "\n")
    else:
        print(f"error: --out must end in .npy or .parquet, got {out}", file=sys.stderr)
        return 2
    print(f"wrote {len(good)} embeddings of dimension {emb.shape[1]} to {out}"
          + (f" (file list: {out.with_suffix('.txt')})" if out.suffix == ".npy" else ""))
    return _finish(failed, len(paths))


def _add_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="audio files, globs, folders, or CSV/JSONL manifests")


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
    embed.add_argument("--out", required=True, help="output .npy or .parquet file")
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
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
