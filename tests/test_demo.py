"""`paraspeechclap demo` end to end with the embedded mini model (what `make demo` runs)."""
from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from urllib.parse import unquote

import pytest

from paraspeechclap.cli import main

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


class _Players(HTMLParser):
    """The src of every <audio> element of a page, and whether it has controls."""

    def __init__(self):
        super().__init__()
        self.players: list[tuple[str, bool]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "audio":
            attrs = dict(attrs)
            self.players.append((attrs.get("src"), "controls" in attrs))


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
    # index.html plays the demo's own clips: every <audio controls> points, relative to the page, at a file the
    # demo wrote into its folder (listed in demo.json's outputs): never an absolute path or one outside the folder
    parser = _Players()
    parser.feed((out / "index.html").read_text(encoding="utf-8"))
    assert parser.players and all(controls for _, controls in parser.players)
    sources = [unquote(src) for src, _ in parser.players]
    for src in sources:
        assert not src.startswith("/") and ":" not in src and ".." not in src.split("/"), src
        assert src in report["outputs"] and (out / src).is_file(), src
    clips = [f"audio/{clip['name']}.wav" for clip in report["clips"]]
    candidates = [f"audio/{row[1]}.wav" for row in report["best_of_n"]["ranking"]]
    assert sources[:6] == clips and sources[-3:] == candidates  # classification rows, ..., best-of-N rows
    assert set(sources) == {p for p in report["outputs"] if p.endswith(".wav")}
