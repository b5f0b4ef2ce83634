"""A small corpus of plain sine/noise WAVs (written here, no synthesizer) plus bad files, and one reference run."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from annotate_helpers import SHARD_SIZE, write_corpus


@pytest.fixture(scope="session", autouse=True)
def _offline():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "audio")


@pytest.fixture(scope="session")
def reference(corpus, tmp_path_factory):
    """One uninterrupted single-worker run: (folder, rows as a pyarrow Table)."""
    from paraspeechclap.annotate import annotate
    from paraspeechclap.annotate.engines import annotated_rows

    out = tmp_path_factory.mktemp("ref") / "ann"
    annotate(corpus, out, workers=1, shard_size=SHARD_SIZE, precision="fp32", device="cpu")
    return out, annotated_rows(out)
