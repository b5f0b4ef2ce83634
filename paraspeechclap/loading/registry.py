"""The released checkpoints as data: a registry of bundles (as torchaudio's pipeline bundles).

The table lives in ``releases.json`` beside this module; this module only reads and checks it. A bundle says
where a checkpoint is (hub repo, file-name candidates in order of preference, revision), how to check it
(SHA-256 per file and commit, where known) and what it needs around it (speech and text encoders, embedding
dimension, sample rate). No torch import here.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

REGISTRY_FILE = Path(__file__).with_name("releases.json")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Checksum:
    """The SHA-256 of ``filename`` as stored at commit ``revision``."""

    revision: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class Bundle:
    """One released checkpoint and what it needs."""

    name: str
    repo_id: str
    filenames: tuple[str, ...]
    speech_model: str
    text_model: str
    embedding_dim: int
    sample_rate: int = 16000
    revision: str | None = None  # None: the repo's main branch
    checksums: tuple[Checksum, ...] = field(default=())

    def expected_sha256(self, filename: str, commit: str | None, revision: str | None = None) -> str | None:
        """The known SHA-256 of ``filename`` when it comes from a commit the registry has a hash for, else None.

        ``commit`` is the commit the file was actually taken from (from the hub cache's snapshot folder);
        ``revision`` is what was asked for, used when it is itself a full commit id and ``commit`` is unknown.
        """
        commits = {c.lower() for c in (commit, revision) if c and _COMMIT.match(c.lower())}
        for checksum in self.checksums:
            if checksum.filename == filename and checksum.revision in commits:
                return checksum.sha256
        return None

    def describe(self, revision: str | None = None) -> str:
        """``repo`` + file names + revision, for messages."""
        revision = revision if revision is not None else self.revision
        return (f"hub repo {self.repo_id}, file {' or '.join(self.filenames)}, "
                f"revision {revision or 'main (default)'}")


class RegistryError(ValueError):
    """``releases.json`` is malformed."""


def _bundle(entry: Mapping[str, Any], where: str) -> Bundle:
    required = {"name": str, "repo_id": str, "filenames": list, "speech_model": str, "text_model": str,
                "embedding_dim": int, "sample_rate": int}
    for key, kind in required.items():
        if not isinstance(entry.get(key), kind):
            raise RegistryError(f"{where}: {key!r} must be a {kind.__name__}, got {entry.get(key)!r}")
    unknown = set(entry) - set(required) - {"revision", "checksums"}
    if unknown:
        raise RegistryError(f"{where}: unknown keys {sorted(unknown)}")
    if entry["repo_id"].count("/") != 1 or not entry["filenames"] or \
            not all(isinstance(f, str) and f for f in entry["filenames"]):
        raise RegistryError(f"{where}: needs an 'owner/name' repo_id and at least one file name")
    revision = entry.get("revision")
    if revision is not None and not isinstance(revision, str):
        raise RegistryError(f"{where}: revision must be a string or null")
    checksums = []
    for i, item in enumerate(entry.get("checksums") or []):
        ok = (isinstance(item, Mapping) and set(item) == {"revision", "filename", "sha256"}
              and isinstance(item["revision"], str) and _COMMIT.match(item["revision"])
              and isinstance(item["sha256"], str) and _SHA256.match(item["sha256"])
              and item["filename"] in entry["filenames"])
        if not ok:
            raise RegistryError(f"{where}: checksums[{i}] needs a 40-hex commit 'revision', a 'filename' among "
                                f"the bundle's file names and a 64-hex lower-case 'sha256'; got {item!r}")
        checksums.append(Checksum(item["revision"], item["filename"], item["sha256"]))
    return Bundle(name=entry["name"], repo_id=entry["repo_id"], filenames=tuple(entry["filenames"]),
                  speech_model=entry["speech_model"], text_model=entry["text_model"],
                  embedding_dim=int(entry["embedding_dim"]), sample_rate=int(entry["sample_rate"]),
                  revision=revision, checksums=tuple(checksums))


def read_registry(path: str | Path = REGISTRY_FILE) -> dict[str, Bundle]:
    """Parse and check a registry file: ``{"bundles": [ {...}, ... ]}`` -> name -> :class:`Bundle`."""
    path = Path(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, Mapping) or not isinstance(data.get("bundles"), list):
        raise RegistryError(f"{path}: expected an object with a 'bundles' list")
    bundles: dict[str, Bundle] = {}
    for i, entry in enumerate(data["bundles"]):
        if not isinstance(entry, Mapping):
            raise RegistryError(f"{path}: bundles[{i}] is not an object")
        bundle = _bundle(entry, f"{path}: bundles[{i}]")
        if bundle.name in bundles:
            raise RegistryError(f"{path}: bundle name {bundle.name!r} appears twice")
        bundles[bundle.name] = bundle
    return bundles


@lru_cache(maxsize=1)
def _default_registry() -> dict[str, Bundle]:
    return read_registry(REGISTRY_FILE)


def bundles() -> dict[str, Bundle]:
    """The released checkpoints by alias (``intrinsic``, ``situational``, ``combined``)."""
    return dict(_default_registry())


def get_bundle(name: str) -> Bundle | None:
    """The bundle called ``name``, or None."""
    return _default_registry().get(name)
