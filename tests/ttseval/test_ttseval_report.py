"""The report folder: what it holds, audio linked or copied, replaced only when it is ours, and the HTML page."""
from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from paraspeechclap.evaluate.report import ReportFolderError
from paraspeechclap.ttseval import evaluate_systems

from tts_helpers import needs_espeak

pytestmark = needs_espeak


@pytest.fixture(scope="module")
def evaluation(bench, mini):
    return evaluate_systems(bench / "prompts.jsonl", {"good": bench / "good", "bad": bench / "bad"}, mini,
                            cache_dir=None, n_boot=100, n_permutations=100, robustness="good")


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.audio, self.images, self.details, self.links = [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "audio":
            self.audio.append(attrs["src"])
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag == "details" and "id" in attrs:
            self.details.append(attrs["id"])
        elif tag == "a":
            self.links.append(attrs["href"])


def _page(folder: Path) -> Page:
    page = Page()
    page.feed((folder / "index.html").read_text(encoding="utf-8"))
    return page


def test_linked_audio_resolves_from_the_report_folder(evaluation, bench, tmp_path):
    out = evaluation.write_report(tmp_path / "reports" / "r1")
    page = _page(out)
    assert len(page.audio) == 12 and page.details == [f"prompt-p{i}" for i in range(6)]
    for src in page.audio:
        assert not os.path.isabs(unquote(src)) and (out / unquote(src)).resolve().is_file()
    for src in page.images + [h for h in page.links if not h.startswith("#")]:
        assert (out / src).is_file(), src
    assert not (out / "audio").exists()
    html = (out / "index.html").read_text()
    assert evaluation.signature in html and "<script" not in html
    assert "A deep male voice speaks slowly." in html and "A high-pitched male voice speaks slowly." in html


def test_copied_audio_travels_with_the_report(evaluation, tmp_path, capsys):
    out = evaluation.write_report(tmp_path / "r2", audio="copy", plots=False)
    assert "copied 12 clips" in capsys.readouterr().err
    page = _page(out)
    assert all(src.startswith("audio/") and (out / src).is_file() for src in page.audio)
    assert (out / "audio" / "00-good" / "000000-p0.wav").is_file()
    assert not (out / "plots").exists()
    none = evaluation.write_report(tmp_path / "r3", audio="none")
    assert _page(none).audio == []


def test_an_earlier_report_is_replaced_a_foreign_folder_never(evaluation, tmp_path):
    out = evaluation.write_report(tmp_path / "r")
    manifest = json.loads((out / "report_manifest.json").read_text())
    assert "report.json" in manifest["files"] and "plots" in manifest["folders"]
    evaluation.write_report(out)  # ours and unchanged: replaced
    (out / "my-notes.txt").write_text("mine")
    with pytest.raises(ReportFolderError, match="my-notes.txt"):
        evaluation.write_report(out)
    assert (out / "my-notes.txt").read_text() == "mine"


def test_report_json_is_strict_json_with_the_signature_fields(evaluation, tmp_path):
    out = evaluation.write_report(tmp_path / "r")
    text = (out / "report.json").read_text()
    assert not re.search(r"\bNaN\b|\bInfinity\b", text)
    doc = json.loads(text)
    assert doc["signature"] == evaluation.signature and doc["signature_fields"]["cf"].startswith("v1@")
    assert set(doc["views"]) == {"all", "gated"} and doc["robustness"]["reference"] == "good"
    paper = json.loads((out / "systems.json").read_text())
    assert paper["views"]["all"]["good"]["contrastive"]["rank"] == 1


def test_copied_names_stay_inside_the_report(bench, mini, tmp_path):
    """Prompt ids and system names come from files: a copy is never written outside the report folder."""
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "../../escape", "caption": "A deep male voice speaks slowly."}) + "\n")
    result = evaluate_systems(prompts, {"../up": {"../../escape": str(bench / "good" / "p0.wav")}}, mini,
                              cache_dir=None, n_boot=10, n_permutations=10)
    out = result.write_report(tmp_path / "deep" / "r", audio="copy", plots=False)
    copied = [p for p in (tmp_path).rglob("*.wav")]
    assert len(copied) == 1 and out in copied[0].parents, copied
