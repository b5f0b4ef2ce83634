"""Checkpoints: atomic, self-validating folders with weights and the full training state.

Layout under ``{run_dir}/checkpoints/``::

    step_00001500/
        model.pth.tar        plain state dict of the unwrapped model (the released format)
        pretrained/          model.save_pretrained(...) folder (optional)
        training_state.pt    optimizer, scheduler, grad scaler, step, epoch, sampler position,
                             python / numpy / torch (CPU + CUDA) RNG states, config, counters, save sequence
                             (tensors and plain types only: loaded with ``weights_only=True``)
        COMPLETE             the completion record (:class:`CompletionRecord`, JSON): step, save sequence, time
                             and the SHA-256 and size of every other file; written last: a folder without it is
                             never used, and a resume loads only a checkpoint whose files match it
    latest                   name of the newest complete checkpoint (atomically replaced)

Every checkpoint carries a **save sequence number** ``seq`` that grows by one with every save into the folder,
so "newest" means "written last", not "highest step" (a run resumed from an older checkpoint must not have its
new checkpoints look older than the abandoned ones). Each checkpoint is written through
:func:`paraspeechclap.fileio.atomic_dir` with ``durable=True``: a hidden temporary folder, every file fsynced
(errors such as a full disk propagate), renamed into place; a crash leaves either the previous state or a hidden
temporary that is ignored and removed when a run next takes the folder over (:class:`Checkpointer`).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import time
from pathlib import Path
from typing import Callable, Iterable, TypedDict

import numpy as np
import torch

from .. import fileio, schemas

logger = logging.getLogger("paraspeechclap.train")

MARKER = "COMPLETE"
PREFIX = "step_"
MODEL_FILE = "model.pth.tar"
STATE_FILE = "training_state.pt"
PRETRAINED_DIR = "pretrained"
LATEST = "latest"
#: version of the COMPLETE record; 2 added the files' SHA-256 and sizes (1, implicit: a list of file names)
RECORD_VERSION = 2
#: temporaries this module writes through fileio (checkpoint folders, ``latest``), and those of its predecessor
_TEMPORARY = fileio.temporary_pattern(r"step_\d+|latest")
_LEGACY_TEMPORARY = re.compile(r"^(\.tmp-step_\d+-.*|\.old-step_\d+-\d+)$")


class CompletionRecord(TypedDict):
    """The COMPLETE file of a checkpoint (version 2). Version 1 records have no ``version`` key and list ``files``
    as names only: they still load, unverified."""

    version: int
    step: int
    seq: int
    time: float
    files: dict[str, fileio.FileRecord]  # every file of the folder but COMPLETE, by relative POSIX path


class CheckpointError(RuntimeError):
    """A checkpoint could not be written, or none could be loaded."""


# ------------------------------------------------------------------------------------------- RNG
def rng_state() -> dict:
    """Every RNG state as tensors and plain types (so the file loads with ``weights_only=True``)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    st = {
        "python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss": None if gauss is None else float(gauss)},
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = list(torch.cuda.get_rng_state_all())
    return st


