"""Fixtures for the evaluation tests (helpers live in eval_helpers.py)."""
from pathlib import Path

import pytest

from eval_helpers import ToneModel, make_tone_set


@pytest.fixture
def tone_model() -> ToneModel:
    return ToneModel()


@pytest.fixture
def tone_set(tmp_path: Path) -> dict:
    """Audio root with 6 tone clips and a JSONL manifest in the eval schema (see make_tone_set)."""
    return make_tone_set(tmp_path)
