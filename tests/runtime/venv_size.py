"""Installed sizes: a venv folder on disk, and the distributions ``pip install <requirement>`` pulls into this
environment (its requirements followed through the installed metadata), for the torch-free venv test and the
install-size benchmark."""
from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def installed_closure_mb(root: str) -> tuple[float, list[str]]:
    """Size of ``root``'s distribution and its non-optional requirements, recursively, as installed here."""
    seen: dict[str, float] = {}
    todo = [root]
    while todo:
        name = _name(todo.pop())
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        files = [dist.locate_file(f) for f in dist.files or []]
        seen[name] = sum(Path(f).stat().st_size for f in files if Path(f).is_file()) / 2**20
        todo += [r for r in dist.requires or [] if "extra ==" not in r]
    return sum(seen.values()), sorted(seen)
