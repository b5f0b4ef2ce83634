"""The rerank command end to end: outputs, counts, exit codes, stale outputs, gates and weights."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from paraspeechclap.rerank import cli


def _run(argv, model, monkeypatch) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args([str(a) for a in argv])
    if model is not None:
        monkeypatch.setattr(cli, "load_model", lambda _args: model)
    return cli.run(args)


def _selection(out):
    return json.loads((out / "selection.json").read_text())


def test_layout_run_writes_choices_and_summaries(layout, stub_model, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    code = _run([layout, "--output", out, "--no-progress"], stub_model, monkeypatch)
    assert code == 0
    doc = _selection(out)
    assert doc["counts"]["prompts"] == 3 and doc["counts"]["chosen"] == 3
    assert doc["counts"]["blank_lines"] == 1 and doc["counts"]["missing_files"] == 1
    recs = {r["index"]: r for r in doc["prompts"]}
    assert recs[0]["chosen"]["iteration"] == 2 and recs[0]["margin"] == pytest.approx(0.1, abs=1e-6)
    assert recs[2]["chosen"]["iteration"] == 1 and "tie" in recs[2]["flags"]  # 0.3 vs 0.3
    assert [c["iteration"] for c in recs[2]["candidates"]] == [1, 3]
    assert recs[3]["chosen"]["iteration"] == 1 and recs[3]["margin"] == 0.0
    assert [c["rank"] for c in recs[0]["candidates"]] == [3, 1, 2]
    # captions were embedded once per distinct text
    assert stub_model.text_calls == [[recs[i]["caption"] for i in (0, 2, 3)]]

    files = sorted(p.name for p in (out / "audios").iterdir())
    assert files == ["0.wav", "2.wav", "3.wav"]
    assert (out / "audios" / "0.wav").read_bytes() == (layout / "iter_2" / "audios" / "0.wav").read_bytes()
    assert not (out / "audios" / "0.wav").is_symlink()
    # per-prompt files stay aligned with prompt lines (blank line 1 keeps its place)
    assert (out / "wer_per_example.txt").read_text().splitlines() == ["0.0", "", "0.5", "ERROR: not found"]
    assert (out / "output_transcriptions.txt").read_text().splitlines() == ["text 2.0", "", "text 1.2", "text 1.3"]
    assert (out / "input_texts.txt").read_text() == "hello\n\nworld\nbye\n"
    ref = json.loads((out / "selection_summary.json").read_text())
    assert ref[0] == {
        "prompt_idx": 0,
        "text_prompt": "A deep male voice.",
        "best_iteration_idx": 2,
        "best_score": pytest.approx(0.5),
        "all_scores": {"1": pytest.approx(0.1), "2": pytest.approx(0.5), "3": pytest.approx(0.4)},
    }
    rows = list(csv.DictReader((out / "selection.csv").open()))
    assert len(rows) == 8  # 3 + 2 + 3 candidates
    chosen = [(r["prompt_index"], r["iteration"]) for r in rows if r["chosen"] == "1"]
    assert chosen == [("0", "2"), ("2", "1"), ("3", "1")]
    assert {"wer", "wer_text", "transcription", "score", "rank", "margin", "flags"} <= set(rows[0])

    printed = capsys.readouterr()
    assert "A high-pitched voice talking fast." in printed.out and "iter_2" in printed.out
    assert "3/3 prompts chosen, 0 failed" in printed.err
    assert "blank prompt line, prompt 1 skipped" in printed.err


def test_existing_output_is_refused_then_stale_files_cleared(layout, stub_model, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert _run([layout, "-o", out, "--no-progress"], stub_model, monkeypatch) == 0
    before = (out / "selection.json").read_text()
    assert _run([layout, "-o", out, "--no-progress"], stub_model, monkeypatch) == 2
    assert (out / "selection.json").read_text() == before  # refused: nothing touched

    # fewer prompts and no WER files now: the old 3.wav and WER lines must not survive
    (layout / "iter_1" / "input_descriptions.txt").write_text("A deep male voice.\n")
    for k in (1, 2):
        (layout / f"iter_{k}" / "wer_per_example.txt").unlink()
    (out / "audios" / "stray.wav").write_bytes(b"x")  # not ours: must survive --overwrite
    assert _run([layout, "-o", out, "--overwrite", "--link", "--no-progress"], stub_model, monkeypatch) == 0
    assert sorted(p.name for p in (out / "audios").iterdir()) == ["0.wav", "stray.wav"]
    assert (out / "audios" / "stray.wav").read_bytes() == b"x"
    assert (out / "audios" / "0.wav").is_symlink()
    assert os.path.realpath(out / "audios" / "0.wav") == str((layout / "iter_2" / "audios" / "0.wav").resolve())
    assert not (out / "wer_per_example.txt").exists()
    assert (out / "output_transcriptions.txt").read_text() == "text 2.0\n"
    assert not [p for p in out.rglob(".*.tmp")]


def test_gate_and_weight_from_the_command_line(layout, stub_model, tmp_path, monkeypatch):
    out = tmp_path / "gate"
    assert _run([layout, "-o", out, "--gate", "wer<=0.2", "--no-progress"], stub_model, monkeypatch) == 0
    recs = {r["index"]: r for r in _selection(out)["prompts"]}
    # prompt 0: iter_3 has no WER file -> fails the gate; iter_2 (0.5, wer 0.0) wins
    assert recs[0]["chosen"]["iteration"] == 2 and recs[0]["margin"] == pytest.approx(0.4, abs=1e-6)
    assert recs[0]["candidates"][2]["reasons"] == ["gate:wer<=0.2"]
    # prompt 2: iter_1 wer 0.5, iter_3 none -> all fail -> fallback on the plain score
    assert "fallback" in recs[2]["flags"]
    assert _selection(out)["gates"] == ["wer<=0.2"] and _selection(out)["counts"]["fallback"] == 2

    out = tmp_path / "weight"
    assert _run([layout, "-o", out, "--weight", "wer=-1", "--no-progress"], stub_model, monkeypatch) == 0
    recs = {r["index"]: r for r in _selection(out)["prompts"]}
    assert recs[0]["candidates"][1]["combined"] == pytest.approx(0.5)
    assert recs[0]["chosen"]["iteration"] == 2


def test_failed_prompt_gives_nonzero_exit_and_bad_arguments_give_2(tmp_path, stub_model, monkeypatch, write_wav, capsys):
    base = tmp_path / "tts"
    write_wav(base / "iter_1" / "audios" / "0.wav", 0.5)
    (base / "iter_2" / "audios").mkdir(parents=True)
    (base / "iter_2" / "audios" / "1.wav").write_bytes(b"not audio")
    (base / "iter_1" / "input_descriptions.txt").write_text("one\ntwo\n")
    out = tmp_path / "out"
    assert _run([base, "-o", out, "--no-progress", "--json"], stub_model, monkeypatch) == 1
    printed = capsys.readouterr()
    doc = json.loads(printed.out)
    assert doc == _selection(out)
    assert [r["status"] for r in doc["prompts"]] == ["chosen", "failed"]
    assert "could not be scored" in printed.err and "error: prompt 1" in printed.err
    assert doc["counts"]["audio_errors"] == 1 and doc["counts"]["failed"] == 1
    assert "error" in doc["prompts"][1]["candidates"][0]
    assert _run([base, "-o", out, "--overwrite", "--no-progress", "--format", "csv"], stub_model, monkeypatch) == 1
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    chosen = [(r["prompt_id"], r["status"], r["chosen"]) for r in rows]
    assert chosen == [("0", "chosen", "iter_1/audios/0.wav"), ("1", "failed", "")]

    assert _run([base, "-o", tmp_path / "o2", "--gate", "wer~1"], stub_model, monkeypatch) == 2
    assert _run([tmp_path / "nope", "-o", tmp_path / "o3"], stub_model, monkeypatch) == 2
    assert _run([base, "-o", base / "iter_1"], stub_model, monkeypatch) == 2
    assert "holds input(s) of this run" in capsys.readouterr().err
    assert _run([base, "-o", base], stub_model, monkeypatch) == 2  # the layout itself
    assert _run([base, "-o", tmp_path], stub_model, monkeypatch) == 2  # a folder above it


def test_manifest_run_names_outputs_by_id(tmp_path, stub_model, monkeypatch, write_wav):
    write_wav(tmp_path / "a.wav", 0.2)
    write_wav(tmp_path / "b.wav", 0.6)
    manifest = tmp_path / "m.jsonl"
    rows = [
        {"id": "x", "caption": "A calm voice.", "candidates": ["a.wav", "b.wav"], "wer": [0.0, 0.9]},
        {"id": "y", "caption": "A calm voice.", "candidates": ["b.wav", "a.wav"]},
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert _run([manifest, "-o", out, "--weight", "wer=-1", "--no-progress"], stub_model, monkeypatch) == 0
    doc = _selection(out)
    assert [r["chosen"]["candidate"] for r in doc["prompts"]] == [0, 0]  # y: no wer -> fallback
    assert "fallback" in doc["prompts"][1]["flags"]
    assert sorted(p.name for p in (out / "audios").iterdir()) == ["x.wav", "y.wav"]
    assert stub_model.text_calls == [["A calm voice."]]
    assert sorted(Path(p).name for p in stub_model.audio_items) == ["a.wav", "b.wav"]  # each file once
    assert not (out / "selection_summary.json").exists()


def test_layout_end_to_end_with_the_tiny_model(layout, fixture_dir, tiny_model, tmp_path, capsys):
    out = tmp_path / "tiny"
    argv = [layout, "-o", out, "--model", fixture_dir / "checkpoint.pth.tar", "--speech-model",
            fixture_dir / "speech", "--text-model", fixture_dir / "text", "--embedding-dim", "24",
            "--device", "cpu", "--precision", "fp32", "--no-progress"]
    assert _run(argv, None, None) == 0
    doc = _selection(out)
    for rec in doc["prompts"]:
        paths = [c["path"] for c in rec["candidates"]]
        expected = tiny_model.similarity(paths, [rec["caption"]])[:, 0]
        got = np.array([c["score"] for c in rec["candidates"]])
        assert np.max(np.abs(got - expected)) < 1e-5
        best = int(np.argmax(expected))  # first maximum = lowest iteration, as the rule says
        assert rec["chosen"]["iteration"] == rec["candidates"][best]["iteration"]
        assert (out / "audios" / f"{rec['index']}.wav").read_bytes() == open(paths[best], "rb").read()
    assert [r["index"] for r in doc["prompts"]] == [0, 2, 3]
    assert "3/3 prompts chosen" in capsys.readouterr().err
    provenance = doc["meta"]["provenance"] if "meta" in doc else doc["provenance"]
    assert provenance["precision"] == "fp32" and provenance["identity"] == tiny_model.identity()


def test_plain_folder_with_a_caption_reports_file_names_and_reruns(tmp_path, stub_model, monkeypatch, write_wav, capsys):
    base = tmp_path / "takes"
    for name, level in [("take-1.wav", 0.2), ("take-2.wav", 0.7), ("take-3.wav", 0.4)]:
        write_wav(base / name, level)
    out = tmp_path / "best"
    assert _run([base, "--caption", "A calm voice.", "-o", out, "--no-progress"], stub_model, monkeypatch) == 0
    printed = capsys.readouterr()
    assert "take-2.wav" in printed.out  # the table names the chosen file
    doc = _selection(out)
    [rec] = doc["prompts"]
    assert rec["id"] == "takes" and rec["caption"] == "A calm voice." and doc["kind"] == "folder"
    assert rec["chosen"]["name"] == "take-2.wav" and rec["chosen"]["candidate"] == 1
    assert [(c["name"], c["rank"]) for c in rec["candidates"]] == [("take-1.wav", 3), ("take-2.wav", 1), ("take-3.wav", 2)]
    assert (out / "audios" / "takes.wav").read_bytes() == (base / "take-2.wav").read_bytes()
    rows = list(csv.DictReader((out / "selection.csv").open()))
    assert [r["name"] for r in rows if r["chosen"] == "1"] == ["take-2.wav"]
    # the run's record: a second run is refused without --overwrite, and replaces only its own files with it
    (out / "notes.txt").write_text("mine")
    assert _run([base, "--caption", "A calm voice.", "-o", out, "--no-progress"], stub_model, monkeypatch) == 2
    assert "--overwrite" in capsys.readouterr().err
    write_wav(base / "take-2.wav", 0.1)
    assert _run([base, "--caption", "A calm voice.", "-o", out, "--no-progress", "--overwrite"], stub_model,
                monkeypatch) == 0
    assert _selection(out)["prompts"][0]["chosen"]["name"] == "take-3.wav"
    assert (out / "audios" / "takes.wav").read_bytes() == (base / "take-3.wav").read_bytes()
    assert (out / "notes.txt").read_text() == "mine"
    # a folder without --caption, and --caption on a layout: usage errors naming the fix
    assert _run([base, "-o", tmp_path / "o2", "--no-progress"], stub_model, monkeypatch) == 2
    assert "--caption" in capsys.readouterr().err


def test_manifest_and_layout_results_name_their_files(layout, tmp_path, stub_model, monkeypatch, write_wav, capsys):
    write_wav(tmp_path / "m" / "a.wav", 0.2)
    write_wav(tmp_path / "m" / "b.wav", 0.6)
    manifest = tmp_path / "m" / "rows.jsonl"
    manifest.write_text(json.dumps({"id": "p", "caption": "A calm voice.", "candidates": ["a.wav", "b.wav"]}) + "\n")
    assert _run([manifest, "-o", tmp_path / "o1", "--no-progress"], stub_model, monkeypatch) == 0
    rec = _selection(tmp_path / "o1")["prompts"][0]
    assert rec["chosen"]["name"] == "b.wav" and [c["name"] for c in rec["candidates"]] == ["a.wav", "b.wav"]
    assert "b.wav" in capsys.readouterr().out
    assert _run([layout, "-o", tmp_path / "o2", "--no-progress"], stub_model, monkeypatch) == 0
    recs = {r["index"]: r for r in _selection(tmp_path / "o2")["prompts"]}
    assert recs[0]["chosen"]["name"] == "iter_2/audios/0.wav"
    assert "iter_2/audios/0.wav" in capsys.readouterr().out
