"""The road from inputs to embeddings, without the towers: the part of the engine that needs no torch.

decode (bounded prefetch, streamed resampling; files over ``stream.STREAM_SECONDS`` are streamed twice instead of
held: statistics, then windows) -> whole-clip normalisation -> windows bounded in encoder frames -> batches of
similar length -> ``_pool`` (the speech tower and masked mean: the subclass's) -> windows averaged by frame count ->
``_project`` (the subclass's) -> numpy; the bulk loop that reports a bad input and goes on, the one-window retry of a
failed batch, the timeline, and text embeddings through the text cache with prompt templates and classification.

:class:`paraspeechclap.inference.InferenceEngine` (torch) and :class:`paraspeechclap.runtime.RuntimeEngine`
(exported graphs, no torch) are the two subclasses: both run this code, so windows, streaming, batching and
bad-item reporting are one implementation. A subclass provides ``model`` (``config`` with the preprocessing fields
of :class:`paraspeechclap.model.ParaSpeechCLAPConfig`, ``logit_scale``, ``training``), ``cost``
(:class:`plan.EncoderCost`), ``attention_budget``, ``decode_ahead``/``decode_workers``, ``text_cache``,
``default_batch_size``, ``default_max_batch_seconds``, ``min_audio_samples``, ``provenance()`` and the hooks below.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Hashable, Iterable, Iterator, Sequence

import numpy as np

from ..audio import AudioError, AudioInput, describe, file_seconds, load_audio, normalize_waveform
from ..prompts import fill_template
from .decode import prefetch
from .plan import Window, plan_batches, window_size, window_spans
from .stream import STREAM_SECONDS, LongAudio, measure, windows as stream_windows

log = logging.getLogger(__name__)

CHUNK_SECONDS = 600.0   # decoded audio gathered before it is windowed and batched (longer files form their own chunk)
CHUNK_ITEMS = 256
LONG_GROUP_SECONDS = 240.0  # a streamed file's windows are batched this much audio at a time


@dataclass
class ItemResult:
    """One input of the bulk loop: its embedding, or why it failed."""

    index: int
    name: str
    embedding: np.ndarray | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def as_audio_list(audio: AudioInput | Sequence[AudioInput]) -> list[AudioInput]:
    """Normalise the ``audio`` argument of the API to a list of single inputs."""
    if isinstance(audio, (str, Path, bytes, bytearray)):
        return [audio]
    if isinstance(audio, tuple) and len(audio) == 2 and isinstance(audio[1], (int, np.integer)) \
            and not isinstance(audio[0], (str, Path)):
        return [audio]
    if isinstance(audio, np.ndarray):
        raise TypeError("give a raw array as (array, sample_rate) so that its rate is known")
    return list(audio)


def check_texts(texts: str | Sequence[str]) -> list[str]:
    """``texts`` as a list, each a non-empty string (else ValueError naming its position)."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    for position, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"text {position} is empty or not a string: {text!r}")
    return texts


