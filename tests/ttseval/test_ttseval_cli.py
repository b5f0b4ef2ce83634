"""``paraspeechclap tts-eval`` end to end on espeak-ng clips: the report, bad items, exit codes."""
from __future__ import annotations

import csv
import json
import shutil

import pytest

from paraspeechclap.cli import main

from tts_helpers import needs_espeak

pytestmark = needs_espeak

FAST = ["--bootstrap", "200", "--permutations", "200", "--quiet"]


def _run(bench, out, *extra, systems=("good", "bad"), root=None):
    root = root or bench
    args = ["tts-eval", "--prompts", str(root / "prompts.jsonl"), "--out", str(out), *FAST, *extra]
    for name in systems:
        args += ["--system", f"{name}={root / name}"]
    return main(args)


def test_a_report_that_ranks_the_adherent_system_first(bench, tmp_path, capsys):
    out = tmp_path / "report"
    assert _run(bench, out, "--cache-dir", str(tmp_path / "cache")) == 0
    captured = capsys.readouterr()
    doc = json.loads((out / "report.json").read_text())
    for name in ("index.html", "systems.csv", "systems.json", "attributes.csv", "pairs.csv", "clips.csv",
                 "report_manifest.json", "plots/scores_all.png", "plots/attributes_gated.png",
                 "plots/wins_contrastive.png"):
        assert (out / name).is_file(), name
    view = doc["views"]["all"]
    for score in ("cosine", "contrastive", "attribute"):
        block = view["scores"][score]
        assert block["systems"]["good"]["mean"] > block["systems"]["bad"]["mean"], score
        assert block["ranking"]["good"]["rank"] == 1
    assert view["scores"]["contrastive"]["systems"]["good"]["mean"] > 0.6
    assert view["attributes"]["pitch"]["good"]["accuracy"]["mean"] > view["attributes"]["pitch"]["bad"]["accuracy"]["mean"]
    assert doc["signature"] in captured.out and f"contrastive|{doc['signature']}" in captured.out
    rows = list(csv.DictReader((out / "systems.csv").open()))
    assert {r["signature"] for r in rows} == {doc["signature"]} and len(rows) == 4  # 2 systems x 2 views
    clips = list(csv.DictReader((out / "clips.csv").open()))
    assert len(clips) == 12 and {c["status"] for c in clips} == {"ok"}
    assert doc["cache"]["embedded"] == 12 and doc["problems"] == []
    assert _run(bench, tmp_path / "again", "--cache-dir", str(tmp_path / "cache"), "--format", "csv") == 0
    printed = capsys.readouterr()
    again = list(csv.DictReader(printed.out.splitlines()))  # the systems.csv rows, on stdout
    assert [r.keys() for r in again] == [r.keys() for r in rows]
    for got, want in zip(again, rows):
        assert (got["view"], got["system"], got["signature"]) == (want["view"], want["system"], want["signature"])
        assert float(got["contrastive"]) == pytest.approx(float(want["contrastive"]), abs=1e-6)
    assert json.loads(printed.err.split("# provenance: ", 1)[1].splitlines()[0]) == doc["provenance"]


def test_bad_items_are_reported_per_item_and_exit_1(bench, tmp_path, capsys):
    root = tmp_path / "in"
    shutil.copytree(bench, root)
    (root / "good" / "p1.wav").unlink()
    (root / "bad" / "p2.wav").write_bytes(b"RIFF not really a wav")
    shutil.copy(root / "good" / "p0.wav", root / "good" / "extra.wav")
    with open(root / "prompts.jsonl", "a") as handle:
        handle.write(json.dumps({"id": "p6", "caption": "Somebody reads the news aloud."}) + "\n{broken\n")
    shutil.copy(root / "good" / "p0.wav", root / "good" / "p6.wav")
    shutil.copy(root / "bad" / "p0.wav", root / "bad" / "p6.wav")
    out = tmp_path / "report"
    assert _run(bench, out, "--no-cache", root=root) == 1
    err = capsys.readouterr().err
    doc = json.loads((out / "report.json").read_text())
    kinds = {(p["kind"], p["system"], p["prompt"]) for p in doc["problems"]}
    assert ("missing_clip", "good", "p1") in kinds and ("unreadable_audio", "bad", "p2") in kinds
    assert ("no_attribute", None, "p6") in kinds and ("unknown_prompt", "good", "extra") in kinds
    assert any(k == "bad_row" for k, *_ in kinds)
    for needle in ("missing_clip", "unreadable_audio", "no_attribute", "unknown_prompt", "prompts.jsonl:8"):
        assert needle in err, needle
    clip = {(c["system"], c["prompt"]): c for c in doc["clips"]}
    assert clip[("good", "p6")]["cosine"] is not None and clip[("good", "p6")]["contrastive"] is None
    assert clip[("good", "p1")]["status"] == "missing" and clip[("bad", "p2")]["status"] == "unreadable"
    assert set(doc["views"]["all"]["excluded_prompts"]) == {"p1", "p2"}
    assert doc["views"]["all"]["n_prompts"] == 5


def test_bad_arguments_exit_2(bench, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["tts-eval", "--prompts", str(tmp_path / "none.jsonl"), "--system", f"a={bench / 'good'}",
                 "--out", str(out), *FAST]) == 2
    assert main(["tts-eval", "--prompts", str(bench / "prompts.jsonl"), "--system", f"a={bench / 'good'}",
                 "--system", f"a={bench / 'bad'}", "--out", str(out), *FAST]) == 2
    assert _run(bench, out, "--robustness", "other") == 2
    assert _run(bench, out, "--bootstrap", "0") == 2
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert _run(bench, foreign) == 2 and (foreign / "notes.txt").read_text() == "keep me"
    err = capsys.readouterr().err
    assert "prompts file not found" in err and "must differ" in err and "not one of the systems" in err
    assert not out.exists()


def test_robustness_and_human_agreement_from_the_command_line(bench, tmp_path):
    human = tmp_path / "human.jsonl"
    human.write_text("".join(json.dumps({"prompt": f"p{i}", "system_a": "good", "system_b": "bad",
                                         "preferred": "good" if i != 3 else "bad"}) + "\n" for i in range(6)))
    out = tmp_path / "report"
    assert _run(bench, out, "--robustness", "good", "--human", str(human), "--cache-dir", str(tmp_path / "c")) == 0
    doc = json.loads((out / "report.json").read_text())
    rob = doc["robustness"]
    assert rob["reference"] == "good" and rob["clips"] == 6 and len(rob["perturbations"]) == 7
    assert rob["perturbations"]["clipping_x4"]["flagged_share"] == 1.0
    assert 0 <= rob["overall"]["contrastive"]["raised_share"] <= 1
    assert (out / "plots" / "robustness.png").is_file()
    pairwise = doc["agreement"]["scores"]["contrastive"]["pairwise"]
    assert pairwise["n"] == 6 and 0 <= pairwise["pairwise_accuracy"]["mean"] <= 1
