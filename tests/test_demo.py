"""`paraspeechclap demo` end to end with the embedded mini model (what `make demo` runs)."""
from __future__ import annotations

import json
import shutil

import pytest

from paraspeechclap.cli import main

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def test_demo_writes_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--device", "cpu", "--candidates-n", "3"]) == 0
    printed = capsys.readouterr().out
    assert "Zero-shot classification" in printed and "Best-of-3" in printed
    for name in ("index.html", "similarity.png", "confusion.png", "demo.json"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "demo.json").read_text())
    assert len(report["clips"]) == 6 and len(report["best_of_n"]["ranking"]) == 3
    for clip in report["clips"]:
        for attribute, probs in clip["predictions"].items():
            assert set(probs) == set(report["attributes"][attribute])
            assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    correct, checked = report["classification_correct"]
    assert checked == 10 and 0 <= correct <= checked
    assert len(list((out / "audio").glob("*.wav"))) == 9
    # demo.json records every file the demo wrote (so a rerun replaces only those), and nothing is left over
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert report["written_by"] == "paraspeechclap.demo"
    assert set(report["outputs"]) == written - {"demo.json"}
