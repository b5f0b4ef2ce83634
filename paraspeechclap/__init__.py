"""ParaSpeechCLAP: a dual encoder for speech and rich style descriptions.

>>> from paraspeechclap import ParaSpeechCLAP
>>> model = ParaSpeechCLAP.from_pretrained("mini")          # or "intrinsic", "situational", "combined"
>>> model.classify("clip.wav", ["deep", "high-pitched"])

Importing the package is cheap; torch and transformers load on first use of the names below.
"""
from __future__ import annotations

from ._version import __version__
from .lazy import lazy_exports

__getattr__, __dir__, _EXPORTED = lazy_exports(__name__, {".api": ["ParaSpeechCLAP"],
                                                          ".audio": ["load_audio", "AudioError"]})
__all__ = [*_EXPORTED, "__version__"]
