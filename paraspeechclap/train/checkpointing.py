"""Checkpoints: atomic, self-validating folders with weights and the full training state.

Layout under ``{run_dir}/checkpoints/``::

    step_00001500/
        model.pth.tar        plain state dict of the unwrapped model (the released format)
        pretrained/          model.save_pretrained(...) folder (optional)
        training_state.pt    optimizer, scheduler, grad scaler, step, epoch, sampler position,
                             python / numpy / torch (CPU + CUDA) RNG states, config, counters
        COMPLETE             written last; a folder without it is never used
    latest                   name of the newest complete checkpoint (atomically replaced)

Each checkpoint is written into a hidden temporary folder, files fsynced, the marker written, and the
folder renamed into place with ``os.replace``: a crash at any point leaves either the previous state
or a ``.tmp-*`` folder that is ignored and cleaned up on the next save.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger("paraspeechclap.train")

MARKER = "COMPLETE"
PREFIX = "step_"
MODEL_FILE = "model.pth.tar"
STATE_FILE = "training_state.pt"
PRETRAINED_DIR = "pretrained"


def _fsync_file(path: Path) -> None:
    try:
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    except OSError:
        pass


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, fsync, os.replace."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    _fsync_file(tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


# ------------------------------------------------------------------------------------------- RNG
def rng_state() -> dict:
    st = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(st["cuda"])
        except (RuntimeError, IndexError) as e:  # different GPU count
            logger.warning("could not restore CUDA RNG states (%s)", e)


# ------------------------------------------------------------------------------------------- save/load
def checkpoint_root(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "checkpoints"


def is_complete(path: Path) -> bool:
    return (path / MARKER).is_file() and (path / MODEL_FILE).is_file()


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    out = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and is_complete(p)]
    return sorted(out, key=lambda p: int(p.name[len(PREFIX):]) if p.name[len(PREFIX):].isdigit() else -1)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    cks = list_checkpoints(run_dir)
    return cks[-1] if cks else None


def resolve_resume(path: str | os.PathLike) -> Path:
    """A checkpoint folder, a run folder (newest complete checkpoint) or its ``checkpoints/`` folder."""
    p = Path(path)
    if is_complete(p):
        return p
    if p.name == "checkpoints":
        p = p.parent
    ck = latest_checkpoint(p)
    if ck is None:
        if p.is_dir() and p.name.startswith(PREFIX):
            raise FileNotFoundError(f"{p} is not a complete checkpoint (no {MARKER} marker)")
        raise FileNotFoundError(f"no complete checkpoint under {p}")
    return ck


def save_checkpoint(run_dir: str | os.PathLike, step: int, model: torch.nn.Module, training_state: dict, *,
                    save_pretrained: bool = True, keep_last: int | None = 3) -> Path:
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"{PREFIX}{int(step):08d}"
    final = root / name
    tmp = root / f".tmp-{name}-{os.getpid()}-{int(time.time() * 1000)}"
    tmp.mkdir()
    try:
        sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save(sd, tmp / MODEL_FILE)
        _fsync_file(tmp / MODEL_FILE)
        if save_pretrained and hasattr(model, "save_pretrained"):
            try:
                model.save_pretrained(tmp / PRETRAINED_DIR)
            except Exception as e:  # noqa: BLE001 - the .pth.tar is the primary artefact
                logger.warning("save_pretrained failed (%s); the checkpoint keeps %s only", e, MODEL_FILE)
        torch.save(training_state, tmp / STATE_FILE)
        _fsync_file(tmp / STATE_FILE)
        (tmp / MARKER).write_text(json.dumps({"step": int(step), "time": time.time(),
                                              "files": sorted(x.name for x in tmp.iterdir())}) + "\n")
        _fsync_file(tmp / MARKER)
        _fsync_dir(tmp)
        if final.exists():
            trash = root / f".old-{name}-{os.getpid()}"
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(root / "latest", name + "\n")
    prune(run_dir, keep_last)
    return final


def prune(run_dir: str | os.PathLike, keep_last: int | None) -> None:
    root = checkpoint_root(run_dir)
    for p in root.glob(".tmp-*"):
        if p.is_dir() and not p.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(p, ignore_errors=True)
    if not keep_last or keep_last <= 0:
        return
    cks = list_checkpoints(run_dir)
    for p in cks[:-keep_last]:
        # drop the marker first so a half-deleted folder never looks valid
        try:
            (p / MARKER).unlink()
        except OSError:
            pass
        shutil.rmtree(p, ignore_errors=True)


def load_training_state(ckpt: Path, map_location="cpu") -> dict:
    # our own file: RNG states hold NumPy arrays and tuples, so not weights_only
    return torch.load(Path(ckpt) / STATE_FILE, map_location=map_location, weights_only=False)


def load_model_state(ckpt: Path, map_location="cpu") -> dict:
    return torch.load(Path(ckpt) / MODEL_FILE, map_location=map_location, weights_only=True)