class EmbeddingLoop:
    """Windows, batches, decoding, the bulk loop and the text API over a subclass's towers (see the module doc)."""

    # what a failing forward pass raises (a subclass adds its runtime's own error types)
    encoder_errors: tuple[type[BaseException], ...] = (RuntimeError, MemoryError)
    # how much is gathered, streamed and batched at a time (the torch engine reads its module's, which tests patch)
    chunk_seconds = CHUNK_SECONDS
    chunk_items = CHUNK_ITEMS
    long_group_seconds = LONG_GROUP_SECONDS
    stream_seconds = STREAM_SECONDS

    # ------------------------------------------------------------------ hooks (the towers)
    def _pool(self, segments: Sequence[np.ndarray]):
        """Pooled hidden states and frame counts of one batch of windows."""
        raise NotImplementedError

    def _pooled_sums(self, count: int):
        """Per input: the frame-weighted sum of its windows' pooled states, its frame count, its error."""
        raise NotImplementedError

    def _project(self, sums, counts, errors: dict[int, str]) -> tuple[np.ndarray, dict]:
        """Frame-weighted means of the windows -> projection -> L2-normalised numpy; failed rows zero."""
        raise NotImplementedError

    def _encode_texts(self, texts: list[str], batch_size: int) -> np.ndarray:
        raise NotImplementedError

    def _text_version(self) -> Hashable:
        """What the text cache's rows depend on (weights and precision): a change empties it."""
        raise NotImplementedError

    def _encoder_context(self):
        """The context the speech tower runs in (the torch engine: inference mode)."""
        return contextlib.nullcontext()

    def _release_scratch(self) -> None:
        """Let go of per-call scratch memory after a call."""

    def _retry_alone(self, segment: np.ndarray, err: BaseException):
        """A window that failed alone: its error message (the torch engine retries device OOM on CPU)."""
        return f"encoder failed: {type(err).__name__}: {err}"

    def _read_audio(self, item: AudioInput, name: str) -> np.ndarray:
        return load_audio(item, self.sampling_rate, name=name)

    # ------------------------------------------------------------------ windows
    @property
    def sampling_rate(self) -> int:
        return int(self.model.config.sampling_rate)

    @property
    def window(self) -> int:
        """Window length in samples: the model's ``window_seconds``, shrunk to the attention budget if needed."""
        return self._window_and_overlap()[0]

    @property
    def overlap(self) -> int:
        return self._window_and_overlap()[1]

    def _window_and_overlap(self) -> tuple[int, int]:
        config = self.model.config
        key = (config.window_seconds, config.window_overlap_seconds, self.attention_budget)
        if key not in self._windows:
            self._windows[key] = window_size(self.cost, config.window_seconds, config.window_overlap_seconds,
                                             self.sampling_rate, self.attention_budget)
        return self._windows[key]

    # ------------------------------------------------------------------ audio: decoding
    def check_length(self, wave: np.ndarray, name: str) -> None:
        if len(wave) < self.min_audio_samples:
            raise AudioError(name, f"too short: {len(wave)} samples at {self.sampling_rate} Hz, the speech encoder "
                                   f"needs at least {self.min_audio_samples} (its receptive field)")

    def decode(self, item: AudioInput) -> np.ndarray:
        """One input to 16 kHz mono float32, checked to be long enough; raises :class:`AudioError`."""
        name = describe(item)
        wave = self._read_audio(item, name)
        self.check_length(wave, name)
        return wave

    def _decode_for_embedding(self, item: AudioInput) -> np.ndarray | LongAudio:
        """A decoded input, or for a file longer than ``stream_seconds`` its first streamed pass (length and
        statistics; the windows are read in a second pass by :meth:`_embed_long`)."""
        name = describe(item)
        seconds = file_seconds(item, name)
        if seconds is None or seconds <= self.stream_seconds:
            return self.decode(item)
        return measure(item, self.sampling_rate, name)

    # ------------------------------------------------------------------ audio: the bulk loop
    def embed_many(self, items: Iterable[AudioInput], batch_size: int | None = None,
                   max_batch_seconds: float | None = None, progress: bool = False,
                   total: int | None = None) -> Iterator[ItemResult]:
        """One :class:`ItemResult` per input, in input order; a bad input is reported in its result, never raised."""
        batch_size, max_frames = self._limits(batch_size, max_batch_seconds)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc="embedding audio", unit="clip")
        chunk: list[tuple[ItemResult, np.ndarray | LongAudio | None]] = []
        chunk_samples = 0
        limit = int(self.chunk_seconds * self.sampling_rate)
        decoded = prefetch(enumerate(items), lambda pair: self._decode_for_embedding(pair[1]), self.decode_ahead,
                           self.decode_workers)
        for (index, item), wave in decoded:
            result = ItemResult(index, describe(item))
            if isinstance(wave, BaseException):
                result.error = wave.problem if isinstance(wave, AudioError) else f"{type(wave).__name__}: {wave}"
                chunk.append((result, None))
            elif isinstance(wave, LongAudio):  # embedded at once, window by window, after what came before it
                result.seconds = wave.samples / self.sampling_rate
                chunk.append((result, wave))
                chunk_samples = limit
            else:
                result.seconds = len(wave) / self.sampling_rate
                chunk.append((result, wave))
                chunk_samples += len(wave)
            if chunk_samples >= limit or len(chunk) >= self.chunk_items:
                yield from self._flush(chunk, batch_size, max_frames, bar)
                chunk, chunk_samples = [], 0
        yield from self._flush(chunk, batch_size, max_frames, bar)
        if bar is not None:
            bar.close()

    def _flush(self, chunk, batch_size, max_frames, bar) -> Iterator[ItemResult]:
        good = [(result, wave) for result, wave in chunk if isinstance(wave, np.ndarray)]
        if good:
            embeddings, errors = self._embed_decoded([wave for _, wave in good], batch_size, max_frames)
            for position, (result, _) in enumerate(good):
                if position in errors:
                    result.error = errors[position]
                else:
                    result.embedding = embeddings[position]
        for result, wave in chunk:
            if isinstance(wave, LongAudio):
                result.embedding, result.error = self._embed_long(wave, batch_size, max_frames, bar is not None)
        for result, _ in chunk:
            if result.error is not None:
                log.debug("skipped %s: %s", result.name, result.error)  # the caller reports it
            if bar is not None:
                bar.update(1)
            yield result
        chunk.clear()

    def _limits(self, batch_size: int | None, max_batch_seconds: float | None) -> tuple[int, int]:
        batch_size = self.default_batch_size if batch_size is None else int(batch_size)
        seconds = self.default_max_batch_seconds if max_batch_seconds is None else float(max_batch_seconds)
        if batch_size < 1 or seconds <= 0:
            raise ValueError(f"batch_size must be >= 1 and max_batch_seconds > 0, got {batch_size}, {seconds}")
        return batch_size, max(1, self.cost.frames(max(int(seconds * self.sampling_rate), self.min_audio_samples)))

    # ------------------------------------------------------------------ audio: windows, batches, towers
    def _embed_decoded(self, waves: Sequence[np.ndarray], batch_size: int,
                       max_frames: int) -> tuple[np.ndarray, dict[int, str]]:
        """Embeddings ``[N, D]`` of decoded waveforms (rows of failed inputs are zero) and {position: error}."""
        with self._encoder_context():
            pooled = self._pooled_sums(len(waves))
            clips: list[np.ndarray] = []
            windows: list[Window] = []
            for owner, wave in enumerate(waves):
                clip = normalize_waveform(wave) if self.model.config.do_normalize else np.asarray(wave, np.float32)
                clips.append(clip)  # the whole clip is normalised, as the reference does
                windows += [Window(owner, start, end)
                            for start, end in window_spans(len(clip), self.window, self.overlap)]
            try:
                self._accumulate(windows, lambda i: clips[windows[i].owner][windows[i].start:windows[i].end], pooled,
                                 batch_size, max_frames)
            finally:
                self._release_scratch()
            return self._project(*pooled)

    def _embed_long(self, audio: LongAudio, batch_size: int, max_frames: int,
                    progress: bool = False) -> tuple[np.ndarray | None, str | None]:
        """One streamed file's embedding (or its error): its windows are read in a second pass, normalised with the
        whole file's statistics and batched ``long_group_seconds`` of audio at a time, so memory holds a group of
        windows, never the file. ``progress``: a bar of the file's windows."""
        with self._encoder_context():
            pooled = self._pooled_sums(1)
            spans = window_spans(audio.samples, self.window, self.overlap)
            group: list[np.ndarray] = []
            limit = int(self.long_group_seconds * self.sampling_rate)
            errors = pooled[2]
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(spans), desc=f"windows of {audio.name}", unit="window", leave=False)

            def run(group):
                self._accumulate([Window(0, 0, len(segment)) for segment in group], group.__getitem__, pooled,
                                 batch_size, max_frames)
                if bar is not None:
                    bar.update(len(group))

            try:
                for segment in stream_windows(audio, spans, self.sampling_rate, self.model.config.do_normalize):
                    group.append(segment)
                    if sum(len(g) for g in group) >= limit:
                        run(group)
                        group = []
                    if errors:
                        break
                if group and not errors:
                    run(group)
            except AudioError as err:
                return None, err.problem
            finally:
                self._release_scratch()
                if bar is not None:
                    bar.close()
            embedding, errors = self._project(*pooled)
            return (None, errors[0]) if errors else (embedding[0], None)

    def _accumulate(self, windows: list[Window], segment, pooled, batch_size: int, max_frames: int) -> None:
        """Run ``windows`` (the samples of window ``i`` are ``segment(i)``) in planned batches into ``pooled``
        (:meth:`_pooled_sums`, rows by ``Window.owner``)."""
        sums, counts, errors = pooled
        batches = plan_batches(windows, self.cost, batch_size, max_frames, self.attention_budget)
        segments_of = lambda batch: [segment(i) for i in batch]  # noqa: E731
        for batch, outcomes in self._run_batches(batches, segments_of, windows, max_frames):
            for i, outcome in zip(batch, outcomes):
                owner = windows[i].owner
                if isinstance(outcome, str):
                    errors.setdefault(owner, outcome)
                    continue
                pooled_state, frames = outcome
                sums[owner] += pooled_state * frames
                counts[owner] += frames

    def _run_batches(self, batches: list[list[int]], segments_of, windows: Sequence[Window],
                     max_frames: int) -> list[tuple[list[int], list]]:
        """``(batch, outcomes)`` of every batch, one after the other."""
        return [(batch, self._pool_with_retry(segments_of(batch))) for batch in batches]

    def _pool_with_retry(self, segments: Sequence[np.ndarray]) -> list:
        """Per window ``(pooled, frames)`` or an error message. A failed batch is retried one window at a time; a
        window that still fails goes to :meth:`_retry_alone`."""
        try:
            pooled, frames = self._pool(segments)
            return [(pooled[r], frames[r]) for r in range(len(segments))]
        except self.encoder_errors as err:
            if len(segments) == 1:
                return [self._retry_alone(segments[0], err)]
            log.warning("a batch of %d windows failed (%s); retrying them one at a time", len(segments), err)
        outcomes = []
        for segment in segments:
            try:
                pooled, frames = self._pool([segment])
                outcomes.append((pooled[0], frames[0]))
            except self.encoder_errors as err:
                outcomes.append(self._retry_alone(segment, err))
        return outcomes

    # ------------------------------------------------------------------ audio: the API on top of the loop
    def embed_audio(self, audio: AudioInput | Sequence[AudioInput], batch_size: int | None = None,
                    max_batch_seconds: float | None = None, progress: bool = False) -> np.ndarray:
        """L2-normalised embeddings ``[N, D]``; raises :class:`AudioError` for the first input that fails."""
        items = as_audio_list(audio)
        rows = []
        for result in self.embed_many(items, batch_size, max_batch_seconds, progress, total=len(items)):
            if not result.ok:
                raise AudioError(result.name, result.error)
            rows.append(result.embedding)
        return np.stack(rows) if rows else np.zeros((0, self.model.config.embedding_dim), np.float32)

    def embed_waveforms(self, waves: Sequence[np.ndarray], batch_size: int | None = None,
                        max_batch_seconds: float | None = None, progress: bool = False) -> np.ndarray:
        """Embeddings of already decoded 16 kHz mono waveforms."""
        if len(waves) == 0:
            return np.zeros((0, self.model.config.embedding_dim), dtype=np.float32)
        batch_size, max_frames = self._limits(batch_size, max_batch_seconds)
        embedding, errors = self._embed_decoded(list(waves), batch_size, max_frames)
        if errors:
            position, problem = next(iter(errors.items()))
            raise RuntimeError(f"waveform {position}: {problem}")
        return embedding

    def timeline(self, audio: AudioInput, captions: Sequence[str], window_seconds: float = 3.0,
                 hop_seconds: float = 1.0, batch_size: int | None = None) -> dict:
        """Per-window cosines of one (long) recording with each caption: ``{"start", "end", "scores" [W, C],
        "captions", "seconds", "provenance"}``. Each window is embedded as a clip of its own (normalised alone); the
        last window is aligned to the end, and a recording shorter than one window is one window."""
        if not captions:
            raise ValueError("timeline needs at least one caption")
        if not 0 < hop_seconds <= window_seconds:
            raise ValueError(f"need 0 < hop <= window, got hop {hop_seconds} s, window {window_seconds} s")
        decoded = self._decode_for_embedding(audio)
        samples = decoded.samples if isinstance(decoded, LongAudio) else len(decoded)
        window = max(int(window_seconds * self.sampling_rate), self.min_audio_samples)
        overlap = window - max(1, int(hop_seconds * self.sampling_rate))
        spans = window_spans(samples, window, min(overlap, window - 1))
        if isinstance(decoded, LongAudio):  # a long file is read again window by window, never held whole
            segments = stream_windows(decoded, spans, self.sampling_rate, normalise=False)
        else:
            segments = (decoded[a:b] for a, b in spans)
        text = self.embed_text(list(captions))
        batch_size, max_frames = self._limits(batch_size, None)
        rows = []
        try:
            while part := list(itertools.islice(segments, self.chunk_items)):  # bounded: each window normalised alone
                embedding, errors = self._embed_decoded(part, batch_size, max_frames)
                if errors:
                    raise RuntimeError(f"{describe(audio)}: {next(iter(errors.values()))}")
                rows.append(embedding @ text.T)
        finally:
            segments.close()
        return {"captions": list(captions), "start": [a / self.sampling_rate for a, _ in spans],
                "end": [b / self.sampling_rate for _, b in spans], "scores": np.concatenate(rows).tolist(),
                "seconds": samples / self.sampling_rate, "provenance": self.provenance()}

    # ------------------------------------------------------------------ text
    def embed_text(self, texts: str | Sequence[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised text embeddings ``[N, D]``; each distinct string is embedded once per weights version."""
        texts = check_texts(texts)
        if self.model.training:
            raise RuntimeError("embed_* runs in eval mode; call model.eval() first")
        if not texts:
            return np.zeros((0, self.model.config.embedding_dim), np.float32)
        return self.text_cache.get_many(texts, self._text_version(),
                                        lambda missing: self._encode_texts(missing, batch_size))

    def embed_prompts(self, candidates: Sequence[str], template: str | Sequence[str] | None = None) -> np.ndarray:
        """One embedding per candidate: the template(s) filled in, averaged over templates, renormalised."""
        if isinstance(template, (str, type(None))):
            templates = [template or self.model.config.prompt_template]
        else:
            templates = list(template)
        if not templates:
            raise ValueError("at least one template is needed")
        for t in templates:
            if "{}" not in t:
                raise ValueError(f"template must contain '{{}}' where the class goes: {t!r}")
        stacked = np.stack([self.embed_text([fill_template(t, c) for c in candidates]) for t in templates])
        mean = stacked.mean(axis=0)
        return (mean / np.linalg.norm(mean, axis=1, keepdims=True)).astype(np.float32)

    def classify_embeddings(self, audio_emb: np.ndarray, candidates: Sequence[str],
                            template: str | Sequence[str] | None = None) -> list[dict[str, float]]:
        """Per row, candidate -> softmax over candidates of ``logit_scale * cosine``."""
        candidates = list(candidates)
        if not candidates:
            raise ValueError("classify needs at least one candidate")
        if len(set(candidates)) != len(candidates):
            raise ValueError(f"duplicate candidates: {candidates}")
        logits = self.model.logit_scale * (audio_emb @ self.embed_prompts(candidates, template).T)
        logits = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return [dict(zip(candidates, map(float, row))) for row in probs]

    def provenance(self) -> dict:
        raise NotImplementedError

    def identity(self) -> str:
        raise NotImplementedError

    @property
    def min_audio_samples(self) -> int:
        raise NotImplementedError

    @property
    def default_batch_size(self) -> int:
        raise NotImplementedError

    @property
    def default_max_batch_seconds(self) -> float:
        raise NotImplementedError

    # attributes a subclass sets (see the module doc)
    model: Any
    cost: Any
    attention_budget: int
    decode_ahead: int
    decode_workers: int
    text_cache: Any
    _windows: dict
