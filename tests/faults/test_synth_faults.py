"""synth's renderer pool dies with synth: SIGKILL the parent mid-corpus and no worker goes on writing clips."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from process_helpers import cmdline, kill_when_ready, still_running  # noqa: E402

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
    family, names = kill_when_ready(parent, lambda: len(_clips(out)) >= 3, timeout=300)
    assert sum("spawn_main" in n for n in names.values()) == 2, names  # the two renderers
    # the kernel's signal: at once (a renderer mid-chunk would run on for seconds)
    assert still_running(family, within=1) == [], [cmdline(p) for p in still_running(family, 0)]
    at_death = _clips(out)
    time.sleep(2)  # a renderer still alive would add clips now
    assert _clips(out) == at_death and len(at_death) < 400
