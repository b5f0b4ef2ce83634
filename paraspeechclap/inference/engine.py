"""The inference engine: the one road from audio and text to embeddings.

decode (bounded prefetch, streamed resampling; files over ``stream.STREAM_SECONDS`` are streamed twice instead of
held: statistics, then windows) -> whole-clip normalisation -> windows bounded in encoder frames ->
batches of similar length (no mask when a batch's windows are equally long) -> speech tower in the chosen precision
-> masked mean -> windows averaged by frame count -> projection (fp32) -> L2-normalise -> numpy.

The bulk loop (:meth:`InferenceEngine.embed_many`) reports a bad input and goes on; a batch that fails is retried
one window at a time (on CPU when a device ran out of memory), and only the inputs that still fail are reported.
Every command (API, CLI, evaluate, rerank, demo) goes through it.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..audio import AudioError, AudioInput, describe, file_seconds, load_audio, normalize_waveform, pad_batch
from ..kernels.cpu import cpu_has_amx
from ..kernels.malloc import keep_freed_blocks
from ..kernels.scratch import release_scratch
from .decode import prefetch
from .plan import ATTENTION_BUDGET_BYTES, EncoderCost, Window, plan_batches, window_size, window_spans
from .precision import native_bf16, resolve_device, resolve_precision, tower_accepts_bf16_weights
from .stream import STREAM_SECONDS, LongAudio, measure, windows as stream_windows
from .text_cache import TextCache, weights_version

log = logging.getLogger(__name__)

CHUNK_SECONDS = 600.0   # decoded audio gathered before it is windowed and batched (longer files form their own chunk)
CHUNK_ITEMS = 256
LONG_GROUP_SECONDS = 240.0  # a streamed file's windows are batched this much audio at a time
GPU_BATCH_SECONDS = 240.0
AMX_BATCH_CLIPS, AMX_BATCH_SECONDS = 8, 16.0  # bf16 on CPUs with AMX: short clips share a forward pass
CPU_LANES_MAX = 4  # fp32, and bf16 without AMX, on CPU: passes side by side, each on its share of torch's threads


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
    from pathlib import Path

    if isinstance(audio, (str, Path, bytes, bytearray)):
        return [audio]
    if isinstance(audio, tuple) and len(audio) == 2 and isinstance(audio[1], (int, np.integer)) \
            and not isinstance(audio[0], (str, Path)):
        return [audio]
    if isinstance(audio, np.ndarray):
        raise TypeError("give a raw array as (array, sample_rate) so that its rate is known")
    return list(audio)


class InferenceEngine:
    """Precision, device, windows, batches, decoding and the text cache around one ParaSpeechCLAP model."""

    def __init__(self, model: Any, device: str | torch.device | None = None, precision: str = "auto",
                 attention_budget: int = ATTENTION_BUDGET_BYTES, decode_ahead: int = 4, decode_workers: int = 2,
                 cpu_lanes: int | None = None):
        if cpu_lanes is not None and int(cpu_lanes) < 1:
            raise ValueError(f"cpu_lanes must be >= 1, got {cpu_lanes}")
        self.model = model
        target = resolve_device(device)
        if target.type == "cpu":
            keep_freed_blocks()  # page faults of fresh blocks otherwise cost as much as whole layers (kernels/malloc.py)
        model.to(target)
        model.eval()
        self.precision = resolve_precision(precision, target, model.audio_branch.base)
        self.attention_budget = int(attention_budget)
        self.decode_ahead, self.decode_workers = int(decode_ahead), int(decode_workers)
        self.text_cache = TextCache()
        self._speech_dtype = torch.float32
        self._autocast_speech = self._autocast_text = False
        self._apply_precision()
        self.cost = EncoderCost.of(model.audio_branch.base)
        self._windows: dict[tuple, tuple[int, int]] = {}
        self._min_samples: int | None = None
        self._identity: tuple[tuple, str] | None = None
        self._cpu_tower = None
        self._cpu_lanes = None if cpu_lanes is None else int(cpu_lanes)

    # ------------------------------------------------------------------ precision and placement
    def _apply_precision(self) -> None:
        """bf16: convert the towers' weights once (projection heads, pooling and norms of the pooled vectors stay
        fp32); a tower that cannot take bf16 weights runs under autocast instead. int8: dynamic quantization of the
        speech tower's linear layers."""
        model = self.model
        if self.precision == "bf16":
            for base, flag in ((model.audio_branch.base, "_autocast_speech"), (model.text_branch.base, "_autocast_text")):
                if tower_accepts_bf16_weights(base):
                    base.to(torch.bfloat16)
                else:
                    setattr(self, flag, True)
            if not self._autocast_speech:
                self._speech_dtype = torch.bfloat16
        elif self.precision == "int8":
            from ..kernels.int8 import quantize_int8

            quantize_int8(model)

    @property
    def device(self) -> torch.device:
        return self.model.log_logit_scale.device

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

    @property
    def sampling_rate(self) -> int:
        return int(self.model.config.sampling_rate)

    def _autocast(self, enabled: bool):
        """bf16 autocast for a tower that keeps fp32 weights; in fp32 on CUDA, TF32 convolutions are switched off so
        that fp32 means fp32 (cuDNN allows TF32 by default)."""
        if enabled:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        if self.device.type == "cuda" and self.precision == "fp32":
            return torch.backends.cudnn.flags(enabled=True, allow_tf32=False)
        return contextlib.nullcontext()

    @property
    def default_batch_size(self) -> int:
        """Clips per forward pass when none is given. On CPU a transformer speech tower runs fastest one clip at a
        time (paper-size model, this repo's benchmark on a Zen 4 CPU: bf16 batch 1 2.00x the reference against 1.71x
        for batches of up to 8 within one window; the fixture-shaped small tower likewise), except in bf16 on CPUs
        with AMX (``_amx_batches``); a tower whose per-call overhead dominates can ask for batches with a class
        attribute ``cpu_batch_size`` (the log-mel tower of ``mini``: 8, about 4x faster than one clip at a time).
        Accelerators: 8."""
        if self.device.type != "cpu":
            return 8
        if self._amx_batches:
            return AMX_BATCH_CLIPS
        return int(getattr(self.model.audio_branch.base, "cpu_batch_size", 1))

    @property
    def default_max_batch_seconds(self) -> float:
        """Padded audio per forward pass: one window on CPU (a batch is no faster per second there, and memory grows
        with every row), ``AMX_BATCH_SECONDS`` in bf16 on CPUs with AMX, 240 s on accelerators."""
        if self.device.type != "cpu":
            return GPU_BATCH_SECONDS
        window = self.window / self.sampling_rate
        return min(window, AMX_BATCH_SECONDS) if self._amx_batches else window

    @property
    def _amx_batches(self) -> bool:
        """bf16 on a CPU with AMX tiles, for a tower that states no batch size of its own: there a short clip's
        forward pass is bound by reading the weights (a 1 s clip is ~50 frames per matrix product), so clips share
        one within ``AMX_BATCH_SECONDS`` of padded audio (Intel Xeon, BENCHMARKS.md)."""
        return (self.precision == "bf16" and cpu_has_amx()
                and getattr(self.model.audio_branch.base, "cpu_batch_size", None) is None)

    @property
    def cpu_lanes(self) -> int:
        """Forward passes run side by side on CPU, each on ``threads // lanes`` of torch's threads, for windows small
        enough that the lanes together stay within one batch's frame and attention budget (longer ones run one at a
        time on all threads). Default ``min(torch threads, CPU_LANES_MAX)`` in fp32 and in ``_bf16_lanes``: two
        clips at a time on one thread each beat one clip on two threads there (BENCHMARKS.md). 1 in int8 and in bf16
        with AMX (not measured), for towers that state their own ``cpu_batch_size``, and on accelerators; the
        ``cpu_lanes`` option fixes it."""
        if self.device.type != "cpu":
            return 1
        if self._cpu_lanes is not None:
            return self._cpu_lanes
        if getattr(self.model.audio_branch.base, "cpu_batch_size", None) is not None:
            return 1
        if self.precision == "fp32" or self._bf16_lanes:
            return max(1, min(torch.get_num_threads(), CPU_LANES_MAX))
        return 1

    @property
    def _bf16_lanes(self) -> bool:
        """bf16 on a CPU with native bf16 but no AMX (AVX-512 BF16): lanes, measured faster on short and long clips
        alike (issue 30, BENCHMARKS.md); with AMX short clips share passes instead (``_amx_batches``)."""
        return self.precision == "bf16" and native_bf16(self.device) and not cpu_has_amx()

    def provenance(self) -> dict:
        """What produced an output: model identity, precision, device, versions. Recorded beside every result."""
        from .._version import __version__

        return {"model": getattr(self.model, "name", None) or "unnamed", "identity": self.identity(),
                "precision": self.precision, "device": str(self.device), "paraspeechclap": __version__,
                "torch": torch.__version__}

    def identity(self) -> str:
        """A content hash of config, weights and precision; recomputed whenever the weights change."""
        version = weights_version(self.model)
        if self._identity is None or self._identity[0] != version:
            digest = hashlib.sha256(json.dumps(self.model.config.to_dict(), sort_keys=True, default=str).encode())
            for name, tensor in sorted(self.model.state_dict().items()):
                if not isinstance(tensor, torch.Tensor):
                    continue
                digest.update(name.encode())
                data = tensor.detach().cpu().contiguous()
                if data.is_quantized:
                    data = data.dequantize()
                digest.update((data.float() if data.dtype == torch.bfloat16 else data).numpy().tobytes())
            digest.update(self.precision.encode())
            self._identity = (version, digest.hexdigest()[:16])
        return self._identity[1]

    # ------------------------------------------------------------------ audio: decoding
    @property
    def min_audio_samples(self) -> int:
        """Shortest input (samples at 16 kHz) that yields at least one encoder frame."""
        if self._min_samples is None:
            lengths = torch.arange(1, 16001)
            frames = self.model.audio_branch.base._get_feat_extract_output_lengths(lengths)
            valid = torch.nonzero(frames >= 1)
            self._min_samples = int(lengths[valid[0, 0]]) if len(valid) else 16000
        return self._min_samples

    def check_length(self, wave: np.ndarray, name: str) -> None:
        if len(wave) < self.min_audio_samples:
            raise AudioError(name, f"too short: {len(wave)} samples at {self.sampling_rate} Hz, the speech encoder "
                                   f"needs at least {self.min_audio_samples} (its receptive field)")

    def decode(self, item: AudioInput) -> np.ndarray:
        """One input to 16 kHz mono float32, checked to be long enough; raises :class:`AudioError`."""
        name = describe(item)
        wave = load_audio(item, self.sampling_rate, name=name)
        self.check_length(wave, name)
        return wave

    def _decode_for_embedding(self, item: AudioInput) -> np.ndarray | LongAudio:
        """A decoded input, or for a file longer than ``STREAM_SECONDS`` its first streamed pass (length and
        statistics; the windows are read in a second pass by :meth:`_embed_long`)."""
        name = describe(item)
        seconds = file_seconds(item, name)
        if seconds is None or seconds <= STREAM_SECONDS:
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
        limit = int(CHUNK_SECONDS * self.sampling_rate)
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
            if chunk_samples >= limit or len(chunk) >= CHUNK_ITEMS:
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
    @torch.inference_mode()
    def _embed_decoded(self, waves: Sequence[np.ndarray], batch_size: int,
                       max_frames: int) -> tuple[np.ndarray, dict[int, str]]:
        """Embeddings ``[N, D]`` of decoded waveforms (rows of failed inputs are zero) and {position: error}."""
        pooled = self._pooled_sums(len(waves))
        clips: list[np.ndarray] = []
        windows: list[Window] = []
        for owner, wave in enumerate(waves):
            clip = normalize_waveform(wave) if self.model.config.do_normalize else np.asarray(wave, np.float32)
            clips.append(clip)  # the whole clip is normalised, as the reference does
            windows += [Window(owner, start, end) for start, end in window_spans(len(clip), self.window, self.overlap)]
        try:
            self._accumulate(windows, lambda i: clips[windows[i].owner][windows[i].start:windows[i].end], pooled,
                             batch_size, max_frames)
        finally:
            release_scratch()
        return self._project(*pooled)

    @torch.inference_mode()
    def _embed_long(self, audio: LongAudio, batch_size: int, max_frames: int,
                    progress: bool = False) -> tuple[np.ndarray | None, str | None]:
        """One streamed file's embedding (or its error): its windows are read in a second pass, normalised with the
        whole file's statistics and batched ``LONG_GROUP_SECONDS`` of audio at a time, so memory holds a group of
        windows, never the file. ``progress``: a bar of the file's windows."""
        pooled = self._pooled_sums(1)
        spans = window_spans(audio.samples, self.window, self.overlap)
        group: list[np.ndarray] = []
        limit = int(LONG_GROUP_SECONDS * self.sampling_rate)
        errors = pooled[2]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(spans), desc=f"windows of {audio.name}", unit="window", leave=False)

        def run(group):
            self._accumulate([Window(0, 0, len(segment)) for segment in group], group.__getitem__, pooled, batch_size,
                             max_frames)
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
            release_scratch()
            if bar is not None:
                bar.close()
        embedding, errors = self._project(*pooled)
        return (None, errors[0]) if errors else (embedding[0], None)

    def _pooled_sums(self, count: int) -> tuple[torch.Tensor, torch.Tensor, dict[int, str]]:
        """Per input: the frame-weighted sum of its windows' pooled states, its frame count, its error."""
        if self.model.training:
            raise RuntimeError("embed_* runs in eval mode; call model.eval() first")
        hidden = self.model.audio_branch.hidden_size
        return torch.zeros(count, hidden, dtype=torch.float64), torch.zeros(count, dtype=torch.float64), {}

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

    def _project(self, sums: torch.Tensor, counts: torch.Tensor, errors: dict[int, str]) -> tuple[np.ndarray, dict]:
        """Frame-weighted means of the windows -> projection -> L2-normalised numpy; failed rows zero."""
        pooled_all = (sums / counts.clamp(min=1.0).unsqueeze(-1)).float().to(self.device)
        embedding = self.model.audio_projection(pooled_all)
        embedding = F.normalize(embedding.float(), dim=-1).cpu().numpy()
        for owner in errors:
            embedding[owner] = 0.0
        return embedding, errors

    def _run_batches(self, batches: list[list[int]], segments_of, windows: Sequence[Window],
                     max_frames: int) -> list[tuple[list[int], list]]:
        """``(batch, outcomes)`` of every batch: first those run one at a time on all of torch's threads, then, with
        ``cpu_lanes`` > 1, those whose padded frames and attention fit a lane's share of ``max_frames`` and of the
        budget, side by side in that many threads, each on its share of torch's threads (restored after)."""
        lanes = self.cpu_lanes if len(batches) > 1 else 1
        small, large = [], []
        for batch in batches:
            frames, rows = self.cost.frames(windows[batch[0]].length), len(batch)
            fits = (lanes > 1 and frames * rows <= max_frames // lanes
                    and self.cost.attention_bytes(frames, rows) <= self.attention_budget // lanes)
            (small if fits else large).append(batch)
        results = [(batch, self._pool_with_retry(segments_of(batch))) for batch in large]
        if len(small) < 2:
            return results + [(batch, self._pool_with_retry(segments_of(batch))) for batch in small]
        threads = torch.get_num_threads()

        def lane(batch):
            with torch.inference_mode():  # grad and inference modes are per thread
                return self._pool_with_retry(segments_of(batch))

        try:  # each lane thread's scratch tensors go with the thread
            with ThreadPoolExecutor(min(lanes, len(small)), thread_name_prefix="paraspeechclap-lane",
                                    initializer=torch.set_num_threads, initargs=(max(1, threads // lanes),)) as pool:
                results += list(zip(small, pool.map(lane, small)))
        finally:
            torch.set_num_threads(threads)  # torch keeps the last setting of any thread for threads made later
        return results

    def _pool(self, segments: Sequence[np.ndarray], tower=None, device=None, dtype=None):
        """Pooled hidden states (float64, CPU) and frame counts of one batch of windows."""
        tower = tower or self.model.audio_branch
        device = device or self.device
        values, mask = pad_batch(segments)
        values_t = torch.from_numpy(values).to(device=device, dtype=dtype or self._speech_dtype)
        mask_t = None if all(len(s) == len(segments[0]) for s in segments) else torch.from_numpy(mask).to(device)
        with self._autocast(self._autocast_speech and tower is self.model.audio_branch):
            pooled, frames = tower.pool(values_t, mask_t)
        return pooled.double().cpu(), frames.double().cpu()

    def _pool_with_retry(self, segments: Sequence[np.ndarray]) -> list:
        """Per window ``(pooled, frames)`` or an error message. A failed batch is retried one window at a time; a
        window that ran the device out of memory is retried on CPU in fp32."""
        try:
            pooled, frames = self._pool(segments)
            return [(pooled[r], frames[r]) for r in range(len(segments))]
        except (RuntimeError, MemoryError) as err:
            if len(segments) == 1:
                return [self._retry_on_cpu(segments[0], err)]
            log.warning("a batch of %d windows failed (%s); retrying them one at a time", len(segments), err)
        outcomes = []
        for segment in segments:
            try:
                pooled, frames = self._pool([segment])
                outcomes.append((pooled[0], frames[0]))
            except (RuntimeError, MemoryError) as err:
                outcomes.append(self._retry_on_cpu(segment, err))
        return outcomes

    def _retry_on_cpu(self, segment: np.ndarray, err: BaseException):
        if self.device.type == "cpu" or not isinstance(err, torch.OutOfMemoryError):
            return f"encoder failed: {type(err).__name__}: {err}"
        log.warning("device out of memory on a %.1f s window; retrying it on CPU", len(segment) / self.sampling_rate)
        if self._cpu_tower is None:
            self._cpu_tower = copy.deepcopy(self.model.audio_branch).to("cpu", torch.float32).eval()
        try:
            pooled, frames = self._pool([segment], tower=self._cpu_tower, device=torch.device("cpu"),
                                        dtype=torch.float32)
            return pooled[0], frames[0]
        except (RuntimeError, MemoryError) as cpu_err:
            return f"encoder failed on the device ({err}) and on CPU ({cpu_err})"

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
            while part := list(itertools.islice(segments, CHUNK_ITEMS)):  # bounded: each window normalised alone
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
        texts = [texts] if isinstance(texts, str) else list(texts)
        for position, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"text {position} is empty or not a string: {text!r}")
        if self.model.training:
            raise RuntimeError("embed_* runs in eval mode; call model.eval() first")
        if not texts:
            return np.zeros((0, self.model.config.embedding_dim), np.float32)
        version = (weights_version(self.model.text_branch, self.model.text_projection), self.precision)
        return self.text_cache.get_many(texts, version, lambda missing: self._encode_texts(missing, batch_size))

    @torch.inference_mode()
    def _encode_texts(self, texts: list[str], batch_size: int) -> np.ndarray:
        rows = []
        for start in range(0, len(texts), batch_size):
            tokens = self.model.tokenize(texts[start:start + batch_size])
            with self._autocast(self._autocast_text):
                pooled = self.model.text_branch(tokens)
            embedding = self.model.text_projection(pooled.float())
            rows.append(F.normalize(embedding.float(), dim=-1).cpu().numpy())
        return np.concatenate(rows)

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
        stacked = np.stack([self.embed_text([t.format(c) for c in candidates]) for t in templates])
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
