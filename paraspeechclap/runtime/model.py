"""An exported model with the numpy API of :class:`paraspeechclap.ParaSpeechCLAP`, and no torch.

The numpy methods are the torch class's own (:class:`paraspeechclap.numpy_api.NumpyAPI`), delegating to a
:class:`paraspeechclap.runtime.engine.RuntimeEngine`; the attributes the HTTP service and the bulk commands read of a
model (``engine`` with ``decode``/``sampling_rate``/``embed_many``, ``config.embedding_dim``, ``logit_scale``,
``provenance()``, ``identity()``, ``embed_text``, ``classify_embeddings``, ``timeline``) are all here.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path


from .._version import __version__
from ..numpy_api import NumpyAPI
from .backends import open_graphs
from .engine import RuntimeEngine
from .manifest import MANIFEST_NAME, read_manifest
from .text import TextTokenizer


@dataclass(frozen=True)
class ExportedConfig:
    """The preprocessing fields of :class:`paraspeechclap.model.ParaSpeechCLAPConfig` that an exported model keeps."""

    embedding_dim: int
    sampling_rate: int
    do_normalize: bool
    window_seconds: float
    window_overlap_seconds: float
    prompt_template: str
    text_pooling: str
    speech_model: str | None = None
    text_model: str | None = None
    speech_config: dict = field(default_factory=dict)  # only its model_type (the page's attribute table reads it)


class ExportedModel(NumpyAPI):
    """Load with :func:`paraspeechclap.runtime.load`."""

    training = False

    def __init__(self, folder: str | Path, precision: str = "auto", threads: int | None = None,
                 decode_ahead: int = 4, decode_workers: int = 2):
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        model, audio, text = self.manifest["model"], self.manifest["audio"], self.manifest["text"]
        self.backend = self.manifest["backend"]
        self.graphs = open_graphs(self.folder, self.backend, self.manifest["graphs"], precision, threads,
                                  bool(audio["bf16_weights"]))
        self.precision = self.graphs.precisions["speech_tower"]
        self.name = str(model["name"])
        self.logit_scale = float(model["logit_scale"])
        self.config = ExportedConfig(
            embedding_dim=int(model["embedding_dim"]), sampling_rate=int(audio["sampling_rate"]),
            do_normalize=bool(audio["do_normalize"]), window_seconds=float(audio["window_seconds"]),
            window_overlap_seconds=float(audio["window_overlap_seconds"]), prompt_template=str(text["template"]),
            text_pooling=str(text["pooling"]), speech_model=model.get("speech_model"),
            text_model=model.get("text_model"), speech_config={"model_type": audio.get("model_type")})
        self._identity = self._content_identity()
        self.engine = RuntimeEngine(self, self.graphs, TextTokenizer(self.folder, text), decode_ahead, decode_workers)

    def _content_identity(self) -> str:
        """The source weights' identity, the manifest (it lists every file's digest) and the precision run: an
        exported model never shares an identity (and so a cache entry) with its torch source or another variant."""
        digest = hashlib.sha256(self.manifest["model"]["identity"].encode())
        digest.update((self.folder / MANIFEST_NAME).read_bytes())
        digest.update(f"{self.backend}:{self.precision}".encode())
        return digest.hexdigest()[:16]

    # ------------------------------------------------------------------ what outputs record
    @property
    def device(self) -> str:
        return "cpu"

    def identity(self) -> str:
        return self._identity

    def provenance(self) -> dict:
        """What produced an output (recorded beside every result, as the torch model's): the exported model's
        identity, the source weights' identity and name, precision, runtime and versions."""
        model = self.manifest["model"]
        return {"model": self.name, "identity": self._identity, "precision": self.precision, "device": "cpu",
                "paraspeechclap": __version__, "runtime": f"{self.graphs.name} {self.graphs.version}",
                "exported_from": {"identity": model["identity"], "versions": model["versions"],
                                  "format_version": self.manifest["format_version"], "backend": self.backend}}

    def __repr__(self) -> str:
        return f"ExportedModel({str(self.folder)!r}, {self.backend}, {self.precision})"
