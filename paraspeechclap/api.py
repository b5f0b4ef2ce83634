"""The public class: the tensor model plus loading and the numpy API served by the inference engine.

``ParaSpeechCLAP`` adds nothing to the model's modules or weights (state dicts are those of
:class:`paraspeechclap.model.ParaSpeechCLAPModel`); its numpy methods are thin delegations to one
:class:`paraspeechclap.inference.InferenceEngine`, so the model stays tensors in, tensors out and the arrows run one
way: ``api`` -> ``inference``, ``loading`` -> ``model``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .audio import AudioInput
from .inference import InferenceEngine
from .model import ParaSpeechCLAPConfig, ParaSpeechCLAPModel

__all__ = ["ParaSpeechCLAP", "ParaSpeechCLAPConfig"]


class ParaSpeechCLAP(ParaSpeechCLAPModel):
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

    # ------------------------------------------------------------------ numpy API (delegated to the engine)
    @property
    def default_batch_size(self) -> int:
        return self.engine.default_batch_size

    @property
    def default_max_batch_seconds(self) -> float:
        return self.engine.default_max_batch_seconds

    @property
    def min_audio_samples(self) -> int:
        return self.engine.min_audio_samples

    def check_length(self, wave: np.ndarray, name: str) -> None:
        self.engine.check_length(wave, name)

    def load_waveforms(self, audio: AudioInput | Sequence[AudioInput]) -> list[np.ndarray]:
        """Decode every input to 16 kHz mono and check it is long enough; raises :class:`AudioError`."""
        from .inference import as_audio_list

        return [self.engine.decode(item) for item in as_audio_list(audio)]

    def embed_audio(self, audio: AudioInput | Sequence[AudioInput], batch_size: int | None = None,
                    max_batch_seconds: float | None = None, progress: bool = False) -> np.ndarray:
        """L2-normalised audio embeddings ``[N, D]`` of paths, bytes or ``(array, sample_rate)`` pairs."""
        return self.engine.embed_audio(audio, batch_size=batch_size, max_batch_seconds=max_batch_seconds,
                                       progress=progress)

    def embed_waveforms(self, waves: Sequence[np.ndarray], batch_size: int | None = None,
                        max_batch_seconds: float | None = None, progress: bool = False) -> np.ndarray:
        return self.engine.embed_waveforms(waves, batch_size=batch_size, max_batch_seconds=max_batch_seconds,
                                           progress=progress)

    def embed_text(self, texts: str | Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self.engine.embed_text(texts, batch_size=batch_size)

    def embed_prompts(self, candidates: Sequence[str], template: str | Sequence[str] | None = None) -> np.ndarray:
        return self.engine.embed_prompts(candidates, template)

    def similarity(self, audio: AudioInput | Sequence[AudioInput], texts: str | Sequence[str],
                   batch_size: int | None = None) -> np.ndarray:
        """Cosine similarities ``[N_audio, N_text]``."""
        return self.embed_audio(audio, batch_size=batch_size) @ self.embed_text(texts).T

    def classify(self, audio: AudioInput | Sequence[AudioInput], candidates: Sequence[str],
                 template: str | Sequence[str] | None = None, batch_size: int | None = None) -> list[dict[str, float]]:
        """Per clip, candidate -> probability = softmax over candidates of ``logit_scale * cosine``."""
        return self.classify_embeddings(self.embed_audio(audio, batch_size=batch_size), candidates, template)

    def classify_embeddings(self, audio_emb: np.ndarray, candidates: Sequence[str],
                            template: str | Sequence[str] | None = None) -> list[dict[str, float]]:
        return self.engine.classify_embeddings(audio_emb, candidates, template)

    def timeline(self, audio: AudioInput, captions: Sequence[str], window_seconds: float = 3.0,
                 hop_seconds: float = 1.0) -> dict:
        """Per-window cosines of a long recording with each caption (see :meth:`InferenceEngine.timeline`)."""
        return self.engine.timeline(audio, captions, window_seconds=window_seconds, hop_seconds=hop_seconds)

    def identity(self) -> str:
        """A content hash of config, weights and precision (follows the weights when they change)."""
        return self.engine.identity()

    def provenance(self) -> dict:
        """Model identity, precision and device: recorded beside every output."""
        return self.engine.provenance()
