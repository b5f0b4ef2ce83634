"""Exported folders for the export and runtime tests, written once per test session (an export traces three graphs:
~30 s of CPU for the reference-tiny fixture)."""
from __future__ import annotations

from pathlib import Path

from reference_fixture import FIXTURE, load_tiny

_DONE: dict[tuple[str, str], Path] = {}


def load_source(kind: str):
    """The torch model in fp32 on CPU: ``tiny`` (the reference fixture) or ``mini``."""
    if kind == "tiny":
        return load_tiny(FIXTURE)
    from paraspeechclap import ParaSpeechCLAP

    return ParaSpeechCLAP.from_pretrained(kind, device="cpu", precision="fp32")


def exported(tmp_path_factory, kind: str = "tiny", backend: str = "onnx") -> Path:
    """``kind`` exported for ``backend`` with all its variants, once per session."""
    key = (kind, backend)
    if key not in _DONE:
        from paraspeechclap.export import export_model

        out = tmp_path_factory.mktemp(f"export-{kind}-{backend}") / "model"
        _DONE[key] = export_model(load_source(kind), out, backend, source={"model": kind})
    return _DONE[key]
