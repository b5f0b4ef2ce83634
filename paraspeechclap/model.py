"""The ParaSpeechCLAP dual encoder: tensors in, tensors out.

Towers, masked mean / first-token pooling, projection heads and the learnable logit scale, with ``encode_audio``,
``encode_text`` and ``forward``. No files, no caches, no precision policy: those live in :mod:`paraspeechclap.inference`;
loading lives in :mod:`paraspeechclap.loading`; the public class with both is :class:`paraspeechclap.ParaSpeechCLAP`.

Module names and parameter shapes follow the authors' release, so that their ``.pth.tar`` state dicts
(``log_logit_scale``, ``audio_branch.base.*``, ``text_branch.base.*``, ``audio_projection.*``,
``text_projection.*``) load strictly.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .audio import TARGET_SAMPLE_RATE, normalize_waveform, pad_batch
from .prompts import DEFAULT_TEMPLATE


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


class ParaSpeechCLAPModel(nn.Module):
    """Speech tower + text tower + projection heads + learnable logit scale (tensors in, tensors out).

    Users meet the subclass :class:`paraspeechclap.ParaSpeechCLAP`, which adds loading (``from_pretrained``,
    ``from_encoders``, ``save_pretrained``) and the numpy API served by the inference engine.
    """

    def __init__(self, config: ParaSpeechCLAPConfig, speech_base: nn.Module | None = None,
                 text_base: nn.Module | None = None, tokenizer: Any = None):
        super().__init__()
        self.config = config
        speech_base = speech_base if speech_base is not None else build_encoder(config.speech_config)
        text_base = text_base if text_base is not None else build_encoder(config.text_config)
        from .kernels.switch import use_fast_paths

        use_fast_paths(speech_base)  # WavLM's attention, conv and linear layers: same maths, faster (kernels/)
        use_fast_paths(text_base)
        self.audio_branch = SpeechEncoder(speech_base, config.speech_pooling)
        self.text_branch = TextEncoder(text_base, config.text_pooling)
        self.audio_projection = Projection(self.audio_branch.hidden_size, config.embedding_dim, config.projection_dropout)
        self.text_projection = Projection(self.text_branch.hidden_size, config.embedding_dim, config.projection_dropout)
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.tokenizer = tokenizer

    # ------------------------------------------------------------------ torch API
    @property
    def device(self) -> torch.device:
        return self.log_logit_scale.device

    @property
    def logit_scale(self) -> float:
        return float(self.log_logit_scale.detach().exp())

    @property
    def sampling_rate(self) -> int:
        return int(self.config.sampling_rate)

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
