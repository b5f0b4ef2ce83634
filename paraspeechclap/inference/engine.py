"""The inference engine: the one road from audio and text to embeddings, for torch models.

decode (bounded prefetch, streamed resampling; files over ``stream.STREAM_SECONDS`` are streamed twice instead of
held: statistics, then windows) -> whole-clip normalisation -> windows bounded in encoder frames ->
batches of similar length (no mask when a batch's windows are equally long) -> speech tower in the chosen precision
-> masked mean -> windows averaged by frame count -> projection (fp32) -> L2-normalise -> numpy.

The bulk loop (:meth:`InferenceEngine.embed_many`) reports a bad input and goes on; a batch that fails is retried
one window at a time (on CPU when a device ran out of memory), and only the inputs that still fail are reported.
Every command (API, CLI, evaluate, rerank, demo) goes through it. The road itself (windows, streaming, batches, the
bulk loop, text cache and prompts) is :class:`loop.EmbeddingLoop`, shared with the torch-free runtime; this module
holds what needs torch: precision, device, the towers, CPU lanes, identity.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..audio import load_audio, pad_batch
from ..kernels.cpu import cpu_has_amx
from ..kernels.malloc import keep_freed_blocks
from ..kernels.scratch import release_scratch, tensor_version
from .loop import CHUNK_ITEMS, CHUNK_SECONDS, LONG_GROUP_SECONDS, EmbeddingLoop, ItemResult, as_audio_list
from .plan import ATTENTION_BUDGET_BYTES, EncoderCost, Window
from .precision import native_bf16, resolve_device, resolve_precision, tower_accepts_bf16_weights
from .stream import STREAM_SECONDS
from .text_cache import TextCache

__all__ = ["InferenceEngine", "ItemResult", "as_audio_list", "weights_version", "CHUNK_ITEMS", "CHUNK_SECONDS",
           "LONG_GROUP_SECONDS", "STREAM_SECONDS"]

log = logging.getLogger(__name__)

GPU_BATCH_SECONDS = 240.0
AMX_BATCH_CLIPS, AMX_BATCH_SECONDS = 8, 16.0  # bf16 on CPUs with AMX: short clips share a forward pass
CPU_LANES_MAX = 4  # fp32, and bf16 without AMX, on CPU: passes side by side, each on its share of torch's threads


def weights_version(*modules: torch.nn.Module) -> tuple:
    """A cheap fingerprint that changes whenever any parameter or buffer of ``modules`` is replaced or modified in
    place (``load_state_dict``, an optimizer step, ``.to(dtype)``): storage address, dtype and torch's in-place
    version counter of every tensor."""
    parts = []
    for module in modules:
        for tensor in list(module.parameters()) + list(module.buffers()):
            parts.append((tensor.data_ptr(), str(tensor.dtype), tensor_version(tensor)))
    return tuple(parts)


class InferenceEngine(EmbeddingLoop):
    """Precision, device and the towers around one ParaSpeechCLAP model; windows, batches, decoding, the bulk loop
    and the text cache come from :class:`EmbeddingLoop`."""

    # this module's constants, read at call time (tests and benchmarks patch them here)
    chunk_seconds = property(lambda self: CHUNK_SECONDS)
    chunk_items = property(lambda self: CHUNK_ITEMS)
    long_group_seconds = property(lambda self: LONG_GROUP_SECONDS)
    stream_seconds = property(lambda self: STREAM_SECONDS)

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

    def _read_audio(self, item, name: str) -> np.ndarray:
        return load_audio(item, self.sampling_rate, name=name)  # this module's name (tests patch it here)

    # ------------------------------------------------------------------ the towers (hooks of EmbeddingLoop)
    def _encoder_context(self):
        return torch.inference_mode()

    def _release_scratch(self) -> None:
        release_scratch()

    def _pooled_sums(self, count: int) -> tuple[torch.Tensor, torch.Tensor, dict[int, str]]:
        """Per input: the frame-weighted sum of its windows' pooled states, its frame count, its error."""
        if self.model.training:
            raise RuntimeError("embed_* runs in eval mode; call model.eval() first")
        hidden = self.model.audio_branch.hidden_size
        return torch.zeros(count, hidden, dtype=torch.float64), torch.zeros(count, dtype=torch.float64), {}

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

    def _retry_alone(self, segment: np.ndarray, err: BaseException):
        return self._retry_on_cpu(segment, err)

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

    # ------------------------------------------------------------------ text
    def _text_version(self) -> tuple:
        return weights_version(self.model.text_branch, self.model.text_projection), self.precision

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
