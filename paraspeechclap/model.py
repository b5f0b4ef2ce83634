"""The ParaSpeechCLAP dual encoder and its inference API.

Module names and parameter shapes follow the authors' release, so that their ``.pth.tar`` state dicts
(``log_logit_scale``, ``audio_branch.base.*``, ``text_branch.base.*``, ``audio_projection.*``,
``text_projection.*``) load strictly.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .audio import (
    TARGET_SAMPLE_RATE,
    AudioError,
    AudioInput,
    describe,
    load_audio,
    normalize_waveform,
    pad_batch,
    window_spans,
)
from .prompts import DEFAULT_TEMPLATE

PRECISIONS = ("auto", "fp32", "bf16", "int8")


@dataclass
class ParaSpeechCLAPConfig:
    """Everything needed to rebuild a ParaSpeechCLAP model without network access."""

    speech_config: dict
    text_config: dict
    embedding_dim: int = 768
    projection_dropout: float = 0.5
    speech_pooling: str = "mean"
    text_pooling: str = "first"
    prompt_template: str = DEFAULT_TEMPLATE
    max_text_length: int = 512
    sampling_rate: int = TARGET_SAMPLE_RATE
    do_normalize: bool = True
    window_seconds: float = 30.0
    window_overlap_seconds: float = 5.0
    speech_model: str | None = None
    text_model: str | None = None
    text_weights_package: str | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"model_type": "paraspeechclap", **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ParaSpeechCLAPConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known - {"model_type", "format_version"})
        if unknown:
            raise ValueError(f"unknown ParaSpeechCLAP config keys: {unknown}")
        return cls(**{k: v for k, v in data.items() if k in known})


def register_project_encoders() -> None:
    """Make this project's own encoders (``paraspeechclap.encoders``) known to ``AutoModel``."""
    import importlib.util

    if importlib.util.find_spec(f"{__package__}.encoders") is not None:
        importlib.import_module(f"{__package__}.encoders")


def build_encoder(config: Mapping[str, Any]) -> nn.Module:
    """A Hugging Face encoder with random weights from a config dict (no download)."""
    from transformers import AutoConfig, AutoModel

    register_project_encoders()

    config = dict(config)
    model_type = config.pop("model_type")
    hf_config = AutoConfig.for_model(model_type, **config)
    return AutoModel.from_config(hf_config)


