"""ParaSpeechCLAP: a dual encoder for speech and rich style descriptions.

>>> from paraspeechclap import ParaSpeechCLAP
>>> model = ParaSpeechCLAP.from_pretrained("mini")          # or "intrinsic", "situational", "combined"
>>> model.classify("clip.wav", ["deep", "high-pitched"])

Importing the package is cheap; torch and transformers load on first use of the names below.
"""
from __future__ import annotations

from ._version import __version__

__all__ = ["ParaSpeechCLAP", "load_audio", "AudioError", "__version__"]


def __getattr__(name: str):
    if name == "ParaSpeechCLAP":
        from .api import ParaSpeechCLAP

        return ParaSpeechCLAP
    if name in ("load_audio", "AudioError"):
        from . import audio

        return getattr(audio, name)
    raise AttributeError(f"module 'paraspeechclap' has no attribute {name!r}")
