"""Shared fixtures: the reference-tiny parity fixture (tests/fixtures/reference-tiny) and its model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reference_fixture import FIXTURE, load_tiny


@pytest.fixture
def one_thread():
    """torch on one thread for the test, then back (the kernels and benchmark-harness tests use it)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    if not (FIXTURE / "checkpoint.pth.tar").is_file():
        pytest.fail(f"parity fixture missing at {FIXTURE} (it is part of the repository: tests/fixtures/reference-tiny)")
    return FIXTURE


@pytest.fixture(scope="session")
def golden(fixture_dir) -> dict:
    arrays = dict(np.load(fixture_dir / "golden.npz"))
    arrays["json"] = json.loads((fixture_dir / "golden.json").read_text())
    return arrays


@pytest.fixture(scope="session")
def golden_waveforms(golden) -> list[np.ndarray]:
    lengths = golden["lengths"].astype(int)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    raw = golden["raw_waveforms_concat"].astype(np.float32)
    return [raw[offsets[i]:offsets[i + 1]] for i in range(len(lengths))]


@pytest.fixture(scope="session")
def tiny_model(fixture_dir):
    """The reference-tiny model in fp32 eval mode (do not train it in place: use tiny_model_factory)."""
    return load_tiny(fixture_dir)


@pytest.fixture
def tiny_model_factory(fixture_dir):
    """A fresh copy of the reference-tiny model per call."""
    return lambda **kw: load_tiny(fixture_dir, **kw)
