"""The torch-free runtime: an exported folder (``paraspeechclap export``) with the numpy API of
:class:`paraspeechclap.ParaSpeechCLAP`, on ONNX Runtime or OpenVINO, the ``tokenizers`` library and the project's
numpy/soundfile/soxr front end. Decoding, windows, streaming, batching and bad-item reporting are the inference
room's own (:mod:`paraspeechclap.inference.loop`), so the answers follow the same road as the torch engine's.

>>> from paraspeechclap import runtime
>>> model = runtime.load("mini-onnx")                      # a folder written by `paraspeechclap export`
>>> model.classify("clip.wav", ["calm", "angry"])

Nothing here imports torch or transformers (a test runs it in a venv without them).
"""
from __future__ import annotations

from pathlib import Path

from .manifest import FORMAT_VERSION, MANIFEST_NAME, ExportFormatError, is_exported_folder, read_manifest
from .model import ExportedConfig, ExportedModel

__all__ = ["load", "is_exported_folder", "read_manifest", "ExportedModel", "ExportedConfig", "ExportFormatError",
           "FORMAT_VERSION", "MANIFEST_NAME"]


def load(folder: str | Path, precision: str = "auto", threads: int | None = None) -> ExportedModel:
    """An exported folder, ready to embed. ``precision``: ``auto`` (OpenVINO exports: bf16 where the CPU multiplies
    bf16 natively, else fp32; ONNX exports: fp32), ``fp32``, ``bf16`` (OpenVINO) or ``int8`` (exports written with
    that variant). ``threads``: intra-op threads (default: the CPUs this process may use)."""
    return ExportedModel(folder, precision=precision, threads=threads)
