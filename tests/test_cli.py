"""The inference CLI: embed/score/classify over files, globs and manifests; bad files reported and skipped."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from paraspeechclap.cli import main


@pytest.fixture
def model_args(fixture_dir):
    return ["--model", str(fixture_dir / "checkpoint.pth.tar"), "--speech-model", str(fixture_dir / "speech"),
            "--text-model", str(fixture_dir / "text"), "--embedding-dim", "24", "--device", "cpu",
            "--precision", "fp32"]


@pytest.fixture
def golden_wavs(tmp_path, golden_waveforms):
    paths = []
    for i, wave in enumerate(golden_waveforms):
        path = tmp_path / "clips" / f"clip{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, wave, 16000, subtype="FLOAT")
        paths.append(path)
    return paths


def test_embed_cli_reproduces_golden(golden, golden_wavs, model_args, tmp_path, capsys):
    out = tmp_path / "emb.npy"
    assert main(["embed", *map(str, golden_wavs), "--out", str(out), *model_args]) == 0
    np.testing.assert_allclose(np.load(out), golden["audio_emb_single"], atol=1e-5)
    assert out.with_suffix(".txt").read_text().split() == [str(p) for p in golden_wavs]
    parquet = tmp_path / "emb.parquet"
    assert main(["embed", str(golden_wavs[0].parent / "*.wav"), "--out", str(parquet), *model_args]) == 0
    import pyarrow.parquet as pq

    table = pq.read_table(parquet).to_pydict()
    np.testing.assert_allclose(np.array(table["embedding"]), golden["audio_emb_single"], atol=1e-5)


def test_public_api_on_wav_files_matches_golden(tiny_model, golden, golden_wavs):
    np.testing.assert_allclose(tiny_model.embed_audio([str(p) for p in golden_wavs]), golden["audio_emb_single"],
                               atol=1e-5)


def test_classify_prints_ranked_table(golden_wavs, model_args, capsys):
    assert main(["classify", str(golden_wavs[0]), str(golden_wavs[1]), "--candidates", "deep", "shrill", "nasal",
                 *model_args]) == 0
    out = capsys.readouterr().out
    assert out.count("Predicted style:") == 2 and "Similarity" in out and "Probability" in out
    block = out.split(str(golden_wavs[1]))[0]
    sims = [float(line.split()[1]) for line in block.splitlines() if line.split()[:1] in (["deep"], ["shrill"], ["nasal"])]
    assert sims == sorted(sims, reverse=True) and len(sims) == 3


def test_classify_json_and_bad_files_skipped(golden_wavs, model_args, tmp_path, capsys):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    manifest = tmp_path / "files.jsonl"
    manifest.write_text("\n".join(json.dumps({"path": str(p)}) for p in [golden_wavs[0], broken,
                                                                          tmp_path / "missing.wav"]) + "\n")
    code = main(["classify", str(manifest), "--candidates", "deep", "shrill", "--json", *model_args])
    captured = capsys.readouterr()
    assert code == 1  # failures make the exit code non-zero, the good file is still scored
    data = json.loads(captured.out)
    assert [r["path"] for r in data["results"]] == [str(golden_wavs[0])]
    assert set(data["failed"]) == {str(broken), str(tmp_path / "missing.wav")}
    assert "broken.wav" in captured.err and "missing.wav" in captured.err
    assert sum(r["probability"] for r in data["results"][0]["ranking"]) == pytest.approx(1.0)


def test_score_csv(golden_wavs, model_args, capsys):
    assert main(["score", str(golden_wavs[2]), "--text", "a deep voice", "--text", "a whisper", "--csv",
                 *model_args]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "path,text,similarity" and len(lines) == 3
    assert all(-1.0 <= float(line.rsplit(",", 1)[1]) <= 1.0 for line in lines[1:])
