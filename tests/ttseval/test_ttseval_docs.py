"""Every example of docs/tts-eval.md runs: its bash and Python blocks, in order, in one scratch folder (a block
preceded by ``<!-- doc-test: skip: REASON -->``, the mark of the project's doc-block runner, is skipped)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tts_helpers import needs_espeak

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "tts-eval.md"
BLOCK = re.compile(r"(?:<!--\s*doc-test:\s*skip\s*:\s*(?P<skip>.*?)\s*-->\n)?```(?P<lang>\w*)\n(?P<code>.*?)```", re.S)


def blocks(text: str) -> list[tuple[str, str, str | None]]:
    return [(m["lang"], m["code"], m["skip"]) for m in BLOCK.finditer(text)]


def test_the_doc_has_runnable_examples_and_says_why_others_are_skipped():
    found = [b for b in blocks(DOC.read_text(encoding="utf-8")) if b[0] in ("bash", "python")]
    assert len([b for b in found if b[2] is None]) >= 5
    assert all(reason.strip() for _, _, reason in found if reason is not None)


@needs_espeak
def test_every_example_runs(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "paraspeechclap"  # this checkout's package, whatever an installed console script points at
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m paraspeechclap \"$@\"\n")
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "PARASPEECHCLAP_CACHE": str(tmp_path / "cache")}
    work = tmp_path / "work"
    work.mkdir()
    for lang, code, skip in blocks(DOC.read_text(encoding="utf-8")):
        if skip is not None or lang not in ("bash", "python"):
            continue
        command = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{lang} block failed:\n{code}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert (work / "demo" / "report" / "index.html").is_file()
    assert (work / "demo" / "best" / "selection.json").is_file()
