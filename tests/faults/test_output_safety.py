"""No command deletes or overwrites a file it did not write (issue 12, "Trust").

The reproduction that started this: a manifest beside its candidates ``audios/c0.wav`` .. ``c2.wav`` and
``paraspeechclap rerank m.jsonl --output . --overwrite`` run in that folder deleted all three candidates. These tests
run the real commands (the tiny parity model where a model is needed) and compare checksums of every file before
and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from paraspeechclap.cli import main


def _wav(path: Path, freq: float, seconds: float = 0.6, sr: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)
    return path


def _tree(folder: Path) -> dict[str, str]:
    """{relative path: sha256 of the bytes, or 'link:' + target} for everything under ``folder``."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def model_args(fixture_dir) -> list[str]:
    return ["--model", str(fixture_dir / "checkpoint.pth.tar"), "--speech-model", str(fixture_dir / "speech"),
            "--text-model", str(fixture_dir / "text"), "--embedding-dim", "24", "--device", "cpu",
            "--precision", "fp32", "--no-progress"]


def _rerank(*argv, model_args) -> int:
    return main(["rerank", *[str(a) for a in argv], *model_args])


@pytest.fixture
def beside(tmp_path) -> Path:
    """The reported folder: m.jsonl and its candidates audios/c0.wav .. c2.wav."""
    folder = tmp_path / "work"
    for i in range(3):
        _wav(folder / "audios" / f"c{i}.wav", 150.0 + 90 * i)
    row = {"id": "p1", "caption": "A deep voice speaking slowly.",
           "candidates": ["audios/c0.wav", "audios/c1.wav", "audios/c2.wav"]}
    (folder / "m.jsonl").write_text(json.dumps(row) + "\n")
    return folder


# ------------------------------------------------------------------------------------------------ rerank


@pytest.mark.parametrize("extra", [["--overwrite"], [], ["--overwrite", "--link"], ["--link"]])
def test_the_reported_reproduction_is_refused_and_touches_nothing(beside, model_args, monkeypatch, capsys, extra):
    before = _tree(beside)
    monkeypatch.chdir(beside)
    assert _rerank("m.jsonl", "--output", ".", *extra, model_args=model_args) == 2
    assert _tree(beside) == before  # every input byte-identical, nothing added or removed
    err = capsys.readouterr().err
    assert "holds input(s) of this run" in err
    assert "pass --overwrite" not in err  # the refusal no longer invites the destructive flag


def test_output_folder_reaching_an_input_through_links_is_refused(beside, tmp_path, model_args, capsys):
    before = _tree(beside)
    link = tmp_path / "best"
    link.symlink_to(beside, target_is_directory=True)  # the output folder is the input folder, by a link
    assert _rerank(beside / "m.jsonl", "-o", link, "--overwrite", model_args=model_args) == 2
    assert _tree(beside) == before

    # a candidate given as a link whose target lies in the output folder
    other = tmp_path / "other"
    other.mkdir()
    (other / "c.wav").symlink_to(beside / "audios" / "c1.wav")
    (other / "m.jsonl").write_text(json.dumps({"id": "q", "caption": "A voice.", "candidates": ["c.wav"]}) + "\n")
    assert _rerank(other / "m.jsonl", "-o", beside / "audios", "--overwrite", model_args=model_args) == 2
    assert _tree(beside) == before
    assert "holds input(s)" in capsys.readouterr().err


def test_link_outputs_point_at_candidates_that_stay(beside, tmp_path, model_args):
    before = _tree(beside)
    out = tmp_path / "best"
    assert _rerank(beside / "m.jsonl", "-o", out, "--link", model_args=model_args) == 0
    chosen = out / "audios" / "p1.wav"
    assert chosen.is_symlink() and chosen.exists()
    assert Path(os.path.realpath(chosen)).parent == (beside / "audios").resolve()
    # re-running into the input folder with --overwrite --link is refused: the links keep their targets
    assert _rerank(beside / "m.jsonl", "-o", beside, "--overwrite", "--link", model_args=model_args) == 2
    assert chosen.exists() and _tree(beside) == before
    # --overwrite of our own linked outputs replaces only the link, never its target
    assert _rerank(beside / "m.jsonl", "-o", out, "--overwrite", "--link", model_args=model_args) == 0
    assert chosen.is_symlink() and chosen.exists() and _tree(beside) == before


