"""Fixtures of the kernels tests: one thread each, and the stock fp32 references the fast paths are held to."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from small_tower import PROMPTS, clips, small_model

from paraspeechclap.kernels.switch import use_stock_paths


@pytest.fixture(autouse=True)
def _one_thread_each(one_thread):
    """Every kernels test under tests/conftest.py's one_thread."""


@pytest.fixture(scope="session")
def reference():
    """fp32, WavLM's stock attention and conv layers, one clip at a time, no mask (the authors' CLI), and its text scores."""
    model = small_model("fp32")
    assert use_stock_paths(model) >= 4 + 7  # attention layers, conv layers (and linear layers)
    waves = clips()
    with torch.no_grad():
        audio = np.concatenate([model.encode_audio(model.prepare_audio([w])[0], None).numpy() for w in waves])
    return waves, audio, audio @ model.embed_text(PROMPTS).T


@pytest.fixture(scope="session")
def tiny_reference():
    """The reference-tiny fixture in fp32, stock WavLM modules, one clip at a time (cheap even where bf16 is emulated)."""
    from reference_fixture import load_tiny

    model = load_tiny(precision="fp32")
    assert use_stock_paths(model) >= 2 + 3
    waves = clips()
    with torch.no_grad():
        return waves, np.concatenate([model.encode_audio(model.prepare_audio([w])[0], None).numpy() for w in waves])
