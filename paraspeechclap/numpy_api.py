"""The numpy API of a model, written once: :class:`paraspeechclap.ParaSpeechCLAP` (torch) and
:class:`paraspeechclap.runtime.ExportedModel` (no torch) both inherit it and delegate to their ``engine``
(:class:`~paraspeechclap.inference.InferenceEngine`, :class:`~paraspeechclap.runtime.engine.RuntimeEngine`).

Torch-free: the runtime imports it (import-linter keeps torch out of the runtime and of what it imports).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .audio import AudioInput
from .inference.loop import as_audio_list


class NumpyAPI:
    """Embeddings, similarities, zero-shot classification and timelines as numpy, over ``self.engine``."""

    engine: Any  # set (or provided as a property) by the class that inherits this

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
