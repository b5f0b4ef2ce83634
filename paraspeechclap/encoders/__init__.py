"""The project's own small encoders, registered with transformers' Auto classes on import.

``paraspeechclap_mel``: :class:`~paraspeechclap.encoders.mel.MelEncoderModel`, the `mini` model's speech tower.
"""

from transformers import AutoConfig, AutoModel

from .mel import MODEL_TYPE, MelEncoderConfig, MelEncoderModel, feature_extractor_config, output_lengths

try:
    AutoConfig.register(MODEL_TYPE, MelEncoderConfig)
    AutoModel.register(MelEncoderConfig, MelEncoderModel)
except ValueError:  # already registered (module reloaded)
    pass

__all__ = ["MODEL_TYPE", "MelEncoderConfig", "MelEncoderModel", "feature_extractor_config", "output_lengths"]