def _manifest(folder: Path, ids: list[str], audio: Path) -> Path:
    rows = [{"id": i, "caption": f"A voice number {n}.", "candidates": [str(audio / "c0.wav"), str(audio / "c1.wav")]}
            for n, i in enumerate(ids)]
    path = folder / f"m{len(ids)}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_overwrite_removes_only_its_own_previous_outputs(beside, tmp_path, model_args, capsys):
    audio = beside / "audios"
    out = tmp_path / "best"
    assert _rerank(_manifest(tmp_path, ["a", "b", "c"], audio), "-o", out, model_args=model_args) == 0
    record = json.loads((out / "selection.json").read_text())["outputs"]
    assert set(record) == {"audios/a.wav", "audios/b.wav", "audios/c.wav", "selection.csv"}

    (out / "audios" / "mine.wav").write_bytes(b"my own take")  # foreign files beside ours
    (out / "notes.txt").write_text("keep me")
    (out / "audios" / "b.wav").write_bytes(b"edited by hand")  # ours once, changed since: no longer ours
    foreign = {k: v for k, v in _tree(out).items() if k in ("audios/mine.wav", "notes.txt", "audios/b.wav")}

    # without --overwrite: refused, with the hint (the files it would replace are its own)
    assert _rerank(_manifest(tmp_path, ["a"], audio), "-o", out, model_args=model_args) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert _rerank(_manifest(tmp_path, ["a"], audio), "-o", out, "--overwrite", model_args=model_args) == 0
    after = _tree(out)
    assert "audios/c.wav" not in after  # ours and stale: removed
    assert "audios/a.wav" in after
    assert {k: after.get(k) for k in foreign} == foreign  # foreign and edited files untouched
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no staging left behind

    # a foreign file at a name the run wants is never replaced, even with --overwrite
    assert _rerank(_manifest(tmp_path, ["a", "b"], audio), "-o", out, "--overwrite", model_args=model_args) == 2
    assert "not written by an earlier rerank" in capsys.readouterr().err
    assert _tree(out) == after


def test_a_foreign_selection_json_is_never_replaced(beside, tmp_path, model_args):
    out = tmp_path / "best"
    out.mkdir()
    (out / "selection.json").write_text('{"mine": true}\n')
    before = _tree(out)
    assert _rerank(beside / "m.jsonl", "-o", out, "--overwrite", model_args=model_args) == 2
    assert _tree(out) == before
    # an empty or unrelated existing folder is fine, and its other files stay
    (out / "selection.json").unlink()
    (out / "readme.txt").write_text("x")
    assert _rerank(beside / "m.jsonl", "-o", out, model_args=model_args) == 0
    assert (out / "readme.txt").read_text() == "x" and (out / "audios" / "p1.wav").is_file()


