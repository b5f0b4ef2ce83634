"""A tiny synthetic corpus (espeak-ng; four voices, a handful of clips), written once for the round-trip tests."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

VOICES = ["espeak+m4", "espeak+f3", "espeak+m3", "espeak+f4"]  # m3/f4 are held out (test split only)


@pytest.fixture(scope="session", autouse=True)
def _offline():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """``paraspeechclap synth`` output: 16 clips, half of them in the test split."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (run scripts/install_synth_deps.sh)")
    pytest.importorskip("parselmouth", reason="praat-parselmouth is not installed")
    from paraspeechclap.synth.generate import generate_corpus

    out = tmp_path_factory.mktemp("synth")
    generate_corpus(out, num_clips=16, seed=11, workers=2, splits=(0.4, 0.1, 0.5), use_mbrola=False,
                    progress=False, voice_names=VOICES)
    return out
