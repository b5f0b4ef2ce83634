"""The public class: the tensor model plus loading and the numpy API served by the inference engine.

``ParaSpeechCLAP`` adds nothing to the model's modules or weights (state dicts are those of
:class:`paraspeechclap.model.ParaSpeechCLAPModel`); its numpy methods (:class:`paraspeechclap.numpy_api.NumpyAPI`,
shared with the exported model) are thin delegations to one :class:`paraspeechclap.inference.InferenceEngine`, so
the model stays tensors in, tensors out and the arrows run one way: ``api`` -> ``inference``, ``loading`` -> ``model``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .inference import InferenceEngine
from .model import ParaSpeechCLAPConfig, ParaSpeechCLAPModel
from .numpy_api import NumpyAPI

__all__ = ["ParaSpeechCLAP", "ParaSpeechCLAPConfig"]


class ParaSpeechCLAP(NumpyAPI, ParaSpeechCLAPModel):
    """Build with :meth:`from_pretrained` (released checkpoints, ``mini``, saved folders) or :meth:`from_encoders`
    (fresh heads on any Hugging Face encoders, for training)."""

    name: str | None = None
    _engine: InferenceEngine | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, source: str | Path, speech_model: str | Path | None = None,
                        text_model: str | Path | None = None, embedding_dim: int | None = None,
                        device: str | torch.device | None = None, precision: str = "auto",
                        strict: bool = True, revision: str | None = None) -> "ParaSpeechCLAP":
        """Load ``mini``, a released alias (``intrinsic``/``situational``/``combined``), a ``.pth.tar`` file, a
        :meth:`save_pretrained` folder or a hub repo holding one (see :mod:`paraspeechclap.loading`), then prepare
        it for inference on ``device`` in ``precision`` (``auto``: bf16 where native, else fp32)."""
        from .loading import load_model

        model = load_model(cls, source, speech_model=speech_model, text_model=text_model,
                           embedding_dim=embedding_dim, strict=strict, revision=revision)
        model.name = str(source) if revision is None else f"{source}@{revision}"
        return model.prepare_for_inference(device=device, precision=precision)

    @classmethod
    def from_encoders(cls, speech_model: str | Path, text_model: str | Path, embedding_dim: int = 768,
                      pretrained_encoders: bool = True, projection_dropout: float = 0.5,
                      text_pooling: str = "first", **config_overrides: Any) -> "ParaSpeechCLAP":
        """Fresh projection heads on two Hugging Face encoders (pretrained weights or random init)."""
        from .loading import build_from_encoders

        return build_from_encoders(cls, speech_model, text_model, embedding_dim=embedding_dim,
                                   pretrained_encoders=pretrained_encoders, projection_dropout=projection_dropout,
                                   text_pooling=text_pooling, **config_overrides)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write a self-describing folder (config JSON, safetensors weights, tokenizer), atomically."""
        from .loading import save_pretrained

        return save_pretrained(self, folder)

    def prepare_for_inference(self, device: str | torch.device | None = None,
                              precision: str = "auto", **engine_options: Any) -> "ParaSpeechCLAP":
        """Move to ``device``, switch to eval mode and set up the inference engine in ``precision`` (bf16 converts
        the towers' weights once; int8 quantizes the speech tower; both are one-way for this instance)."""
        self._engine = InferenceEngine(self, device=device, precision=precision, **engine_options)
        return self

    @property
    def engine(self) -> InferenceEngine:
        """The inference engine (fp32 on the model's device unless :meth:`prepare_for_inference` chose otherwise)."""
        if self._engine is None:
            self._engine = InferenceEngine(self, device=self.device, precision="fp32")
        return self._engine

    @property
    def precision(self) -> str:
        return self.engine.precision

    def identity(self) -> str:
        """A content hash of config, weights and precision (follows the weights when they change)."""
        return self.engine.identity()

    def provenance(self) -> dict:
        """Model identity, precision and device: recorded beside every output."""
        return self.engine.provenance()
