"""``paraspeechclap evaluate``: run an evaluation suite and write one report folder.

Exit codes: 0 every task ran and every item was scored; 1 the evaluation failed (bad suite or manifest, empty
set, gold label outside the candidates, model not loadable, a task that could not be scored); 2 usage error;
3 the report was written but some items were skipped (missing or unreadable audio), unless --allow-missing.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional

from ..modelspec import REPRODUCIBLE, ModelSpec
from ..prompts import DEFAULT_TEMPLATE

HELP = "evaluate a model: the paper's retrieval and classification suites, or your own manifest"

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3

EPILOG = """examples:
  paraspeechclap evaluate --suite paper --model combined --audio-root /data/audio --out reports/combined
  paraspeechclap evaluate --suite my_set.jsonl --candidates deep shrill nasal --model intrinsic --audio-root DIR
  paraspeechclap evaluate --suite my_suite.json --model ckpt.pth.tar --speech-model S --text-model T --embedding-dim 768

--suite: paper | retrieval | classification | intrinsic | situational | combined (built-in, reading
ajd12342/paraspeechclap-eval-* from the hub, or from --data-dir copies), a manifest (.jsonl/.csv/.tsv/.parquet/.json
records with source, relative_audio_path, text_description and/or classification_tag), or a suite .json.

exit codes: 0 complete; 1 failed; 2 usage; 3 report written but some items were skipped (see --allow-missing)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    what = parser.add_argument_group("what to evaluate")
    what.add_argument("--suite", default="paper", help="built-in suite name, manifest path or suite JSON (default: paper)")
    what.add_argument("--candidates", nargs="+", metavar="CLASS",
                      help="candidate classes for the (single) classification task; default for a manifest: its gold labels")
    what.add_argument("--audio-root", help="folder holding {source}/{relative_audio_path} (default for a manifest: its folder)")
    what.add_argument("--data-dir", help="folder with local `save_to_disk` copies of the eval datasets "
                                         "(e.g. DIR/paraspeechclap-eval-intrinsic), for offline use")
    what.add_argument("--caption-column", default="text_description", help="caption column (default: text_description)")
    what.add_argument("--label-column", default="classification_tag", help="gold label column (default: classification_tag)")
    what.add_argument("--max-items", type=int, help="only the first N rows of each task (quick runs; numbers not comparable)")

    ModelSpec.add_arguments(parser, **REPRODUCIBLE)  # fp32, as the reference evaluated

    how = parser.add_argument_group("how")
    how.add_argument("--template", action="append", metavar="TEMPLATE",
                     help=f"prompt template with one {{}} (default: the model's, for the paper models "
                          f"\"{DEFAULT_TEMPLATE}\"); repeat to average several")
    how.add_argument("--templates", nargs="+", metavar="TEMPLATE",
                     help="several templates at once; each class embedding is the renormalised mean over them")
    how.add_argument("--cache-dir", help="audio-embedding cache folder (default: ~/.cache/paraspeechclap/embeddings)")
    how.add_argument("--no-cache", action="store_true", help="do not read or write the on-disk embedding cache")
    how.add_argument("--top-k", type=int, default=10, help="captions per clip in top_k_retrieved_captions.json (default 10)")
    how.add_argument("--save-similarity", action="store_true", help="also save each retrieval similarity matrix (.npy)")
    how.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    how.add_argument("--allow-missing", action="store_true", help="exit 0 even if some audio was missing or unreadable")
    how.add_argument("--quiet", action="store_true", help="no progress bars")

    parser.add_argument("--out", help="report folder (default: reports/<suite>-<model>); an earlier report there is "
                                      "replaced as a whole, a folder holding other files is refused (exit 2)")


