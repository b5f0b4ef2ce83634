"""``paraspeechclap train``: run a training recipe.

    paraspeechclap train --config intrinsic data.audio_root=/data/psc [key=value ...]
    paraspeechclap train --config my_recipe.yaml optim.lr=3e-5 freeze=[text_branch.base]
    paraspeechclap train --resume runs/paraspeechclap_intrinsic        # newest checkpoint that loads
    paraspeechclap train --resume runs/x/checkpoints/step_00001500 --fork   # branch off an older one (new folder)
    torchrun --nproc_per_node=4 -m paraspeechclap train --config intrinsic data.audio_root=/data/psc
"""

from __future__ import annotations

import argparse
import logging
import sys

HELP = "train a ParaSpeechCLAP model (recipes: intrinsic, situational, combined, or a YAML file)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", default=None,
                        help="recipe name (intrinsic, situational, combined) or a YAML path; "
                             "default: intrinsic, or the saved config with --resume")
    parser.add_argument("--resume", default=None, metavar="DIR",
                        help="continue exactly from a run folder (its newest checkpoint that loads) or a checkpoint "
                             "folder; resuming an older checkpoint into its own run folder needs --fork")
    parser.add_argument("--fork", action="store_true",
                        help="with --resume: continue in a new run folder (RUN-fork-step_N unless run.output_dir is "
                             "given), leaving the original run and its newer checkpoints untouched")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, dotted (optim.lr=3e-5) or a unique leaf name (lr=3e-5)")


def run(args: argparse.Namespace) -> int:
    from .config import ConfigError, dump, load_config

    try:
        if args.print_config:
            print(dump(load_config(args.config or "intrinsic", args.overrides)), end="")
            return 0
        if args.fork and not args.resume:
            raise ConfigError("--fork needs --resume")
        from .trainer import train

        result = train(args.config if (args.config or not args.resume) else None, args.overrides,
                       resume=args.resume, fork=args.fork)
        if result.get("stopped"):
            print(f"paraspeechclap train: stopped by {result['stopped']} at step {result['step']}; "
                  f"resume with: {result['resume_command']}", file=sys.stderr)
    except ConfigError as e:
        print(f"paraspeechclap train: config error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, FileExistsError) as e:
        print(f"paraspeechclap train: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001
        from .checkpointing import CheckpointError
        from .data import DataError
        from .trainer import NonFiniteError

        if isinstance(e, (DataError, NonFiniteError, CheckpointError)):
            print(f"paraspeechclap train: {e}", file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:  # a second Ctrl-C: no checkpoint of this step
        logging.getLogger("paraspeechclap.train").warning(
            "interrupted at once; resume from the last checkpoint with --resume RUN_FOLDER")
        return 130
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="paraspeechclap train", description=HELP)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
