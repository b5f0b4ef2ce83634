"""synth's renderer pool dies with synth: SIGKILL the parent mid-corpus and no worker goes on writing clips."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from process_helpers import cmdline, descendants, running  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _clips(out: Path) -> set[str]:
    return {p.name for p in (out / "audio").rglob("*.wav")} if (out / "audio").is_dir() else set()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the workers")
def test_sigkilled_synth_takes_its_renderers_with_it(tmp_path):
    pytest.importorskip("pyworld", reason="synth's dependencies (make system-deps)")
    out = tmp_path / "corpus"
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    args = ["synth", "--out", str(out), "--num-clips", "400", "--workers", "2", "--no-augment", "--no-mbrola",
            "--voices", "espeak+m4,espeak+f3,espeak+m3,espeak+f4", "--quiet"]
    parent = subprocess.Popen([sys.executable, "-m", "paraspeechclap", *args], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while len(_clips(out)) < 3 and parent.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert parent.poll() is None, parent.stderr.read()
        family = descendants(parent.pid)
        names = [cmdline(p) for p in family]
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    assert sum("spawn_main" in n for n in names) == 2, names  # the two renderers
    deadline = time.monotonic() + 1  # the kernel's signal: at once (a renderer mid-chunk would run on for seconds)
    while any(running(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in family if running(p)] == [], [cmdline(p) for p in family if running(p)]
    at_death = _clips(out)
    time.sleep(2)  # a renderer still alive would add clips now
    assert _clips(out) == at_death and len(at_death) < 400