def test_manifest_bad_rows_are_reported_by_line_and_skipped(beside, tmp_path, model_args, capsys):
    good = {"caption": "A calm voice.", "candidates": [str(beside / "audios" / "c0.wav"),
                                                        str(beside / "audios" / "c1.wav")]}
    lines = [
        json.dumps({"id": "ok1", **good}).encode(),               # 1 good
        b'{"id": "broken", "caption": ',                          # 2 invalid JSON
        b'["a list", "not an object"]',                           # 3 not an object
        b"42",                                                    # 4 not an object
        json.dumps({"id": "nopaths", "caption": "x"}).encode(),   # 5 no path column
        b'{"id": "latin", "caption": "caf\xe9", "candidates": []}',  # 6 not UTF-8
        b"",                                                      # 7 blank: ignored, not a row
        json.dumps({"id": "nl\n", **good}).encode(),              # 8 id with a trailing newline
        json.dumps({"id": "OK1", **good}).encode(),               # 9 same id as line 1 but for case
        json.dumps({"id": "ok2", **good}).encode(),               # 10 good
    ]
    manifest = tmp_path / "bad.jsonl"
    manifest.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "best"
    assert _rerank(manifest, "-o", out, model_args=model_args) == 1  # some rows failed, the rest done
    doc = json.loads((out / "selection.json").read_text())
    assert [r["id"] for r in doc["prompts"]] == ["ok1", "ok2"]
    assert sorted(p.name for p in (out / "audios").iterdir()) == ["ok1.wav", "ok2.wav"]
    assert doc["counts"]["invalid_rows"] == 7
    err = capsys.readouterr().err
    for lineno, text in [(2, "not valid JSON"), (3, "expected a JSON object, got list"),
                         (4, "expected a JSON object, got int"), (5, "'candidates' (the list of audio paths) missing"),
                         (6, "not valid UTF-8 (byte 0xe9"), (8, "id 'nl\\n' is not a plain file name"),
                         (9, "duplicate id 'OK1'")]:
        assert any(f"bad.jsonl:{lineno}: " in line and text in line for line in err.splitlines()), (lineno, text)
        assert any(f"bad.jsonl:{lineno}: " in issue and text in issue for issue in doc["issues"])
    assert "bad.jsonl:7" not in err


def test_exit_codes(beside, tmp_path, model_args):
    assert _rerank(beside / "m.jsonl", "-o", tmp_path / "a", model_args=model_args) == 0
    assert _rerank(beside / "m.jsonl", "-o", tmp_path / "b", "--gate", "wer~1", model_args=model_args) == 2
    assert _rerank(tmp_path / "missing.jsonl", "-o", tmp_path / "c", model_args=model_args) == 2
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


# ------------------------------------------------------------------------------------------------ demo

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def _demo(out: Path, n: int) -> int:
    return main(["demo", "--out", str(out), "--device", "cpu", "--candidates-n", str(n)])


@needs_espeak
def test_demo_refuses_foreign_files_at_its_names_before_any_work(tmp_path, capsys):
    out = tmp_path / "demo"
    (out / "audio").mkdir(parents=True)
    (out / "audio" / "whisper.wav").write_bytes(b"my recording")
    (out / "index.html").write_text("<html>my page</html>")
    before = _tree(out)
    assert _demo(out, 2) == 2
    assert _tree(out) == before
    printed = capsys.readouterr().out
    assert "never replaced" in printed and "model:" not in printed  # refused before loading anything

    (out / "audio" / "whisper.wav").unlink()
    (out / "index.html").unlink()
    (out / "demo.json").write_text('{"my": "report"}\n')  # a demo.json of someone else's is not a record
    assert _demo(out, 2) == 2 and (out / "demo.json").read_text() == '{"my": "report"}\n'


@needs_espeak
def test_demo_reruns_replace_only_its_own_files(tmp_path):
    out = tmp_path / "demo"
    (out / "audio").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "audio" / "mine.wav").write_bytes(b"mine too")
    foreign = _tree(out)
    assert _demo(out, 2) == 0
    record = json.loads((out / "demo.json").read_text())["outputs"]
    assert "audio/candidate-1.wav" in record and len(record) == 6 + 2 + 3
    after = _tree(out)
    assert {k: after[k] for k in foreign} == foreign
    for rel, digest in record.items():
        assert digest == "sha256:" + after[rel]

    assert _demo(out, 1) == 0  # fewer candidates: the demo's own stale candidate goes, nothing else
    after = _tree(out)
    assert "audio/candidate-1.wav" not in after and "audio/candidate-0.wav" in after
    assert {k: after[k] for k in foreign} == foreign
    assert not [p for p in out.rglob(".*")]

    (out / "index.html").write_text("edited by hand")  # ours once; changed since, so no longer ours
    before = _tree(out)
    assert _demo(out, 1) == 2 and _tree(out) == before


# ------------------------------------------------------------------------------------------------ synth

