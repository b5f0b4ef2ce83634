"""Which model a command, the server, annotate's workers or an RL adapter loads, and how: one object, one set of
defaults, one set of command-line options.

>>> spec = ModelSpec(source="mini", precision="fp32")
>>> model = spec.load()                          # ParaSpeechCLAP, or the torch-free runtime for an exported folder

It sits above the public class (it builds one) and below every room that loads a model; the loading room itself
stands below the public class (see docs/architecture.md), so the spec cannot live there.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .precisions import PRECISIONS

# Where numbers must reproduce on another machine (evaluate, tts-eval): fp32, as the reference evaluated; the one
# named exception to the defaults below, declared here so both commands take it from the same place.
REPRODUCIBLE = {"precision": "fp32"}

_HELP = {
    "source": "'mini' (embedded, default), 'intrinsic', 'situational', 'combined', a .pth.tar file, a "
              "save_pretrained folder, an exported folder (paraspeechclap export) or a hub repo id",
    "revision": "hub revision (branch, tag or commit) of a released checkpoint or hub repo",
    "precision": "numeric precision (auto: bf16 where the hardware multiplies bf16 natively, else fp32; the "
                 "precision used is recorded in every machine-readable output)",
    "device": "cpu, cuda, cuda:1 ... (default: cuda when available)",
    "batch_size": "clips per batch, sorted by length (default: the model's, 8)",
    "speech_model": "speech encoder (hub id or folder) for a raw .pth.tar checkpoint",
    "text_model": "text encoder (hub id or folder) for a raw .pth.tar checkpoint",
    "embedding_dim": "embedding size of a raw .pth.tar checkpoint",
    "verbose": "show the libraries' loading progress bars and warnings (hidden by default)",
}


@dataclass
class ModelSpec:
    """The model options (picklable: annotate's workers and the RL adapters' processes each load from it)."""

    source: str = "mini"
    revision: str | None = None
    precision: str = "auto"
    device: str | None = None
    batch_size: int | None = None
    speech_model: str | None = None
    text_model: str | None = None
    embedding_dim: int | None = None
    verbose: bool = False

    def __post_init__(self) -> None:
        self.source = str(self.source)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")

    # ------------------------------------------------------------------ the command line
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, **defaults: Any) -> None:
        """``--model --revision --precision --device --batch-size --speech-model --text-model --embedding-dim
        --verbose``; ``defaults`` overrides a field's default for one command (only :data:`REPRODUCIBLE` does)."""
        base = {f.name: f.default for f in dataclasses.fields(cls)}
        unknown = set(defaults) - set(base)
        if unknown:
            raise TypeError(f"not model options: {sorted(unknown)}")
        base.update(defaults)
        group = parser.add_argument_group("model")
        group.add_argument("--model", dest="model", default=base["source"], help=_HELP["source"])
        group.add_argument("--revision", default=base["revision"], help=_HELP["revision"])
        group.add_argument("--precision", default=base["precision"], choices=list(PRECISIONS),
                           help=_HELP["precision"] + f" (default {base['precision']})")
        group.add_argument("--device", default=base["device"], help=_HELP["device"])
        group.add_argument("--batch-size", type=int, default=base["batch_size"], help=_HELP["batch_size"])
        group.add_argument("--speech-model", default=base["speech_model"], help=_HELP["speech_model"])
        group.add_argument("--text-model", default=base["text_model"], help=_HELP["text_model"])
        group.add_argument("--embedding-dim", type=int, default=base["embedding_dim"], help=_HELP["embedding_dim"])
        group.add_argument("--verbose", action="store_true", default=base["verbose"], help=_HELP["verbose"])

    @classmethod
    def from_args(cls, args: argparse.Namespace, **overrides: Any) -> "ModelSpec":
        """The spec the parsed options name (options a parser did not add keep their defaults)."""
        values = {f.name: getattr(args, "model" if f.name == "source" else f.name, f.default)
                  for f in dataclasses.fields(cls)}
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> "ModelSpec":
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ loading
    @property
    def exported(self) -> bool:
        """Whether the source is a folder written by ``paraspeechclap export`` (run by the torch-free runtime)."""
        from .runtime import is_exported_folder

        return Path(self.source).is_dir() and is_exported_folder(self.source)

    def load(self, device: str | None = None) -> Any:
        """The model, ready for inference on ``device`` (default: the spec's) in the spec's precision: a
        :class:`paraspeechclap.ParaSpeechCLAP`, or for an exported folder :func:`paraspeechclap.runtime.load`'s
        model (same numpy API, CPU only). Libraries' progress bars and warnings are hidden unless ``verbose``."""
        device = device or self.device
        with quiet_loading(not self.verbose):
            if self.exported:
                return self._load_exported(device)
            from .api import ParaSpeechCLAP

            return ParaSpeechCLAP.from_pretrained(self.source, speech_model=self.speech_model,
                                                  text_model=self.text_model, embedding_dim=self.embedding_dim,
                                                  device=device, precision=self.precision, revision=self.revision)

    def _load_exported(self, device: str | None) -> Any:
        from . import runtime

        if device not in (None, "cpu"):
            raise ValueError(f"{self.source} is an exported folder, run on the CPU; --device {device} cannot apply")
        for name in ("revision", "speech_model", "text_model", "embedding_dim"):
            if getattr(self, name) is not None:
                raise ValueError(f"{self.source} is an exported folder; --{name.replace('_', '-')} does not apply")
        return runtime.load(self.source, precision=self.precision)


@contextlib.contextmanager
def quiet_loading(quiet: bool = True) -> Iterator[None]:
    """Hide transformers' and the hub's progress bars ("Loading weights") and their info/warning logs while a
    model loads; errors still raise, and everything is restored afterwards."""
    if not quiet:
        yield
        return
    restore = []
    try:
        from transformers.utils import logging as hf_logging

        level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        restore.append(lambda: hf_logging.set_verbosity(level))
        restore.append(lambda: hf_logging.enable_progress_bar() if bars else None)
    except ImportError:  # the torch-free runtime has no transformers
        pass
    try:
        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

        hub_bars = not are_progress_bars_disabled()
        disable_progress_bars()
        restore.append(lambda: enable_progress_bars() if hub_bars else None)
    except ImportError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for undo in reversed(restore):
            undo()
        sys.stderr.flush()
