"""Training run folders (``paraspeechclap train``) and their checkpoints' completion records.

A run folder holds ``config.yaml`` (the resolved recipe, for people: resuming reads the config saved in the
checkpoint), ``train_log.csv`` and ``val_log.csv`` (one row per logged step; columns follow the losses and metrics
of the recipe), ``bad_audio.tsv`` (``path<TAB>reason``), optional ``tensorboard/``, and ``checkpoints/``:
``step_<NNNNNNNN>/`` folders plus ``latest`` (the name of the newest complete one). A checkpoint folder holds
``model.pth.tar``, ``training_state.pt``, optionally ``pretrained/`` (a saved-model folder), and ``COMPLETE``,
written last: a folder without a readable one is never used.

``COMPLETE`` version 0 is every marker written before stamps (those older than sequence numbers have no ``seq``:
it reads as -1, "older than any numbered save"); version 1 listed ``files`` by name; version 2 maps each file
(relative path) to its SHA-256 and size, checked before a checkpoint is used (the writer also keeps the
checkpoint room's own ``"version": 2`` key, which markers read before stamps carry).
"""
from __future__ import annotations

from typing import Any, Optional, Union

from pydantic import NonNegativeInt, StrictStr

from .core import Contract, Record, declare, unchanged

RUN_CONFIG = "config.yaml"
TRAIN_LOG = "train_log.csv"
VAL_LOG = "val_log.csv"
BAD_AUDIO = "bad_audio.tsv"
CHECKPOINTS = "checkpoints"
LATEST = "latest"
CHECKPOINT_FILES = ("model.pth.tar", "training_state.pt")
COMPLETE = "COMPLETE"


class FileDigest(Record):
    sha256: StrictStr
    bytes: NonNegativeInt


class CheckpointComplete(Record):
    step: NonNegativeInt
    seq: int = -1
    time: Optional[float] = None
    # version 2: relative path -> digest; version 1 (and unstamped markers of that age): file names
    files: Union[dict[StrictStr, FileDigest], list[StrictStr], None] = None


class RunConfig(Record):
    """``config.yaml``: the resolved recipe (``paraspeechclap.train.config`` validates its values)."""

    run: dict[str, Any]
    model: dict[str, Any]
    data: dict[str, Any]
    optim: dict[str, Any]
    loss: dict[str, Any]
    sampler: dict[str, Any]
    validation: dict[str, Any]
    logging: dict[str, Any]
    checkpoint: dict[str, Any]
    distributed: dict[str, Any]


def _complete_from_v0(doc: dict) -> dict:
    doc.setdefault("seq", -1)
    return doc


CHECKPOINT_COMPLETE = declare(Contract(
    "checkpoint-complete", 2, CheckpointComplete,
    "a checkpoint folder's COMPLETE marker (written last; resume reads it to pick the newest complete checkpoint)",
    upgrades={0: _complete_from_v0, 1: unchanged}))
RUN_CONFIG_CONTRACT = declare(Contract(
    "run-config", 1, RunConfig, "a run folder's config.yaml (written at the start of a run; read by people)",
    upgrades={0: unchanged}))
