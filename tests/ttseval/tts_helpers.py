"""Helpers of the benchmark tests (a module of its own: test modules do not import conftest)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed "
                                  "(scripts/install_synth_deps.sh; make test installs it)")

#: (caption, transcript, espeak voice, pitch, words per minute) of the good rendering; the bad one takes the voice of
#: the other gender, the opposite pitch and the opposite rate
PROMPTS = [
    ("A deep male voice speaks slowly.", "The old farmer painted the red door.", "en-us+m3", 5, 95),
    ("A high-pitched woman speaks quickly.", "My neighbour fixed the broken window.", "en-us+f4", 95, 270),
    ("A man with a low voice talks slowly.", "The tall doctor carried a heavy box.", "en-us+m7", 5, 95),
    ("A high-pitched female speaker talks fast.", "Her grandmother found a letter from home.", "en-us+f2", 95, 270),
    ("A deep-voiced man speaks rapidly.", "The little girl watched the clock tower.", "en-us+m3", 5, 270),
    ("A woman with a high voice speaks slowly.", "A young teacher opened the garden gate.", "en-us+f4", 95, 95),
]
OPPOSITE = {"en-us+m3": "en-us+f4", "en-us+m7": "en-us+f2", "en-us+f4": "en-us+m3", "en-us+f2": "en-us+m7"}


def espeak_wav(path: Path, voice: str, text: str, pitch: int, speed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(path), text],
                   check=True, capture_output=True)
    return path
