"""The inference CLI: embed/score/classify over files, globs and manifests; bad files reported and skipped."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from paraspeechclap.cli import ROOM_COMMANDS, main


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


def test_classify_defaults_to_one_softmax_per_attribute(golden_wavs, model_args, tiny_model, capsys):
    """Without --candidates: the model's attribute table, one softmax within each attribute (as annotate and
    /v1/classify), the same probabilities the table gives through the Python API."""
    from paraspeechclap.annotate.attributes import table_for_model

    assert main(["classify", str(golden_wavs[0]), "--format", "json", *model_args]) == 0
    doc = json.loads(capsys.readouterr().out)
    table = table_for_model(tiny_model)
    result = doc["results"][0]
    assert doc["attribute_table"] == table.family and "ranking" not in result
    assert list(result["attributes"]) == [a.name for a in table.attributes]
    expected = table.probabilities(tiny_model, tiny_model.embed_audio([str(golden_wavs[0])]))
    for attribute in table.attributes:
        ranking = result["attributes"][attribute.name]["ranking"]
        assert sum(r["probability"] for r in ranking) == pytest.approx(1.0, abs=1e-5)
        got = {r["style"]: r["probability"] for r in ranking}
        want = dict(zip(attribute.outcomes, map(float, expected[attribute.name][0])))
        assert got == pytest.approx(want, abs=1e-5)
    assert doc["provenance"]["precision"] == "fp32" and doc["provenance"]["identity"]


def test_classify_with_a_probe_table_gives_the_probe_and_its_tag(golden_wavs, model_args, tiny_model, tmp_path,
                                                                 capsys):
    """An attribute with a probe: its softmax over the classes and "none" (as annotate), and the tag it gives."""
    import numpy as np

    from paraspeechclap.annotate.attributes import AttributeTable

    emb = tiny_model.embed_audio([str(p) for p in golden_wavs[:2]])
    weights = np.zeros((3, emb.shape[1]))
    weights[1] = 50 * emb[0] / np.linalg.norm(emb[0])  # "b" where the first clip points, none elsewhere
    doc = {"attributes": {"x": {"classes": ["a", "b"], "threshold": 0.6,
                                "probe": {"outcomes": ["a", "b", "none"], "dim": emb.shape[1],
                                          "weights": weights.tolist(), "bias": [-100.0, -48.0, 0.0], "lambda": 0.0}},
                          "y": {"classes": ["calm", "angry"]}}}
    path = tmp_path / "probe.json"
    path.write_text(json.dumps(doc))
    assert main(["classify", *map(str, golden_wavs[:2]), "--attributes", str(path), "--format", "json",
                 *model_args]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    table = AttributeTable.from_file(path)
    expected = table.probabilities(tiny_model, emb)
    for row, result in enumerate(results):
        x = result["attributes"]["x"]
        got = {r["style"]: r["probability"] for r in x["ranking"]}
        assert got == pytest.approx(dict(zip(["a", "b", "none"], map(float, expected["x"][row]))), abs=1e-5)
        assert {r["style"]: r["similarity"] for r in x["ranking"]}["none"] is None
        assert x["tag"] == table.by_name("x").tag_of(expected["x"][row])
    assert [r["attributes"]["x"]["tag"] for r in results][0] == "b"
    wide = dict(doc["attributes"]["x"]["probe"], dim=3, weights=[[0.0] * 3] * 3)
    path.write_text(json.dumps({"attributes": {"x": dict(doc["attributes"]["x"], probe=wide)}}))
    assert main(["classify", str(golden_wavs[0]), "--attributes", str(path), *model_args]) == 1
    assert "field 'attributes.x.probe.weights' reads 3-d embeddings" in capsys.readouterr().err


def test_classify_attributes_file_and_candidates_together(golden_wavs, model_args, tmp_path, capsys):
    table = {"family": "mine", "template": "A {} voice.",
             "attributes": {"pitch": {"classes": ["deep", "high"]}, "pace": {"classes": ["slow", "fast", "steady"]}}}
    path = tmp_path / "table.json"
    path.write_text(json.dumps(table))
    assert main(["classify", str(golden_wavs[1]), "--attributes", str(path), "--candidates", "calm", "angry",
                 *model_args]) == 0
    out = capsys.readouterr().out
    assert "Predicted style:" in out and "pitch" in out and "pace" in out and "Runner-up" in out
    parquet = tmp_path / "r.parquet"
    assert main(["classify", str(golden_wavs[1]), "--attributes", str(path), "--candidates", "calm", "angry",
                 "--out", str(parquet), *model_args]) == 0
    import pandas as pd

    from paraspeechclap.output import read_provenance

    frame = pd.read_parquet(parquet)
    sums = frame.fillna({"attribute": ""}).groupby("attribute")["probability"].sum()
    assert dict(sums) == pytest.approx({"": 1.0, "pitch": 1.0, "pace": 1.0}, abs=1e-5)
    assert read_provenance(parquet)["precision"] == "fp32"


def test_bad_attribute_table_is_named(golden_wavs, model_args, tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"family": "x", "attributes": {"pitch": {"classes": "deep"}}}))
    assert main(["classify", str(golden_wavs[0]), "--attributes", str(path), *model_args]) == 1
    assert "bad.json" in capsys.readouterr().err


def test_score_jsonl_with_sidecar_and_the_deprecated_alias(golden_wavs, model_args, tmp_path, capsys):
    out = tmp_path / "scores.jsonl"
    assert main(["score", str(golden_wavs[0]), "--text", "a deep voice", "--out", str(out), *model_args]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in rows] == ["a deep voice"] and -1 <= rows[0]["similarity"] <= 1
    sidecar = json.loads((tmp_path / "scores.jsonl.provenance.json").read_text())
    assert sidecar["precision"] == "fp32"
    assert main(["score", str(golden_wavs[0]), "--text", "x", "--out", str(out), *model_args]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(["score", str(golden_wavs[0]), "--text", "x", "--json", *model_args]) == 0
    captured = capsys.readouterr()
    assert "--json is deprecated" in captured.err and json.loads(captured.out)["texts"] == ["x"]


@pytest.mark.parametrize("command", sorted(ROOM_COMMANDS))
def test_every_command_prints_its_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0 and "usage: paraspeechclap " + command in capsys.readouterr().out


def test_the_dispatcher_contract_lists_every_module_of_the_package():
    """import-linter's "cli.py is only the dispatcher" names its source modules: a new room must join the list."""
    import pkgutil
    import tomllib

    import paraspeechclap

    repo = Path(__file__).resolve().parents[1]
    contracts = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    listed = next(c for c in contracts if "only the dispatcher" in c["name"])["source_modules"]
    modules = {f"paraspeechclap.{m.name}" for m in pkgutil.iter_modules(paraspeechclap.__path__)}
    assert modules - set(listed) == {"paraspeechclap.__main__", "paraspeechclap._version", "paraspeechclap.cli"}
    assert set(listed) <= modules
