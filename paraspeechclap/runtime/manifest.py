"""The exported folder's manifest: what the runtime needs besides the graphs, as declared data.

``paraspeechclap-export.json`` (written last, so a folder holding it is complete) says which graphs there are and in
which precisions, and everything preprocessing needs: sample rate, normalisation, windows and the frame budget
(the speech tower's conv-length rule as data, its attention heads, the budget), text pooling, tokenizer length and
inputs, the default template, the logit scale, and where the weights came from (name, identity, versions). It is
also the export command's ownership record (``written_by`` and ``outputs``: relative path -> digest), so that the
command replaces only a folder it wrote (:mod:`paraspeechclap.fileio`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST_NAME = "paraspeechclap-export.json"
FORMAT = "paraspeechclap-export"
FORMAT_VERSION = 1
WRITTEN_BY = "paraspeechclap export"
TOKENIZER_DIR = "tokenizer"
BACKENDS = ("onnx", "openvino")
# graph -> what it computes (the graphs' input and output names are part of the format)
GRAPHS = {
    "speech_tower": "input_values [B, L] float32, attention_mask [B, L] int64 -> pooled [B, H] float32 (masked mean "
                    "over the tower's frames), frames [B] float32",
    "speech_projection": "pooled [N, H] float32 -> audio_embedding [N, D] float32, L2-normalised",
    "text": "input_ids, attention_mask (, token_type_ids) [B, T] int64 -> text_embedding [B, D] float32, "
            "L2-normalised (tower, pooling, projection)",
}
SPEECH_INPUTS, SPEECH_OUTPUTS = ("input_values", "attention_mask"), ("pooled", "frames")
PROJECTION_INPUTS, PROJECTION_OUTPUTS = ("pooled",), ("audio_embedding",)
TEXT_OUTPUTS = ("text_embedding",)
# required keys of each section -> type
SCHEMA: dict[str, dict[str, type | tuple]] = {
    "model": {"name": str, "identity": str, "embedding_dim": int, "logit_scale": float, "versions": dict},
    "audio": {"sampling_rate": int, "do_normalize": bool, "window_seconds": (int, float),
              "window_overlap_seconds": (int, float), "attention_budget_bytes": int, "attention_heads": int,
              "frame_rule": list, "min_samples": int, "hidden_size": int, "bf16_weights": bool},
    "text": {"pooling": str, "template": str, "max_length": int, "inputs": list, "pad_id": int, "pad_token": str},
    "graphs": {"speech_tower": dict, "speech_projection": dict, "text": dict},
}


class ExportFormatError(ValueError):
    """A folder that is not a readable export of this format; the message says what is wrong."""


def is_exported_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder written by ``paraspeechclap export`` (its manifest names this format)."""
    manifest = Path(path) / MANIFEST_NAME
    if not Path(path).is_dir() or not manifest.is_file():
        return False
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") == FORMAT


def read_manifest(folder: str | Path) -> dict:
    """The checked manifest of an exported folder; :class:`ExportFormatError` names what is missing or wrong."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise ExportFormatError(f"{folder}: not a folder")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportFormatError(f"{folder}: not an exported ParaSpeechCLAP folder (no {MANIFEST_NAME}); write one "
                                f"with `paraspeechclap export MODEL --format onnx --out {folder}`") from None
    except (OSError, ValueError) as err:
        raise ExportFormatError(f"{path}: unreadable ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ExportFormatError(f"{path}: not a {FORMAT} manifest")
    version = doc.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ExportFormatError(f"{path}: format_version {version!r}; this runtime reads up to {FORMAT_VERSION} "
                                f"(upgrade paraspeechclap)")
    if doc.get("backend") not in BACKENDS:
        raise ExportFormatError(f"{path}: backend must be one of {BACKENDS}, got {doc.get('backend')!r}")
    for section, fields in SCHEMA.items():
        part = doc.get(section)
        if not isinstance(part, dict):
            raise ExportFormatError(f"{path}: section {section!r} missing")
        for key, kind in fields.items():
            if not isinstance(part.get(key), kind) or isinstance(part.get(key), bool) and kind is int:
                raise ExportFormatError(f"{path}: {section}.{key} missing or not {getattr(kind, '__name__', kind)}")
    for graph, files in doc["graphs"].items():
        for precision, rel in files.items():
            if not isinstance(rel, str) or not (folder / rel).is_file():
                raise ExportFormatError(f"{path}: graph {graph} ({precision}) file {rel!r} is missing")
    frame_rule(doc["audio"]["frame_rule"])  # validates the steps
    return doc


def frame_rule(steps: list[Any]):
    """The speech tower's conv-length rule (samples -> encoder frames) from its steps ``{kernel, stride, padding}``:
    ``length = (length + 2 * padding - kernel) // stride + 1`` per step, as the towers' own rules compute it."""
    parsed = []
    for step in steps:
        if not isinstance(step, dict) or not all(isinstance(step.get(k), int) for k in ("kernel", "stride", "padding")) \
                or step["stride"] < 1 or step["kernel"] < 0 or step["padding"] < 0:
            raise ExportFormatError(f"frame_rule step {step!r}: need integers kernel >= 0, stride >= 1, padding >= 0")
        parsed.append((step["kernel"], step["stride"], step["padding"]))
    if not parsed:
        raise ExportFormatError("frame_rule has no steps")

    def frames(samples: int) -> int:
        length = int(samples)
        for kernel, stride, padding in parsed:
            length = (length + 2 * padding - kernel) // stride + 1
        return length

    return frames
