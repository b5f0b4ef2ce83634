"""``paraspeechclap tts-eval``: the style-adherence benchmark of one or more TTS systems, as a report folder."""
from __future__ import annotations

import argparse
import sys

from .. import output

HELP = "benchmark the style adherence of TTS systems: contrastive and per-attribute scores with CIs and a signature"

EPILOG = """\
examples:
  paraspeechclap tts-eval --prompts prompts.jsonl --system a=out_a/ --system b=out_b.jsonl --out report/
  paraspeechclap tts-eval --prompts prompts.csv --system a=out_a/ --system b=out_b/ --robustness a \\
      --human ratings.jsonl --out report/ --model intrinsic

--prompts: JSONL/CSV/TSV/Parquet rows with id, caption, optional transcript and labels ({"pitch": "deep"} or
["deep", "slow"]). --system NAME=PATH: a folder of <prompt id>.<ext> audio files, or a manifest with id and path.
Every score is printed under the signature that pins it (model and weights hash, precision, preprocessing,
counterfactual table, attribute table and template, gates, metric version, prompt set, bootstrap and seed).
The report folder holds report.json, systems.csv/json, attributes.csv, pairs.csv, clips.csv, plots/ and index.html
(audio players link the clips where they are; --audio copy copies them into the report). --precision defaults to
fp32 here: the path on which the signature's numbers reproduce on another machine.

exit codes: 0 every clip scored; 1 some item failed (missing or unreadable clip, bad row, a prompt naming no known
attribute), the report is still written; 2 bad arguments, unreadable prompts, a refused --out or a model that does not
load."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..modelspec import REPRODUCIBLE, ModelSpec

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--prompts", required=True, help="the prompts file (id, caption, transcript?, labels?)")
    parser.add_argument("--system", action="append", required=True, metavar="NAME=PATH",
                        help="one system's clips: a folder of <id>.<ext> files or a manifest (repeat per system)")
    parser.add_argument("--out", required=True, help="report folder (an earlier report there is replaced; a folder "
                                                     "holding other files is refused)")
    parser.add_argument("--robustness", metavar="SYSTEM", help="perturb this system's clips (taken as correct "
                                                               "renderings) and report which perturbations raise a score")
    parser.add_argument("--human", metavar="FILE", help="human pairwise preferences or ratings of the same clips")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates over prompts (default 1000)")
    parser.add_argument("--permutations", type=int, default=10000,
                        help="approximate-randomisation resamples per paired test (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="resampling seed (default 0)")
    parser.add_argument("--ci", type=float, default=95.0, help="interval level in percent (default 95)")
    parser.add_argument("--audio", choices=["link", "copy", "none"], default="link",
                        help="the report's audio players: link the clips where they are (default), copy them, or none")
    parser.add_argument("--no-plots", action="store_true", help="no PNG plots")
    parser.add_argument("--cache-dir", help="audio-embedding cache (default: the evaluation cache, "
                                            "~/.cache/paraspeechclap/embeddings)")
    parser.add_argument("--no-cache", action="store_true", help="no on-disk embedding cache")
    parser.add_argument("--counterfactuals", metavar="FILE", help="another counterfactual table (changes the signature)")
    parser.add_argument("--attributes", metavar="FILE", help="another attribute table (changes the signature)")
    parser.add_argument("--gates", metavar="FILE", help="another quality-gate table (changes the signature)")
    output.add_arguments(parser, formats=("table", "json", "jsonl", "csv"), aliases=("json",), out=False)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    ModelSpec.add_arguments(parser, **REPRODUCIBLE)  # the signature's reproducible path; --precision auto is allowed


def _usage(args: argparse.Namespace) -> str | None:
    if args.bootstrap < 1 or args.permutations < 1:
        return "--bootstrap and --permutations must be at least 1"
    if not 0 < args.ci < 100:
        return f"--ci must be between 0 and 100, got {args.ci}"
    if args.batch_size is not None and args.batch_size < 1:
        return f"--batch-size must be at least 1, got {args.batch_size}"
    return None


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; returns the exit code."""
    from ..modelspec import ModelSpec
    from ..evaluate.report import ReportFolderError, check_report_folder
    from .inputs import InputError, parse_system_spec
    from .report import _system_tables, system_columns
    from .run import evaluate_systems

    err = sys.stderr
    problem = _usage(args)
    try:
        fmt = output.chosen_format(args, file_out=False)
    except ValueError as exc:
        problem = problem or str(exc)
    specs = [parse_system_spec(s) for s in args.system]
    if problem is None and len({n for n, _ in specs}) != len(specs):
        problem = f"system names must differ (give NAME=PATH): {[n for n, _ in specs]}"
    if problem is None and args.robustness is not None and args.robustness not in {n for n, _ in specs}:
        problem = f"--robustness {args.robustness!r} is not one of the systems {[n for n, _ in specs]}"
    if problem:
        print(f"error: {problem}", file=err)
        return 2
    try:
        check_report_folder(args.out)
    except ReportFolderError as exc:
        print(f"error: {exc}", file=err)
        return 2
    try:
        model = ModelSpec.from_args(args).load()
    except Exception as exc:  # noqa: BLE001 - any load failure is a usage error here
        print(f"error: could not load model {args.model!r}: {type(exc).__name__}: {exc}", file=err)
        return 2
    try:
        result = evaluate_systems(args.prompts, specs, model, n_boot=args.bootstrap, seed=args.seed,
                                  level=args.ci / 100, n_permutations=args.permutations,
                                  cache_dir=None if args.no_cache else (args.cache_dir or "default"),
                                  batch_size=args.batch_size, robustness=args.robustness, human=args.human,
                                  counterfactuals=args.counterfactuals, attributes=args.attributes, gates=args.gates,
                                  progress=not args.quiet)
    except (InputError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    for p in result.problems:
        print(p.line(), file=err)
    try:
        result.write_report(args.out, audio=args.audio, plots=not args.no_plots)
    except (ReportFolderError, OSError) as exc:
        print(f"error: could not write the report to {args.out}: {exc}", file=err)
        return 2
    rows, systems = _system_tables(result.doc)  # json: systems.json (signature and per-system scores)
    output.emit(fmt, None, provenance=result.doc.get("provenance") or {}, document=systems, table=lambda: result.summary() + "\n",
                rows=[dict(zip(system_columns(), row)) for row in rows])
    print(f"report: {args.out}/index.html ({result.doc['elapsed_s']:.1f} s)", file=err)
    return 1 if result.failed else 0
