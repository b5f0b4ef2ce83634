"""``paraspeechclap rerank``: best-of-N selection over a TTS output layout, a JSONL manifest or a folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import output

REPORT_FORMATS = ("table", "json", "jsonl", "csv")
HELP = "pick the candidate audio that best matches each style prompt (best-of-N reranking)"

_DESCRIPTION = """\
Score every candidate audio against its style caption (cosine of the model's embeddings) and
keep the best one per prompt.

INPUT is one of
  a plain folder of candidate audio files, all for one caption given with --caption "..."
    (the chosen file is written as OUTPUT/audios/<folder name><suffix>);
  a ParaSpeechCaps TTS output layout
    INPUT/iter_1/input_descriptions.txt   one style prompt per line (line number = prompt index)
    INPUT/iter_K/audios/<index>.wav       candidate K of each prompt, K = 1..N (N found from iter_*)
    INPUT/iter_K/wer_per_example.txt, output_transcriptions.txt   optional, carried along;
  a JSONL manifest with one {"id", "caption", "candidates": [paths], "wer": [...]} per line.
Results name every candidate by its file (the "name" field: the file name, iter_K/audios/<i>.wav,
or the manifest's path).

Ties go to the highest score, then the lowest candidate index (earliest iteration).
--score contrastive ranks by the contrastive adherence of paraspeechclap tts-eval instead of the
cosine (a caption naming no attribute the counterfactual table can flip leaves its prompt unchosen).
--gate wer<=0.2 keeps only candidates passing the gate (all fail: fall back to the plain score,
flagged "fallback"); --weight wer=-1.0 ranks by score + weight * value. Blank prompt lines and
missing files are reported and skipped without shifting indices.

Writes OUTPUT/audios/<index>.wav (copy, or symlink with --link), OUTPUT/selection.json and
OUTPUT/selection.csv (every candidate's score, rank, eligibility; margin and flags per prompt);
for a layout also selection_summary.json (the reference script's format), the chosen
wer_per_example.txt / output_transcriptions.txt lines and the optional common files.
OUTPUT may not contain any input. Files in OUTPUT that an earlier rerank did not write (as
listed in its selection.json) are never replaced or removed; --overwrite replaces only an
earlier rerank's own files and removes those of them this run does not rewrite.
Bad manifest rows (invalid JSON or UTF-8, not an object, no candidates) are reported with
their line number and skipped.
Exit code: 0 all prompts chosen, 1 some prompt failed or some manifest row was invalid,
2 bad arguments, unreadable input, a refused output folder, or a model that does not load.
"""


SCORE_DEFINITIONS = {
    "cosine": "cosine(text_emb(caption), audio_emb(candidate))",
    "contrastive": "contrastive adherence: mean over named attributes of sigmoid(logit_scale * (cos(caption) - "
                   "cos(caption with the attribute flipped))) (paraspeechclap.ttseval.contrastive)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the rerank options on ``parser``."""
    from .reward import REWARD_SCORES

    parser.description = _DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("input", type=Path,
                        help="a folder of candidates (with --caption), a layout folder (with iter_*/) or a manifest .jsonl")
    parser.add_argument("--caption", help="the style caption a plain folder's candidates should match")
    parser.add_argument("--output", "-o", type=Path, required=True, help="output folder")
    parser.add_argument("--link", action="store_true", help="symlink the chosen files instead of copying")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier rerank's own outputs in OUTPUT (never other files)"
    )
    parser.add_argument(
        "--gate", action="append", default=[], metavar="COL<=X",
        help="only candidates passing this test on a per-candidate column (repeatable), e.g. wer<=0.2",
    )
    parser.add_argument(
        "--weight", action="append", default=[], metavar="COL=W",
        help="rank by score + W * column (repeatable), e.g. wer=-1.0",
    )
    parser.add_argument(
        "--score", choices=list(REWARD_SCORES), default="cosine",
        help="what ranks the candidates: the caption-audio cosine (default), or the contrastive adherence of "
             "paraspeechclap tts-eval (the probability the caption beats captions flipping one named attribute)",
    )
    output.add_arguments(parser, formats=REPORT_FORMATS, aliases=("json",), out=False)  # json: selection.json
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    from ..modelspec import ModelSpec

    ModelSpec.add_arguments(parser)


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def _table_text(doc: dict) -> str:
    rows = []
    for rec in doc["prompts"]:
        chosen = rec["chosen"] if rec["status"] == "chosen" else None
        which = "-" if chosen is None else chosen["name"]
        caption = rec["caption"] if len(rec["caption"]) <= 48 else rec["caption"][:45] + "..."
        rows.append((rec["id"], caption, which, _fmt(chosen and chosen["score"]), _fmt(rec["margin"]),
                     ",".join(rec["flags"]) or ""))
    header = ("prompt", "caption", "chosen", "score", "margin", "flags")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)]) + "\n"