SYNTH_VOICES = ["espeak+m4", "espeak+f3", "espeak+m3", "espeak+f4"]


def _synth(out: Path, n: int = 4) -> int:
    return main(["synth", "--out", str(out), "--num-clips", str(n), "--seed", "1", "--workers", "2",
                 "--splits", "0.5,0.15,0.35", "--no-mbrola", "--voices", ",".join(SYNTH_VOICES), "--quiet"])


@needs_espeak
@pytest.mark.parametrize("name", ["train.jsonl", "CORPUS_CARD.md", "audio/synth/train/000000.wav",
                                  "calibration.json", "synth_outputs.json"])
def test_synth_refuses_foreign_files_at_its_names(tmp_path, capsys, name):
    out = tmp_path / "corpus"
    (out / name).parent.mkdir(parents=True, exist_ok=True)
    (out / name).write_bytes(b'{"not": "synth\'s"}\n')
    before = _tree(out)
    assert _synth(out) == 2
    assert _tree(out) == before  # refused before anything was written, the record included
    assert "never replaced" in capsys.readouterr().err


@needs_espeak
def test_synth_keeps_foreign_files_and_records_its_own(tmp_path):
    pytest.importorskip("parselmouth")
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert _synth(out) == 0
    assert (out / "notes.txt").read_text() == "mine"
    doc = json.loads((out / "synth_outputs.json").read_text())
    assert doc["complete"] is True
    tree = _tree(out)
    assert "notes.txt" not in doc["files"]
    assert set(doc["files"]) == set(tree) - {"notes.txt", "synth_outputs.json"}  # every file it wrote, only those
    for rel, digest in doc["files"].items():
        assert digest == "sha256:" + tree[rel], rel

    assert _synth(out) == 0  # its own files: a rerun replaces them (calibration reused)
    assert (out / "notes.txt").read_text() == "mine"
    from paraspeechclap.synth.verify import verify_corpus

    assert verify_corpus(out, workers=1, progress=False)["clips"] >= 0
    assert "verification_stored.json" in json.loads((out / "synth_outputs.json").read_text())["files"]

    (out / "train.jsonl").write_text("edited by hand\n")  # changed since synth wrote it: not replaced
    before = _tree(out)
    assert _synth(out) == 2 and _tree(out) == before


@needs_espeak
def test_synth_verify_only_never_replaces_a_foreign_report(tmp_path):
    from paraspeechclap.synth.record import OutputExistsError
    from paraspeechclap.synth.verify import verify_corpus

    (tmp_path / "train.jsonl").write_text("")
    (tmp_path / "verification_stored.json").write_text("mine\n")
    with pytest.raises(OutputExistsError, match="never replaced"):
        verify_corpus(tmp_path, workers=1, progress=False)
    assert (tmp_path / "verification_stored.json").read_text() == "mine\n"


def test_a_chosen_file_that_vanishes_before_the_copy_fails_only_its_prompt(beside, tmp_path, tiny_model):
    from paraspeechclap.rerank import read_manifest, rerank_input, write_outputs

    rows = [{"id": f"p{i}", "caption": "A voice.", "candidates": [f"audios/c{i}.wav"]} for i in range(3)]
    (beside / "three.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = read_manifest(beside / "three.jsonl")
    results = rerank_input(tiny_model, data, show_progress=False)
    (beside / "audios" / "c1.wav").unlink()  # gone between scoring and writing
    out = tmp_path / "best"
    doc = write_outputs(out, data, results)
    assert sorted(p.name for p in (out / "audios").iterdir()) == ["p0.wav", "p2.wav"]
    assert [r["status"] for r in doc["prompts"]] == ["chosen", "failed", "chosen"]
    assert doc["counts"]["failed"] == 1 and doc["counts"]["chosen"] == 2
    assert any("c1.wav: could not be copied" in issue for issue in doc["issues"])
    assert set(doc["outputs"]) == {"audios/p0.wav", "audios/p2.wav", "selection.csv"}
    assert json.loads((out / "selection.json").read_text()) == json.loads(json.dumps(doc))
