"""Atomic report writes on top of :func:`paraspeechclap.fileio.atomic_path` (temp file, then ``os.replace``)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from ..fileio import atomic_path


def atomic_write(path: os.PathLike, write: Callable[[Any], None], binary: bool = False) -> Path:
    """Call ``write(handle)`` on a temp file beside ``path`` (folders created), then move it into place."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""})) as handle:
            write(handle)
    return Path(path)


def write_text(path: os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text))


def write_json(path: os.PathLike, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def write_yaml(path: os.PathLike, data: dict) -> Path:
    import yaml

    return write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def write_dataframe_csv(path: os.PathLike, frame, **kwargs) -> Path:
    return atomic_write(path, lambda handle: frame.to_csv(handle, **kwargs))


def save_figure(path: os.PathLike, figure) -> Path:
    return atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=110), binary=True)