def set_rng_state(st: dict) -> None:
    py, npy = st["python"], st["numpy"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    np.random.set_state((npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached_gaussian"]))
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(st["cuda"])
        except (RuntimeError, IndexError) as e:  # different GPU count
            logger.warning("could not restore CUDA RNG states (%s)", e)


# ------------------------------------------------------------------------------------------- listing
def checkpoint_root(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "checkpoints"


def read_marker(path: Path) -> dict | None:
    """The COMPLETE marker of a checkpoint folder, or None when it has none (or an unreadable one)."""
    try:
        text = (Path(path) / MARKER).read_text()
    except OSError:
        return None
    try:
        info = json.loads(text)
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


def is_complete(path: Path) -> bool:
    return (Path(path) / MODEL_FILE).is_file() and read_marker(path) is not None


def save_seq(path: Path) -> int:
    """The save sequence number of a checkpoint; -1 for one written before sequence numbers existed."""
    info = read_marker(path) or {}
    try:
        return int(info.get("seq", -1))
    except (TypeError, ValueError):
        return -1


def _step_of(path: Path) -> int:
    tail = path.name[len(PREFIX):]
    return int(tail) if tail.isdigit() else -1


def read_latest(run_dir: str | os.PathLike) -> str | None:
    try:
        return (checkpoint_root(run_dir) / LATEST).read_text().strip() or None
    except OSError:
        return None


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints, oldest first by save sequence. Checkpoints without a sequence number (older
    versions) come first, ordered by step, with the one named by ``latest`` last among them."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    latest = read_latest(run_dir)
    out = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and is_complete(p)]
    return sorted(out, key=lambda p: (save_seq(p), p.name == latest, _step_of(p)))


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The head of a run folder: the complete checkpoint written last.

    ``latest`` names it; a complete checkpoint with a higher sequence number than the one ``latest`` names can
    only come from a crash between renaming that checkpoint into place and updating ``latest``, so it wins."""
    cks = list_checkpoints(run_dir)
    name = read_latest(run_dir)
    if name and not any(p.name == name for p in cks) and cks:
        logger.warning("%s names %s, which is not a complete checkpoint; using %s", checkpoint_root(run_dir) / LATEST,
                       name, cks[-1].name)
    return cks[-1] if cks else None


def resume_candidates(path: str | os.PathLike) -> list[Path]:
    """What ``--resume PATH`` may load, in order of preference.

    A checkpoint folder: just that one. A run folder (or its ``checkpoints/``): its complete checkpoints, newest
    (by save sequence) first, so a newest checkpoint that does not load falls back to the one before it."""
    p = Path(path)
    if p.is_dir() and p.name.startswith(PREFIX) and p.parent.name == "checkpoints":
        if not is_complete(p):
            raise FileNotFoundError(f"{p} is not a complete checkpoint (no {MARKER} marker)")
        return [p]
    if is_complete(p):
        return [p]
    if p.name == "checkpoints":
        p = p.parent
    latest_checkpoint(p)  # warns about a stale `latest`
    cks = list_checkpoints(p)[::-1]
    if not cks:
        raise FileNotFoundError(f"no complete checkpoint under {p}")
    return cks


def resolve_resume(path: str | os.PathLike) -> Path:
    """The preferred checkpoint for ``--resume PATH`` (see :func:`resume_candidates`)."""
    return resume_candidates(path)[0]


def verify_checkpoint(path: Path) -> dict[str, str] | None:
    """``{file: problem}`` for the files of a checkpoint that are missing or differ from its COMPLETE record (empty
    when all match); None for a record written before checksums existed (version 1: it cannot be verified)."""
    files = (read_marker(path) or {}).get("files")
    if not isinstance(files, dict):
        return None
    records = {k: v for k, v in files.items() if isinstance(v, dict)}
    problems = {k: "its COMPLETE entry is not a file record" for k in files if k not in records}
    return problems | fileio.check_tree(path, records)


def run_dir_of(ckpt: Path) -> Path | None:
    """The run folder a checkpoint belongs to (``RUN/checkpoints/step_N``); None for a checkpoint elsewhere."""
    ckpt = Path(ckpt)
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None


# ------------------------------------------------------------------------------------------- load
def load_training_state(ckpt: Path, map_location="cpu") -> dict:
    """The training state: tensors and plain types only (``weights_only=True``, no pickle code execution)."""
    return torch.load(Path(ckpt) / STATE_FILE, map_location=map_location, weights_only=True)


def load_model_state(ckpt: Path, map_location="cpu") -> dict:
    return torch.load(Path(ckpt) / MODEL_FILE, map_location=map_location, weights_only=True)


def _short_error(e: BaseException) -> str:
    """One line for a load failure (torch's weights-only refusal is a page of advice around one fact)."""
    text = str(e)
    if "WeightsUnpickler error:" in text:
        fact = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
        return f"{type(e).__name__}: refused by torch.load(weights_only=True): {' '.join(fact.split())}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0] if lines else ''}"


def _load_checked(ck: Path, map_location) -> tuple[dict, dict, bool]:
    """(training state, model state dict, verified) of a checkpoint whose files match its record (verified False:
    a record without checksums); raises otherwise."""
    problems = verify_checkpoint(ck)
    if problems:
        raise CheckpointError("fails verification: " + "; ".join(f"{name}: {p}" for name, p in problems.items()))
    state = load_training_state(ck, map_location)
    weights = load_model_state(ck, map_location)
    if not isinstance(state, dict) or "step" not in state or not isinstance(weights, dict):
        raise ValueError("not a training checkpoint")
    return state, weights, problems is not None


def load_first_good(candidates: Iterable[Path], map_location="cpu") -> tuple[Path, dict, dict]:
    """(checkpoint, training state, model state dict) of the first candidate whose files match their COMPLETE
    record and load; a warning names each one that did not (the file and what is wrong with it) and the one used
    instead, and an error lists them all when none loads. A checkpoint written before checksums were recorded
    loads unverified, with one warning that says so."""
    failures = []
    for ck in candidates:
        try:
            state, weights, verified = _load_checked(ck, map_location)
        except Exception as e:  # noqa: BLE001 - any unreadable or altered file means: try the previous checkpoint
            what = str(e) if isinstance(e, CheckpointError) else f"does not load ({_short_error(e)})"
            logger.warning("checkpoint %s %s; trying the previous one", ck, what)
            failures.append(f"{ck}: {what}")
            continue
        if not verified:
            logger.warning("checkpoint %s was written before checksums were recorded: loaded unverified", ck)
        if failures:
            logger.warning("resuming from %s (%s) instead of the newer checkpoint(s) that failed: %s", ck,
                           "verified" if verified else "unverified", "; ".join(failures))
        return ck, state, weights
    raise CheckpointError("no checkpoint could be loaded:\n  " + "\n  ".join(failures))


# ------------------------------------------------------------------------------------------- save
def _assert_finite(state_dict: dict) -> None:
    bad = [k for k, v in state_dict.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"refusing to checkpoint non-finite weights ({len(bad)} tensors, e.g. {bad[:3]})")


def write_checkpoint(root: Path, name: str, seq: int, step: int, model: torch.nn.Module, training_state: dict, *,
                     save_pretrained: bool = True, replace: bool = False) -> Path:
    """Write one checkpoint folder atomically and durably; errors (a full disk, a failed fsync) propagate and
    leave no folder behind. ``replace`` allows replacing an existing folder of the same name (the caller's own)."""
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _assert_finite(sd)
    final = root / name
    with fileio.atomic_dir(final, durable=True, replace=replace) as tmp:
        torch.save(sd, tmp / MODEL_FILE)
        if save_pretrained and hasattr(model, "save_pretrained"):
            try:
                model.save_pretrained(tmp / PRETRAINED_DIR)
            except OSError:
                raise
            except Exception as e:  # noqa: BLE001 - the .pth.tar is the primary artefact
                logger.warning("save_pretrained failed (%s); the checkpoint keeps %s only", e, MODEL_FILE)
                shutil.rmtree(tmp / PRETRAINED_DIR, ignore_errors=True)
        torch.save(dict(training_state, seq=int(seq)), tmp / STATE_FILE)
        record: CompletionRecord = {"version": RECORD_VERSION, "step": int(step), "seq": int(seq),
                                    "time": time.time(), "files": fileio.tree_records(tmp, exclude=[MARKER])}
        (Path(tmp) / MARKER).write_text(schemas.dumps(record, "checkpoint-complete", str(Path(tmp) / MARKER)))
    fileio.atomic_write_text(root / LATEST, name + "\n", durable=True)
    return final


def remove_checkpoint(path: Path) -> None:
    """Delete one of our checkpoint folders; the marker goes first so a half-deleted folder never looks valid."""
    (Path(path) / MARKER).unlink(missing_ok=True)
    shutil.rmtree(path)


def clean_temporaries(root: Path) -> list[Path]:
    """Remove the hidden temporaries a crash mid-save left in ``root`` (names only this module writes); each is
    logged. Returns what was removed."""
    removed = fileio.remove_temporaries(root, _TEMPORARY) + fileio.remove_temporaries(root, _LEGACY_TEMPORARY)
    for p in removed:
        logger.info("removed an unfinished checkpoint write left by an earlier run: %s", p)
    return removed


def prune(run_dir: str | os.PathLike, keep_last: int | None, *, deletable: Callable[[Path], bool] = lambda p: True) -> list[Path]:
    """Keep the newest ``keep_last`` complete checkpoints by save sequence; of the older ones delete those
    ``deletable`` allows (the checkpointer never allows one newer than the checkpoint it resumed from that it did
    not write itself). Returns what was deleted."""
    if not keep_last or keep_last <= 0:
        return []
    removed = []
    for p in list_checkpoints(run_dir)[:-int(keep_last)]:
        if deletable(p):
            remove_checkpoint(p)
            removed.append(p)
    return removed


def save_checkpoint(run_dir: str | os.PathLike, step: int, model: torch.nn.Module, training_state: dict, *,
                    save_pretrained: bool = True, keep_last: int | None = 3, seq: int | None = None) -> Path:
    """One-shot save outside a training run: the next sequence number in ``run_dir``, then pruning."""
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    clean_temporaries(root)
    if seq is None:
        seq = max([save_seq(p) for p in list_checkpoints(run_dir)] + [0]) + 1
    name = f"{PREFIX}{int(step):08d}"
    if (root / name).exists() and not is_complete(root / name):
        raise FileExistsError(f"{root / name} exists and is not a complete checkpoint; not replacing it")
    path = write_checkpoint(root, name, seq, step, model, training_state, save_pretrained=save_pretrained,
                            replace=(root / name).exists())
    prune(run_dir, keep_last)
    return path


# ------------------------------------------------------------------------------------------- the run's checkpointer
class Checkpointer:
    """Saves a run's checkpoints (rank 0 writes; every rank learns whether it worked).

    ``base`` is the checkpoint the run resumed from (None for a fresh run). Sequence numbers continue after the
    highest one in the folder and after ``base``'s. Pruning keeps the newest ``keep_last`` by sequence and
    deletes only checkpoints this checkpointer wrote, ``base`` and its predecessors, or ``broken`` ones (newer
    checkpoints that failed to load when resuming): a newer checkpoint of another branch is never touched."""

    def __init__(self, run_dir: Path, dist, *, keep_last: int | None, save_pretrained: bool,
                 base: Path | None = None, broken: Iterable[Path] = ()):
        self.run_dir = Path(run_dir)
        self.root = checkpoint_root(run_dir)
        self.dist = dist
        self.keep_last = keep_last
        self.save_pretrained = save_pretrained
        self.base_seq = save_seq(base) if base is not None else -1
        self.broken = {Path(p).name for p in broken}
        self.own: set[str] = set()
        self.next_seq = None
        if dist.is_main:  # the folder is this run's now: what a crashed save left goes before anything is written
            clean_temporaries(self.root)

    def _deletable(self, p: Path) -> bool:
        return p.name in self.own or p.name in self.broken or save_seq(p) <= self.base_seq

    def _write(self, step: int, model: torch.nn.Module, state: dict) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.next_seq is None:
            self.next_seq = max([save_seq(p) for p in list_checkpoints(self.run_dir)] + [self.base_seq, 0]) + 1
        name = f"{PREFIX}{int(step):08d}"
        final = self.root / name
        replace = final.exists()
        if replace and not (is_complete(final) and self._deletable(final)):
            raise FileExistsError(f"{final} exists and is not a checkpoint of this run's branch; not replacing it")
        path = write_checkpoint(self.root, name, self.next_seq, step, model, state,
                                save_pretrained=self.save_pretrained, replace=replace)
        self.own.add(name)
        self.broken.discard(name)
        self.next_seq += 1
        for p in prune(self.run_dir, self.keep_last, deletable=self._deletable):
            logger.info("pruned %s", p)
        return path

    def save(self, step: int, model: torch.nn.Module, state: dict | None) -> Path | None:
        """Collective: rank 0 writes (``state`` is only needed there), then the outcome is broadcast, so a failed
        save (a full disk, say) stops every rank at once instead of leaving them waiting at a barrier."""
        error, path = None, None
        if self.dist.is_main:
            try:
                path = self._write(step, model, state)
            except BaseException as e:
                error = e
        if self.dist.distributed:
            from . import distributed as D

            msg = D.broadcast_object(None if error is None else f"{type(error).__name__}: {error}")
            if msg is not None and error is None:
                raise CheckpointError(f"saving the step-{step} checkpoint failed on rank 0: {msg}")
        if error is not None:
            raise error
        return path
