"""Run folders: where a run writes, forks off an older checkpoint, and the command that resumes it."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import Sequence

from .. import fileio
from . import checkpointing as C
from . import distributed as D
from .config import Config, dump
from .logs import LOG_FILES, copy_log_rows

logger = logging.getLogger("paraspeechclap.train")


class ResumeConflict(FileExistsError):
    """Resuming would write into a run folder that holds newer checkpoints (use --fork)."""


def fork_dir(src: Path, base: Path) -> Path:
    """A new folder beside ``src`` for a branch off checkpoint ``base``: ``{src}-fork-{base}`` (``-2``, ``-3`` ...
    when taken)."""
    cand = src.parent / f"{src.name}-fork-{base.name}"
    n = 2
    while cand.exists():
        cand = src.parent / f"{src.name}-fork-{base.name}-{n}"
        n += 1
    return cand


def _same_dir(a: Path | None, b: Path | None) -> bool:
    return a is not None and b is not None and Path(a).resolve() == Path(b).resolve()


def plan_run_dir(configured: Path, base: Path | None, broken: Sequence[Path] = (), *, fork: bool = False,
                 overwrite: bool = False) -> Path:
    """Where a run writes, or an error when that would clobber checkpoints.

    * fresh run: ``configured``; one that already holds checkpoints is refused (``run.overwrite=true`` deletes
      them);
    * resume from the head of its own run folder (the checkpoint written last, or the newest one that loads):
      that folder;
    * resume from an older checkpoint of ``configured``: refused (its newer checkpoints would be abandoned and
      pruned) unless ``fork``; a fork writes to a new folder (:func:`fork_dir`) and leaves the old one untouched;
    * resume into another folder (``run.output_dir=...``): that folder, which must hold no checkpoints."""
    configured = Path(configured)
    src = C.run_dir_of(base) if base is not None else None
    if base is not None and fork and (src is None or _same_dir(configured, src)):
        return fork_dir(configured, base)
    if base is not None and not fork and _same_dir(configured, src):
        cks = C.list_checkpoints(src)
        names = [p.name for p in cks]
        bad = {Path(p).name for p in broken}
        newer = [p.name for p in cks[names.index(base.name) + 1:] if p.name not in bad] if base.name in names else []
        if newer:
            raise ResumeConflict(
                f"{base} is older than the newest checkpoint of {src} ({newer[-1]}); resuming into the same folder "
                f"would abandon {', '.join(newer)}. Continue the newest with --resume {src}, or branch off this "
                f"checkpoint with --resume {base} --fork (writes to a new run folder)")
        return configured
    if C.list_checkpoints(configured):
        if base is None and overwrite:
            _clear_run(configured)
            return configured
        hint = (f"continue it with --resume {configured}, or start afresh elsewhere (run.output_dir=...) or with "
                f"run.overwrite=true") if base is None else "choose another run.output_dir, or use --fork"
        raise FileExistsError(f"{configured} already holds checkpoints: {hint}")
    return configured


def _clear_run(run_dir: Path) -> None:
    """run.overwrite=true: delete this project's checkpoints and logs in ``run_dir`` (nothing else)."""
    for p in C.list_checkpoints(run_dir):
        C.remove_checkpoint(p)
    C.clean_temporaries(C.checkpoint_root(run_dir))
    (C.checkpoint_root(run_dir) / C.LATEST).unlink(missing_ok=True)
    for f in (*LOG_FILES, "bad_audio.tsv"):
        (run_dir / f).unlink(missing_ok=True)


def resume_command(run_dir: Path, dist) -> str:
    """The command that continues this run (the saved config holds every override)."""
    where = shlex.quote(str(run_dir))
    if dist.distributed:
        return f"torchrun --nproc_per_node={dist.world_size} -m paraspeechclap train --resume {where}"
    return f"paraspeechclap train --resume {where}"


def prepare_run_dir(cfg: Config, dist, base: Path | None, broken: Sequence[Path], *, fork: bool) -> Path:
    """The folder this run writes to (every rank agrees); refuses to clobber checkpoints (see :func:`plan_run_dir`).
    Rank 0 creates it, writes config.yaml, and gives a fork its parent's log history."""
    configured = Path(cfg.run.output_dir) if cfg.run.get("output_dir") else Path(cfg.run.output_root) / cfg.run.name
    plan: tuple = (None, None, None)
    if dist.is_main:
        try:
            plan = (str(plan_run_dir(configured, base, broken, fork=fork,
                                     overwrite=bool(cfg.run.get("overwrite")))), None, None)
        except FileExistsError as e:  # every rank raises it, none waits for the others
            plan = (None, type(e).__name__, str(e))
    where, err, msg = D.broadcast_object(plan)
    if err is not None:
        raise (ResumeConflict if err == "ResumeConflict" else FileExistsError)(msg)
    run_dir = Path(where)
    cfg.run.output_dir = str(run_dir)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        fileio.atomic_write_text(run_dir / "config.yaml", dump(cfg))
        parent = C.run_dir_of(base) if base is not None else None
        if parent is not None and parent.resolve() != run_dir.resolve():
            step = int(C.read_marker(base).get("step", 0))
            for name in LOG_FILES:  # a fork starts with its parent's history
                copy_log_rows(parent / name, run_dir / name, step)
            logger.info("forked from %s into %s", base, run_dir)
    D.barrier()
    return run_dir