def report_rows(doc: dict) -> list[dict]:
    """One row per prompt: its id, caption, status, the chosen file (name and path), score, margin and flags."""
    rows = []
    for rec in doc["prompts"]:
        chosen = rec["chosen"] if rec["status"] == "chosen" else {}
        rows.append({"prompt_id": rec["id"], "caption": rec["caption"], "status": rec["status"],
                     "chosen": chosen.get("name"), "path": chosen.get("path"), "score": chosen.get("score"),
                     "margin": rec["margin"], "flags": list(rec["flags"])})
    return rows


def load_model(args: argparse.Namespace):
    """The model named by the model options (:class:`paraspeechclap.modelspec.ModelSpec`)."""
    from ..modelspec import ModelSpec

    return ModelSpec.from_args(args).load()


def _rerank(model, data, args: argparse.Namespace, gates, weights) -> list:
    """Score every candidate with ``--score`` and select one per prompt."""
    from .engine import rerank_input, select_all
    from .reward import contrastive_candidate_scores

    if args.score == "contrastive":
        scores, errors = contrastive_candidate_scores(model, data.prompts, batch_size=args.batch_size,
                                                      show_progress=not args.no_progress)
        return select_all(data.prompts, scores, errors, gates, weights)
    return rerank_input(model, data, gates=gates, weights=weights, batch_size=args.batch_size,
                        show_progress=not args.no_progress)


def run(args: argparse.Namespace) -> int:
    """Run the rerank; returns the exit code."""
    from .inputs import InputError, read_input
    from .outputs import OutputExistsError, check_output_dir, write_outputs
    from .selection import parse_gate, parse_weight

    err = sys.stderr
    try:
        fmt = output.chosen_format(args, file_out=False)
        gates = [parse_gate(g) for g in args.gate]
        weights = dict(parse_weight(w) for w in args.weight)
    except ValueError as exc:
        print(f"error: {exc}", file=err)
        return 2
    if args.batch_size is not None and args.batch_size < 1:
        print(f"error: --batch-size must be at least 1, got {args.batch_size}", file=err)
        return 2
    try:
        data = read_input(args.input, caption=args.caption)
        check_output_dir(args.output, overwrite=args.overwrite, data=data)
    except (InputError, OutputExistsError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    for issue in data.issues:
        print(f"warning: {issue}", file=err)

    try:
        model = load_model(args)
    except Exception as exc:  # noqa: BLE001 - report any load failure as a usage error
        print(f"error: could not load model {args.model!r}: {type(exc).__name__}: {exc}", file=err)
        return 2
    results = _rerank(model, data, args, gates, weights)
    for res in results:
        for pos, message in sorted(res.errors.items()):
            print(f"warning: {res.prompt.candidates[pos].path}: could not be scored ({message}); skipped", file=err)
        if res.failed:
            print(f"error: prompt {res.prompt.id}: no candidate could be chosen", file=err)
    meta = {
        "tool": "paraspeechclap rerank",
        "input": str(args.input),
        "kind": data.kind,
        "model": str(args.model),
        "provenance": model.provenance() if callable(getattr(model, "provenance", None)) else None,
        "output": str(args.output),
        "link": bool(args.link),
        "gates": [str(g) for g in gates],
        "weights": weights,
        "score": SCORE_DEFINITIONS[args.score],
        "tie_break": "highest key (score, or score + weights), then lowest candidate index",
    }
    try:
        doc = write_outputs(args.output, data, results, link=args.link, meta=meta, overwrite=args.overwrite)
    except OutputExistsError as exc:  # the folder changed while the model ran
        print(f"error: {exc}", file=err)
        return 2
    except OSError as exc:
        print(f"error: could not write the outputs to {args.output}: {exc}", file=err)
        return 2
    for issue in doc["issues"][len(data.issues):]:  # problems met while writing (a chosen file gone, ...)
        print(f"error: {issue}", file=err)
    output.emit(fmt, None, provenance=doc.get("provenance") or {}, rows=report_rows(doc), document=doc,
                table=lambda: _table_text(doc))  # json: selection.json as written
    c = doc["counts"]
    print(
        f"{c['chosen']}/{c['prompts']} prompts chosen, {c['failed']} failed; {c['candidates']} candidates, "
        f"{c['missing_files']} missing file(s), {c['audio_errors']} unreadable, {c['blank_lines']} blank "
        f"prompt line(s), {c['invalid_rows']} invalid manifest row(s), {c['fallback']} gate fallback(s), "
        f"{c['ties']} tie(s); wrote {args.output}",
        file=err,
    )
    return 1 if c["failed"] or c["invalid_rows"] else 0
