"""embed/classify/score pointed at the folder that holds their own inputs: nothing deleted or changed; bad rows of
every kind are reported with their line and skipped."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import soundfile as sf

from paraspeechclap.cli import main

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "reference-tiny"
MODEL = ["--model", str(FIXTURE / "checkpoint.pth.tar"), "--speech-model", str(FIXTURE / "speech"),
         "--text-model", str(FIXTURE / "text"), "--embedding-dim", "24", "--precision", "fp32"]


def checksums(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def make_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "clips"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        sf.write(folder / f"c{i}.wav", (0.1 * rng.standard_normal(16000 + 4000 * i)).astype(np.float32), 16000)
    (folder / "notes.txt").write_text("the user's own file\n")
    return folder


def test_embed_into_the_input_folder_changes_no_input(tmp_path):
    folder = make_folder(tmp_path)
    before = checksums(folder)
    for out in ("emb.parquet", "emb.npz", "emb.npy"):
        assert main(["embed", str(folder), "--out", str(folder / out), *MODEL]) == 0
        assert main(["embed", str(folder), "--out", str(folder / out), *MODEL]) == 1  # exists: refused
        assert main(["embed", str(folder), "--out", str(folder / out), "--overwrite", *MODEL]) == 0
    after = checksums(folder)
    assert {k: v for k, v in after.items() if k in before} == before  # every input byte-identical
    assert set(after) - set(before) == {"emb.parquet", "emb.npz", "emb.npy", "emb.txt"}
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_an_output_named_like_an_input_is_refused_even_with_overwrite(tmp_path):
    folder = make_folder(tmp_path)
    before = checksums(folder)
    assert main(["score", str(folder), "--text", "calm", "--out", str(folder / "c1.wav"), "--overwrite", *MODEL]) == 1
    assert main(["embed", str(folder / "c0.wav"), str(folder / "c2.wav"), "--out", str(folder / "c0.npy"),
                 *MODEL]) == 0  # c0.npy and c0.txt are new names: fine
    assert main(["embed", str(folder / "notes.txt"), "--out", str(folder / "notes.npy"), *MODEL]) == 1
    assert checksums(folder)["notes.txt"] == before["notes.txt"]  # the .npy's file list never replaces an input
    assert all(checksums(folder)[k] == v for k, v in before.items())


def test_csv_and_jsonl_manifests_with_every_kind_of_bad_row(tmp_path, capsys):
    folder = make_folder(tmp_path)
    csv_manifest = tmp_path / "m.csv"
    csv_manifest.write_text(f"path,caption\n{folder / 'c0.wav'},a\n,empty path\n{folder / 'missing.wav'},x\n"
                            f"{folder / 'c1.wav'},b\n")
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_bytes(b'{"path": "c2.wav"}\n"a string"\n{"caption": "no path"}\n{broken\n\xc3\x28\n\n'
                      b'{"relative_audio_path": "c0.wav", "audio_root": "' + str(folder).encode() + b'"}\n')
    (tmp_path / "c2.wav").write_bytes((folder / "c2.wav").read_bytes())  # relative paths resolve beside the manifest
    out = tmp_path / "e.npz"
    assert main(["embed", str(csv_manifest), str(jsonl), "--out", str(out), *MODEL]) == 1
    err = capsys.readouterr().err
    for ref in (f"{csv_manifest}:3", f"{jsonl}:2", f"{jsonl}:3", f"{jsonl}:4", f"{jsonl}:5"):
        assert ref in err, ref
    assert "missing.wav" in err and "not found" in err
    with np.load(out) as saved:
        assert [Path(p).name for p in saved["paths"]] == ["c0.wav", "c1.wav", "c2.wav", "c0.wav"]
