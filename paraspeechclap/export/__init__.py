"""``paraspeechclap export``: a model's towers as ONNX or OpenVINO graphs, with its tokenizer and a manifest of
everything preprocessing needs, for the torch-free runtime (:mod:`paraspeechclap.runtime`).

``graphs``    the three graphs traced from the torch model, the int8 and OpenVINO conversions
``describe``  the manifest's sections (source, audio and windowing, text), the frame rule checked against the tower
``probes``    the probe clips and captions the export is checked on, and the agreement measure
``writer``    the folder: atomic, owned, checked against the torch engine before it is renamed into place
``cli``       the command
"""
from __future__ import annotations


from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {".writer": ["export_model", "VARIANTS", "TOLERANCES"]})
