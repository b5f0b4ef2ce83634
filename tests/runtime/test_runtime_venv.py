"""The runtime distribution in a fresh venv without torch: install it (runtime-dist/, from PyPI or pip's cache), run
an export of mini written in this environment, compare with the torch model here, and report the install sizes."""
from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from export_fixtures import exported, load_source
from venv_size import folder_mb, installed_closure_mb

REPO = Path(__file__).resolve().parents[2]
SCRIPT = """
import json, sys
import numpy as np
from paraspeechclap import runtime
model = runtime.load(sys.argv[1])
audio = model.embed_audio(sys.argv[3:])
probs = model.classify_embeddings(audio, ["calm", "angry", "whispered"])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
np.save(sys.argv[2], np.concatenate([audio, model.embed_text(["A person is speaking in a calm style."])]))
print(json.dumps({"heavy": heavy, "probs": probs, "file": runtime.__file__}))
"""


@pytest.mark.slow
def test_runtime_installs_and_runs_without_torch(tmp_path, tmp_path_factory, golden_waveforms):
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env)
    python = env / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              str(REPO / "runtime-dist")], capture_output=True, text=True, timeout=600)
    if install.returncode != 0 and "No matching distribution" in install.stderr + install.stdout:
        pytest.skip(f"PyPI is not reachable and pip's cache lacks a package: {install.stderr[-300:]}")
    assert install.returncode == 0, install.stderr[-2000:]
    probe = subprocess.run([str(python), "-c", "import torch"], capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr

    folder = exported(tmp_path_factory, "mini", "onnx")
    clips = []
    for i, wave in enumerate(golden_waveforms[:3]):
        clips.append(tmp_path / f"clip{i}.wav")
        sf.write(clips[-1], wave, 16000)
    out = tmp_path / "embeddings.npy"
    done = subprocess.run([str(python), "-c", SCRIPT, str(folder), str(out), *map(str, clips)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2"})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [] and report["file"].startswith(str(env))  # the venv's copy, not this tree's
    source = load_source("mini")
    expected = np.concatenate([source.embed_audio([str(c) for c in clips]),
                               source.embed_text(["A person is speaking in a calm style."])])
    assert np.abs(np.load(out) - expected).max() <= 1e-4
    assert len(report["probs"]) == 3 and all(abs(sum(p.values()) - 1) < 1e-5 for p in report["probs"])

    runtime_mb = folder_mb(env)
    torch_mb, names = installed_closure_mb("paraspeechclap")
    print(f"\ninstall size: torch-free runtime venv {runtime_mb:.0f} MB; paraspeechclap's core requirements as "
          f"installed here ({len(names)} distributions, torch {'in' if 'torch' in names else 'not in'} them) "
          f"{torch_mb:.0f} MB; ratio {runtime_mb / torch_mb:.2f}")
    assert runtime_mb < torch_mb / 3