def _model_name(source: str) -> str:
    path = Path(source)
    name = path.name if path.suffix or path.is_dir() else source
    for suffix in (".pth.tar", ".tar", ".pth", ".safetensors"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from .cache import default_cache_dir
    from .classification import check_templates
    from .report import ReportFolderError, check_report_folder, summary_text, write_report
    from .runner import prepare_suite, run_suite
    from .suites import SuiteError, resolve_suite

    def fail(message: str, code: int = EXIT_FAILED) -> int:
        print(f"error: {message}", file=sys.stderr)
        return code

    if args.batch_size is not None and args.batch_size <= 0:
        return fail(f"--batch-size must be positive, got {args.batch_size}", EXIT_USAGE)
    if args.top_k <= 0:
        return fail(f"--top-k must be positive, got {args.top_k}", EXIT_USAGE)
    templates = (args.template or []) + (args.templates or [])
    if templates:
        try:
            check_templates(templates)
        except ValueError as err:
            return fail(str(err), EXIT_USAGE)

    try:
        suite = resolve_suite(args.suite, args.candidates, args.caption_column, args.label_column)
        prepared = prepare_suite(suite, audio_root=args.audio_root, data_dir=args.data_dir, max_items=args.max_items)
        if not templates and getattr(suite, "template", None):
            templates = [suite.template]  # the template the suite was made for, unless --template says otherwise
    except SuiteError as err:
        return fail(str(err))

    model_name = _model_name(args.model)
    out_dir = Path(args.out or Path("reports") / f"{Path(suite.name).name}-{model_name}")
    cache_dir = None if args.no_cache else (args.cache_dir or str(default_cache_dir()))
    try:  # before the model is loaded: a folder we may not replace fails in seconds, not after the run
        check_report_folder(out_dir)
    except ReportFolderError as err:
        return fail(str(err), EXIT_USAGE)
    try:
        model = ModelSpec.from_args(args).load()
    except Exception as err:  # from_pretrained raises clear errors of several types; all are fatal here
        return fail(f"cannot load model {args.model!r}: {err}")

    n_items = sum(len(p.rows.items) for p in prepared)
    if not args.quiet:
        print(f"suite {suite.name}: {len(prepared)} task(s), {n_items} item(s); model {args.model}", file=sys.stderr)
    settings = {"suite_argument": args.suite, "audio_root": args.audio_root, "data_dir": args.data_dir,
                "device": str(getattr(model, "device", args.device)),
                "precision": str(getattr(model, "precision", args.precision)), "max_items": args.max_items,
                "caption_choice": "first non-blank element of a list", "top_k": args.top_k}
    outcome = run_suite(model, prepared, suite.name, templates=templates or None,
                        batch_size=args.batch_size or model.default_batch_size, cache_dir=cache_dir,
                        progress=not args.quiet, settings=settings,
                        model_info={"source": args.model, "name": model_name, "class": type(model).__name__})
    try:
        write_report(outcome, out_dir, model_name=model_name, top_k=args.top_k,
                     save_similarity=args.save_similarity, plots=not args.no_plots)
    except OSError as err:
        return fail(f"cannot write the report to {out_dir}: {err}")

    print(summary_text(outcome, model_name))
    n_scored = sum(t.n_scored for t in outcome.tasks)
    n_total = sum(t.n_total for t in outcome.tasks)
    print(f"\n{n_scored} of {n_total} items scored; report: {out_dir}/index.html", file=sys.stderr)
    for t in outcome.tasks:
        if t.status != "ok":
            print(f"error: task {t.task.name} failed: {t.error}", file=sys.stderr)
        elif t.skipped:
            print(f"warning: task {t.task.name}: {len(t.skipped)} of {t.n_total} items skipped "
                  f"(first: {t.skipped[0]['path']}: {t.skipped[0]['reason']})", file=sys.stderr)
    if not outcome.ok:
        return EXIT_FAILED
    if not outcome.complete and not args.allow_missing:
        return EXIT_PARTIAL
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paraspeechclap evaluate", description=HELP)
    add_arguments(parser)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Stand-alone entry (``python -m paraspeechclap.evaluate``); the package CLI calls ``add_arguments``/``run``."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
