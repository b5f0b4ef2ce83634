"""Report writes for evaluate/, all through :mod:`paraspeechclap.fileio` (the one atomic writer)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..fileio import atomic_write, atomic_write_text

__all__ = ["atomic_write", "write_text", "write_json", "write_yaml", "write_dataframe_csv", "save_figure"]


def write_text(path: os.PathLike, text: str) -> Path:
    return atomic_write_text(path, text)


def write_json(path: os.PathLike, data: Any) -> Path:
    """Strict JSON (NaN/inf raise), unlike :func:`paraspeechclap.fileio.atomic_write_json`."""
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def write_yaml(path: os.PathLike, data: dict) -> Path:
    import yaml

    return atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def write_dataframe_csv(path: os.PathLike, frame, **kwargs) -> Path:
    return atomic_write(path, lambda handle: frame.to_csv(handle, **kwargs))


def save_figure(path: os.PathLike, figure) -> Path:
    return atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=110), binary=True)