class Projection(nn.Module):
    """linear1 -> GELU -> linear2 -> dropout, residual around the second branch, LayerNorm; no biases."""

    def __init__(self, d_in: int, d_out: int, p: float = 0.5):
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out, bias=False)
        self.linear2 = nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = nn.LayerNorm(d_out)
        self.drop = nn.Dropout(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embed1 = self.linear1(x)
        embed2 = self.drop(self.linear2(F.gelu(embed1)))
        return self.layer_norm(embed1 + embed2)


def frame_mask(base: nn.Module, sample_mask: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Frame-level mask from a sample-level mask, with the encoder's own conv-length rule."""
    lengths = base._get_feat_extract_output_lengths(sample_mask.sum(-1))
    positions = torch.arange(num_frames, device=sample_mask.device)
    return (positions[None, :] < lengths[:, None]).to(torch.float32)


class SpeechEncoder(nn.Module):
    """Any Hugging Face audio encoder, pooled by an attention-mask-aware mean over frames."""

    def __init__(self, base: nn.Module, pooling: str = "mean"):
        super().__init__()
        if pooling != "mean":
            raise ValueError(f"speech pooling must be 'mean', got {pooling!r}")
        self.base = base
        self.hidden_size = int(base.config.hidden_size)

    def pool(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """Pooled hidden state ``[B, H]`` (float32) and the number of frames pooled per row."""
        hidden = self.base(input_values, attention_mask=attention_mask, return_dict=True).last_hidden_state
        hidden = hidden.float()
        if attention_mask is None:
            counts = torch.full((hidden.shape[0],), hidden.shape[1], device=hidden.device, dtype=torch.float32)
            return hidden.mean(dim=1), counts
        mask = frame_mask(self.base, attention_mask, hidden.shape[1])
        counts = mask.sum(dim=1)
        pooled = (hidden * mask.unsqueeze(-1)).sum(dim=1) / counts.clamp(min=1.0).unsqueeze(-1)
        return pooled, counts

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.pool(input_values, attention_mask)[0]


class TextEncoder(nn.Module):
    """Any Hugging Face text encoder, pooled at the first token (``first``) or by masked mean (``mean``)."""

    def __init__(self, base: nn.Module, pooling: str = "first"):
        super().__init__()
        if pooling not in ("first", "mean"):
            raise ValueError(f"text pooling must be 'first' or 'mean', got {pooling!r}")
        self.base = base
        self.pooling = pooling
        self.hidden_size = int(base.config.hidden_size)

    def forward(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.base(**tokens, return_dict=True).last_hidden_state.float()
        if self.pooling == "first":
            return hidden[:, 0, :]
        mask = tokens["attention_mask"].to(hidden.dtype).unsqueeze(-1)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def _bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 where the hardware multiplies bf16 natively, else fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if _bf16_supported(device) else "fp32"
    if precision == "int8" and device.type != "cpu":
        raise ValueError("int8 dynamic quantization runs on CPU only")
    return precision


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class ParaSpeechCLAP(nn.Module):
    """Speech tower + text tower + projection heads + learnable logit scale.

    Build with :meth:`from_pretrained` (released checkpoints, ``mini``, saved folders) or
    :meth:`from_encoders` (fresh heads on any Hugging Face encoders, for training).
    """

    def __init__(self, config: ParaSpeechCLAPConfig, speech_base: nn.Module | None = None,
                 text_base: nn.Module | None = None, tokenizer: Any = None):
        super().__init__()
        self.config = config
        speech_base = speech_base if speech_base is not None else build_encoder(config.speech_config)
        text_base = text_base if text_base is not None else build_encoder(config.text_config)
        from .fast import use_sdpa_attention

        use_sdpa_attention(speech_base)  # same maths as WavLM's stock attention, without materialised weights
        self.audio_branch = SpeechEncoder(speech_base, config.speech_pooling)
        self.text_branch = TextEncoder(text_base, config.text_pooling)
        self.audio_projection = Projection(self.audio_branch.hidden_size, config.embedding_dim, config.projection_dropout)
        self.text_projection = Projection(self.text_branch.hidden_size, config.embedding_dim, config.projection_dropout)
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.tokenizer = tokenizer
        self.precision = "fp32"
        self._text_cache: "OrderedDict[str, np.ndarray]" = OrderedDict()
        self._text_cache_size = 10000
        self._identity: str | None = None
        self._min_samples: int | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, source: str | Path, speech_model: str | Path | None = None,
                        text_model: str | Path | None = None, embedding_dim: int | None = None,
                        device: str | torch.device | None = None, precision: str = "auto",
                        strict: bool = True) -> "ParaSpeechCLAP":
        """Load ``mini``, a released alias (``intrinsic``/``situational``/``combined``), a ``.pth.tar`` file,
        a :meth:`save_pretrained` folder or a hub repo holding one. See :mod:`paraspeechclap.checkpoints`."""
        from .checkpoints import load_model

        model = load_model(cls, source, speech_model=speech_model, text_model=text_model,
                           embedding_dim=embedding_dim, strict=strict)
        return model.prepare_for_inference(device=device, precision=precision)

    @classmethod
    def from_encoders(cls, speech_model: str | Path, text_model: str | Path, embedding_dim: int = 768,
                      pretrained_encoders: bool = True, projection_dropout: float = 0.5,
                      text_pooling: str = "first", **config_overrides: Any) -> "ParaSpeechCLAP":
        """Fresh projection heads on two Hugging Face encoders (pretrained weights or random init)."""
        from .checkpoints import build_from_encoders

        return build_from_encoders(cls, speech_model, text_model, embedding_dim=embedding_dim,
                                   pretrained_encoders=pretrained_encoders, projection_dropout=projection_dropout,
                                   text_pooling=text_pooling, **config_overrides)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write a self-describing folder (config JSON, safetensors weights, tokenizer), atomically."""
        from .checkpoints import save_pretrained

        return save_pretrained(self, folder)

    def prepare_for_inference(self, device: str | torch.device | None = None, precision: str = "auto") -> "ParaSpeechCLAP":
        """Move to ``device``, switch to eval mode and pick the numeric precision of the inference API."""
        target = resolve_device(device)
        self.to(target)
        self.eval()
        self.precision = resolve_precision(precision, target)
        if self.precision == "int8":
            from .fast import quantize_int8

            quantize_int8(self)
        return self

    # ------------------------------------------------------------------ torch API
    @property
    def device(self) -> torch.device:
        return self.log_logit_scale.device

    @property
    def logit_scale(self) -> float:
        return float(self.log_logit_scale.detach().exp())

    @property
    def default_batch_size(self) -> int:
        """Clips per batch when none is given. On CPU, WavLM-Large measured ~13 % faster one clip at a time
        (BENCHMARKS.md), but small encoders such as mini's are ~4x slower that way, so 8 everywhere."""
        return 8

    @property
    def default_max_batch_seconds(self) -> float:
        """Padded audio per forward pass when none is given: one window on CPU, 240 s on accelerators.

        On CPU a batch is no faster per second of audio than one window at a time (BENCHMARKS.md), while memory
        grows with every extra window (WavLM-Large: BENCHMARKS.md, Long files); so long files stream one window at a
        time there, and short clips still share a batch up to the same length."""
        return float(self.config.window_seconds) if self.device.type == "cpu" else 240.0

    @property
    def sampling_rate(self) -> int:
        return int(self.config.sampling_rate)

    @property
    def min_audio_samples(self) -> int:
        """Shortest input (samples at 16 kHz) that yields at least one encoder frame."""
        if self._min_samples is None:
            base = self.audio_branch.base
            lengths = torch.arange(1, 16001)
            frames = base._get_feat_extract_output_lengths(lengths)
            valid = torch.nonzero(frames >= 1)
            self._min_samples = int(lengths[valid[0, 0]]) if len(valid) else 16000
        return self._min_samples

    def train(self, mode: bool = True) -> "ParaSpeechCLAP":
        if mode:
            self._text_cache.clear()
            self._identity = None
        return super().train(mode)

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        if self.tokenizer is None:
            raise RuntimeError("this model has no tokenizer attached")
        limit = max_length or self.config.max_text_length
        model_max = getattr(self.tokenizer, "model_max_length", limit) or limit
        tokens = self.tokenizer(list(texts), padding="longest", truncation=True,
                                max_length=min(limit, model_max), return_tensors="pt")
        return {k: v.to(self.device) for k, v in tokens.items()}

    def prepare_audio(self, waves: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalise 16 kHz mono waveforms as the speech preprocessor says and right-pad them with a mask."""
        if self.config.do_normalize:
            waves = [normalize_waveform(w) for w in waves]
        values, mask = pad_batch(waves)
        return torch.from_numpy(values).to(self.device), torch.from_numpy(mask).to(self.device)

    def encode_audio(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None,
                     normalize: bool = True) -> torch.Tensor:
        embedding = self.audio_projection(self.audio_branch(input_values, attention_mask))
        return F.normalize(embedding, dim=-1) if normalize else embedding

    def encode_text(self, tokens: Mapping[str, torch.Tensor], normalize: bool = True) -> torch.Tensor:
        embedding = self.text_projection(self.text_branch(tokens))
        return F.normalize(embedding, dim=-1) if normalize else embedding

    def forward(self, input_values: torch.Tensor, text_tokens: Mapping[str, torch.Tensor],
                audio_attention_mask: torch.Tensor | None = None):
        """``(text_emb, speech_emb, logit_scale)``, embeddings unnormalised, as the reference returns them."""
        text_emb = self.encode_text(text_tokens, normalize=False)
        speech_emb = self.encode_audio(input_values, audio_attention_mask, normalize=False)
        return text_emb, speech_emb, self.log_logit_scale.exp()

    # ------------------------------------------------------------------ numpy API
    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def load_waveforms(self, audio: AudioInput | Sequence[AudioInput]) -> list[np.ndarray]:
        """Decode every input to 16 kHz mono and check it is long enough; raises :class:`AudioError`."""
        items = as_audio_list(audio)
        waves = []
        for item in items:
            wave = load_audio(item, self.sampling_rate)
            self.check_length(wave, describe(item))
            waves.append(wave)
        return waves

    def check_length(self, wave: np.ndarray, name: str) -> None:
        if len(wave) < self.min_audio_samples:
            raise AudioError(name, f"too short: {len(wave)} samples at {self.sampling_rate} Hz, the speech encoder "
                                   f"needs at least {self.min_audio_samples} (its receptive field)")

    @torch.inference_mode()
    def embed_audio(self, audio: AudioInput | Sequence[AudioInput], batch_size: int | None = None,
                    max_batch_seconds: float | None = None, progress: bool = False) -> np.ndarray:
        """L2-normalised audio embeddings ``[N, D]``.

        ``audio`` is a path, bytes, an ``(array, sample_rate)`` pair, or a list of these. Clips are batched by
        length (at most ``batch_size`` clips, default :attr:`default_batch_size`, and ``max_batch_seconds`` of padded
        audio per batch, default :attr:`default_max_batch_seconds`). Clips longer
        than ``config.window_seconds`` are cut into overlapping windows whose pooled frames are averaged.
        """
        waves = self.load_waveforms(audio)
        return self.embed_waveforms(waves, batch_size=batch_size, max_batch_seconds=max_batch_seconds,
                                    progress=progress)

    @torch.inference_mode()
    def embed_waveforms(self, waves: Sequence[np.ndarray], batch_size: int | None = None,
                        max_batch_seconds: float | None = None, progress: bool = False) -> np.ndarray:
        """Embeddings of already decoded 16 kHz mono waveforms (see :meth:`embed_audio`)."""
        if len(waves) == 0:
            return np.zeros((0, self.config.embedding_dim), dtype=np.float32)
        if self.training:
            raise RuntimeError("embed_* runs in eval mode; call model.eval() first")
        if batch_size is None:
            batch_size = self.default_batch_size
        if max_batch_seconds is None:
            max_batch_seconds = self.default_max_batch_seconds
        window = int(round(self.config.window_seconds * self.sampling_rate))
        overlap = int(round(self.config.window_overlap_seconds * self.sampling_rate))
        segments: list[tuple[int, np.ndarray]] = []
        for index, wave in enumerate(waves):
            if self.config.do_normalize:
                wave = normalize_waveform(wave)  # the whole clip, as the reference does
            for start, end in window_spans(len(wave), window, overlap):
                segments.append((index, wave[start:end]))
        order = sorted(range(len(segments)), key=lambda i: -len(segments[i][1]))
        max_samples = int(max_batch_seconds * self.sampling_rate)
        batches: list[list[int]] = []
        for i in order:
            longest = len(segments[batches[-1][0]][1]) if batches else 0
            if batches and len(batches[-1]) < batch_size and longest * (len(batches[-1]) + 1) <= max_samples:
                batches[-1].append(i)
            else:
                batches.append([i])
        hidden = self.audio_branch.hidden_size
        sums = torch.zeros(len(waves), hidden, dtype=torch.float64)
        counts = torch.zeros(len(waves), dtype=torch.float64)
        iterator: Iterable = batches
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(batches, desc="embedding audio", unit="batch")
        for batch in iterator:
            values, mask = pad_batch([segments[i][1] for i in batch])
            values_t = torch.from_numpy(values).to(self.device)
            mask_t = torch.from_numpy(mask).to(self.device)
            with self._autocast():
                pooled, frames = self.audio_branch.pool(values_t, mask_t)
            pooled, frames = pooled.double().cpu(), frames.double().cpu()
            for row, i in enumerate(batch):
                owner = segments[i][0]
                sums[owner] += pooled[row] * frames[row]
                counts[owner] += frames[row]
        pooled_all = (sums / counts.clamp(min=1.0).unsqueeze(-1)).float().to(self.device)
        with self._autocast():
            embedding = self.audio_projection(pooled_all)
        return F.normalize(embedding.float(), dim=-1).cpu().numpy()

    @torch.inference_mode()
    def embed_text(self, texts: str | Sequence[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised text embeddings ``[N, D]``; each distinct string is embedded once and cached."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        for position, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"text {position} is empty or not a string: {text!r}")
        if self.training:
            raise RuntimeError("embed_* runs in eval mode; call model.eval() first")
        missing = sorted({t for t in texts if t not in self._text_cache}, key=len)
        for start in range(0, len(missing), batch_size):
            chunk = missing[start:start + batch_size]
            with self._autocast():
                embedding = self.encode_text(self.tokenize(chunk), normalize=True)
            for text, row in zip(chunk, embedding.float().cpu().numpy()):
                self._text_cache[text] = row
        result = np.stack([self._text_cache[t] for t in texts]) if texts else np.zeros((0, self.config.embedding_dim), np.float32)
        for text in texts:
            self._text_cache.move_to_end(text)
        while len(self._text_cache) > self._text_cache_size:
            self._text_cache.popitem(last=False)
        return result.astype(np.float32)

    def embed_prompts(self, candidates: Sequence[str], template: str | Sequence[str] | None = None) -> np.ndarray:
        """One embedding per candidate class: the template(s) filled in, averaged over templates, renormalised."""
        templates = [template or self.config.prompt_template] if isinstance(template, (str, type(None))) else list(template)
        if not templates:
            raise ValueError("at least one template is needed")
        for t in templates:
            if "{}" not in t:
                raise ValueError(f"template must contain '{{}}' where the class goes: {t!r}")
        stacked = np.stack([self.embed_text([t.format(c) for c in candidates]) for t in templates])
        mean = stacked.mean(axis=0)
        return (mean / np.linalg.norm(mean, axis=1, keepdims=True)).astype(np.float32)

    def similarity(self, audio: AudioInput | Sequence[AudioInput], texts: str | Sequence[str],
                   batch_size: int | None = None) -> np.ndarray:
        """Cosine similarities ``[N_audio, N_text]``."""
        return self.embed_audio(audio, batch_size=batch_size) @ self.embed_text(texts).T

    def classify(self, audio: AudioInput | Sequence[AudioInput], candidates: Sequence[str],
                 template: str | Sequence[str] | None = None, batch_size: int | None = None) -> list[dict[str, float]]:
        """Per clip, a dict candidate -> probability = softmax over candidates of ``logit_scale * cosine``."""
        audio_emb = self.embed_audio(audio, batch_size=batch_size)
        return self.classify_embeddings(audio_emb, candidates, template)

    def classify_embeddings(self, audio_emb: np.ndarray, candidates: Sequence[str],
                            template: str | Sequence[str] | None = None) -> list[dict[str, float]]:
        candidates = list(candidates)
        if not candidates:
            raise ValueError("classify needs at least one candidate")
        if len(set(candidates)) != len(candidates):
            raise ValueError(f"duplicate candidates: {candidates}")
        logits = self.logit_scale * (audio_emb @ self.embed_prompts(candidates, template).T)
        logits = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return [dict(zip(candidates, map(float, row))) for row in probs]

    def identity(self) -> str:
        """A content hash of config and weights; keys on-disk caches of embeddings."""
        if self._identity is None:
            digest = hashlib.sha256(json.dumps(self.config.to_dict(), sort_keys=True, default=str).encode())
            for name, tensor in sorted(self.state_dict().items()):
                digest.update(name.encode())
                data = tensor.detach().cpu().contiguous()
                if data.is_quantized:
                    data = data.dequantize()
                digest.update(data.float().numpy().tobytes() if data.dtype == torch.bfloat16 else data.numpy().tobytes())
            digest.update(self.precision.encode())
            self._identity = digest.hexdigest()[:16]
        return self._identity


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
