"""`paraspeechclap synth`: generate the offline labelled style corpus, or re-verify an existing one."""

from __future__ import annotations

import argparse
import sys

HELP = "generate the offline labelled speaking-style corpus (espeak-ng/mbrola) and verify its labels"


def _splits(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--splits {text!r}: expected three numbers like 0.8,0.1,0.1")
    if len(parts) != 3 or any(p < 0 for p in parts) or sum(parts) <= 0 or parts[2] <= 0:
        raise argparse.ArgumentTypeError(f"--splits {text!r}: need train,validation,test >= 0 with test > 0")
    return parts  # type: ignore[return-value]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True,
                        help="output folder (manifests, audio/, card); files synth did not write are never replaced")
    parser.add_argument("--num-clips", type=int, default=10000, help="clips to generate (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--splits", type=_splits, default=(0.8, 0.1, 0.1),
                        help="train,validation,test fractions (default 0.8,0.1,0.1)")
    parser.add_argument("--no-augment", action="store_true",
                        help="no jitter/EQ/reverb/noise (level normalised to -23 dBFS)")
    parser.add_argument("--no-mbrola", action="store_true", help="do not use mbrola voices even if installed")
    parser.add_argument("--voices", default=None,
                        help="comma-separated subset of voices (e.g. espeak+m4,espeak+f3,espeak+m3,espeak+f4)")
    parser.add_argument("--unchecked-neutral-range", action="store_true",
                        help="keep neutral-range clips whatever their measured F0 spread, as corpora made before that "
                             "check (scripts/train_mini.sh: the corpus the shipped mini was trained on)")
    parser.add_argument("--verify-only", action="store_true",
                        help="re-measure the stored audio of an existing corpus in --out and report agreement")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Exit code: 0 done, 1 the engine or the corpus failed, 2 bad arguments or a refused output folder."""
    from .engines import EngineError
    from .record import OutputExistsError

    if args.num_clips < 3 and not args.verify_only:
        print("synth: --num-clips must be at least 3 (one per split)", file=sys.stderr)
        return 2
    try:
        if args.verify_only:
            from .verify import verify_corpus
            s = verify_corpus(args.out, workers=args.workers, progress=not args.quiet)
            print(f"re-measured {s['clips']} stored clips ({s['unreadable']} unreadable); "
                  f"{s['all_tags_agree']} agree on every tag -> {args.out}/verification_stored.json")
            for attr, a in s["agreement"].items():
                print(f"  {attr:14s} agreement {a['agreement']}  ({a['agree']}/{a['checked']})")
            for bad in s["bad_rows"]:
                print(f"synth: skipped a bad row: {bad}", file=sys.stderr)
            return 0
        from .generate import generate_corpus
        s = generate_corpus(args.out, num_clips=args.num_clips, seed=args.seed, workers=args.workers,
                            splits=tuple(args.splits), augment_audio=not args.no_augment,
                            use_mbrola=False if args.no_mbrola else None, progress=not args.quiet,
                            voice_names=args.voices.split(",") if args.voices else None,
                            check_neutral_range=not args.unchecked_neutral_range)
    except OutputExistsError as exc:
        print(f"synth: {exc}", file=sys.stderr)
        return 2
    except (EngineError, FileNotFoundError, ValueError) as exc:
        print(f"synth: {exc}", file=sys.stderr)
        return 1
    print(f"generated {s['generated']}, kept {s['kept']} {s['kept_per_split']}, dropped {s['dropped']}, "
          f"render errors {s['render_errors']}; {s['settings']['generation_seconds']} s")
    for attr, a in s["agreement"].items():
        print(f"  {attr:14s} agreement {a['agreement']}  ({a['agree']}/{a['checked']})")
    print(f"card: {args.out}/CORPUS_CARD.md")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="paraspeechclap synth", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
