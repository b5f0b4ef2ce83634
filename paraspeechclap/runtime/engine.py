"""The runtime's engine: the inference room's road (:class:`paraspeechclap.inference.loop.EmbeddingLoop`: decoding,
streaming, windows, batches, the bulk loop, the text cache, prompts) over exported graphs instead of torch towers.

Same windows and batches as the torch engine (the frame rule, heads and attention budget come from the manifest),
pooled states summed by frame count in float64, projection and L2 norm in the exported graph.
"""
from __future__ import annotations

import numpy as np

from ..audio import pad_batch
from ..inference.loop import EmbeddingLoop
from ..inference.plan import EncoderCost
from ..inference.text_cache import TextCache
from .manifest import PROJECTION_INPUTS, SPEECH_INPUTS, ExportFormatError, frame_rule


class RuntimeEngine(EmbeddingLoop):
    """Windows, batches, the bulk loop and the text API of one exported model (see :class:`ExportedModel`)."""

    def __init__(self, model, graphs, tokenizer, decode_ahead: int = 4, decode_workers: int = 2):
        audio = model.manifest["audio"]
        self.model, self.graphs, self.tokenizer = model, graphs, tokenizer
        self.cost = EncoderCost(frame_rule(audio["frame_rule"]), int(audio["attention_heads"]))
        self.attention_budget = int(audio["attention_budget_bytes"])
        self.decode_ahead, self.decode_workers = int(decode_ahead), int(decode_workers)
        self.text_cache = TextCache()
        self.encoder_errors = graphs.errors
        self._hidden = int(audio["hidden_size"])
        self._min_samples = int(audio["min_samples"])
        self._cpu_batch_size = audio.get("cpu_batch_size")
        self._text_inputs = graphs.inputs("text")
        self._windows: dict = {}
        planned = (audio.get("window_samples"), audio.get("overlap_samples"))
        if planned != (self.window, self.overlap):  # the same windows as the torch engine, or different answers
            raise ExportFormatError(f"{model.folder}: the manifest's windows {planned} differ from those its frame rule "
                                    f"and budget give ({self.window}, {self.overlap})")

    @property
    def precision(self) -> str:
        return self.model.precision

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def min_audio_samples(self) -> int:
        return self._min_samples

    @property
    def default_batch_size(self) -> int:
        """Clips per forward pass: the tower's own CPU batch size where it states one (the log-mel tower of
        ``mini``: 8), else one clip at a time, as the torch engine on CPUs without AMX."""
        return int(self._cpu_batch_size or 1)

    @property
    def default_max_batch_seconds(self) -> float:
        return self.window / self.sampling_rate

    def provenance(self) -> dict:
        return self.model.provenance()

    def identity(self) -> str:
        return self.model.identity()

    # ------------------------------------------------------------------ the towers (hooks of EmbeddingLoop)
    def _pool(self, segments):
        values, mask = pad_batch(segments)
        pooled, frames = self.graphs.run("speech_tower", dict(zip(SPEECH_INPUTS, (values, mask))))
        return pooled.astype(np.float64), frames.astype(np.float64)

    def _pooled_sums(self, count: int):
        return np.zeros((count, self._hidden), np.float64), np.zeros(count, np.float64), {}

    def _project(self, sums, counts, errors: dict[int, str]) -> tuple[np.ndarray, dict]:
        pooled = (sums / np.maximum(counts, 1.0)[:, None]).astype(np.float32)
        (embedding,) = self.graphs.run("speech_projection", {PROJECTION_INPUTS[0]: pooled})
        embedding = np.array(embedding, np.float32)
        for owner in errors:
            embedding[owner] = 0.0
        return embedding, errors

    def _text_version(self):
        return self.model.identity()

    def _encode_texts(self, texts: list[str], batch_size: int) -> np.ndarray:
        rows = []
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenizer(texts[start:start + batch_size])
            (embedding,) = self.graphs.run("text", {name: tokens[name] for name in self._text_inputs})
            rows.append(np.asarray(embedding, np.float32))
        return np.concatenate(rows)
