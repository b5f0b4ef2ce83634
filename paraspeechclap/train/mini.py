"""The trainer's factory for the `mini` ParaSpeechCLAP: a fresh log-mel speech encoder + frozen MiniLM text tower.

Used as ``model.factory: paraspeechclap.train.mini.build_mini_model`` (see ``paraspeechclap/configs/train/mini.yaml``).
The trainer's plain ``from_encoders`` path cannot mix a randomly initialised speech tower with a pretrained text
tower, nor pick mean text pooling; this does, from the parts in :mod:`paraspeechclap.encoders.mini`.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

from ..encoders.mini import (MINI_PROJECTION_DROPOUT, MINI_TEXT_MODEL, CachedFrozenTextEncoder, load_trained_weights,
                             mel_encoder_folder, reference_style_texts, whitening_init)


def build_mini_model(model_config: Mapping[str, Any]):
    """A ParaSpeechCLAP with a fresh mel speech encoder and a pretrained text tower (trainer factory).

    Reads ``speech_model`` (mel preset or folder), ``text_model`` (``pypi:<package>`` or a folder) and
    ``embedding_dim`` (and ``projection_dropout`` when set) from the trainer's ``model`` section. Text
    pooling is ``mean`` (how MiniLM was trained); the text projection starts from a whitening of the text
    space (:func:`whitening_init`); the text tower's dropout is switched off and its pooled outputs are
    cached while it stays frozen (the recipe freezes it).
    """
    from transformers import AutoModel

    from ..api import ParaSpeechCLAP
    from ..hub import fetch_encoder_files

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
    whitening_init(model, reference_style_texts())
    if model_config.get("init") == "pretrained" and model_config.get("source"):
        load_trained_weights(model, model_config["source"])
    model.text_branch = CachedFrozenTextEncoder(model.text_branch)
    return model
