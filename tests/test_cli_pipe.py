"""A reader that goes away (``paraspeechclap ... | head``) ends a command quietly: no traceback, exit 141 (as a shell
reports a process ended by SIGPIPE), handled once in ``paraspeechclap.cli.main``."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def _run_into_closed_pipe(args: list[str]) -> subprocess.CompletedProcess:
    """Run the command with stdout a pipe whose reader has already gone: every write to it fails with EPIPE."""
    read, write = os.pipe()
    os.close(read)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    try:
        return subprocess.run([sys.executable, "-m", "paraspeechclap", *args], stdout=write, stderr=subprocess.PIPE,
                              env=env, timeout=300)
    finally:
        os.close(write)


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_a_command_into_a_closed_pipe_is_quiet(tmp_path, extra):
    t = np.arange(16000) / 16000
    sf.write(tmp_path / "a.wav", (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16000)
    done = _run_into_closed_pipe(["classify", str(tmp_path / "a.wav"), "--candidates", "deep", "high-pitched", *extra])
    assert done.returncode == 141, done.stderr.decode(errors="replace")
    assert b"Traceback" not in done.stderr and b"BrokenPipe" not in done.stderr

