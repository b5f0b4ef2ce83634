"""The annotation folder as a dataset: shards per split named as Hugging Face names them, a split column, every
manifest field carried, provenance and an Audio feature in each shard's schema metadata; read by the real
`datasets` (offline), DuckDB, index build and search."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from paraspeechclap.annotate.inputs import InputRow
from paraspeechclap.annotate.layout import (HF_META_KEY, MANIFEST, META_KEY, Carried, carried_columns, name_carried,
                                            plan_shards)

SPLITS = ["train", "validation", "test"]


@pytest.fixture(scope="module")
def dataset(corpus, tmp_path_factory):
    """A manifest whose rows interleave three splits, with extra fields of every kind, annotated with mini."""
    from paraspeechclap.annotate import annotate

    folder = tmp_path_factory.mktemp("manifest")
    lines = []
    for i in range(12):
        lines.append({"audio_path": str(corpus / "a" / f"clip{2 * i + 1:03d}.wav"), "split": SPLITS[i % 3],
                      "speaker": f"spk{i % 4}", "text_description": f"caption {i}", "duration": 9.5 + i,
                      "gender": "female", "measured": {"f0": 100.0 + i, "rate": None}, "mixed": i if i % 2 else "x",
                      "intrinsic_tags": ["deep"] * (i % 3), "empty": {}})
    lines.append({"audio_path": str(corpus / "a" / "clip001.wav"), "split": "no/such split", "speaker": "spk9"})
    manifest = folder / "rows.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in lines))
    out = tmp_path_factory.mktemp("ann") / "ann"
    summary = annotate(manifest, out, workers=1, shard_size=3, device="cpu", precision="fp32")
    return out, lines, summary


def test_shards_per_split_with_split_column_and_provenance(dataset):
    out, lines, summary = dataset
    manifest = json.loads((out / MANIFEST).read_text())
    names = sorted(manifest["shards"])
    # train holds the 4 train rows and the bad-split row (an error row in the default split)
    assert names == ["data/test-00000-of-00002.parquet", "data/test-00001-of-00002.parquet",
                     "data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet",
                     "data/validation-00000-of-00002.parquet", "data/validation-00001-of-00002.parquet"]
    assert manifest["version"] == 2 and manifest["input"]["splits"] == {"train": 2, "validation": 2, "test": 2}
    assert summary["shards_done"] == 6 and summary["rows_done"] == 13
    for name in names:
        table = pq.read_table(out / name)
        split = name.split("/")[1].split("-")[0]
        assert set(table.column("split").to_pylist()) == {split}
        assert manifest["shards"][name]["split"] == split
        expected = [i for i in range(13) if (lines[i]["split"] if i < 12 else "train") == split]
        k = int(name.split("-")[1])
        assert table.column("row").to_pylist() == expected[3 * k:3 * k + 3]  # input order inside the split
        meta = json.loads(table.schema.metadata[META_KEY])
        assert meta["identity"] == manifest["model"]["identity"] and meta["precision"] == "fp32"
        assert meta["format"] == "paraspeechclap-annotations" and meta["version"] == 2
        assert meta["split"] == split and meta["shard"] == name and meta["code_version"]
        assert json.loads(table.schema.metadata[HF_META_KEY])["info"]["features"]["audio"] == {"_type": "Audio"}
    bad = pq.read_table(out / "data/train-00001-of-00002.parquet").to_pylist()[-1]
    assert bad["row"] == 12 and bad["status"] == "error" and "'no/such split' is not a split name" in bad["error"]


def test_every_manifest_field_is_carried(dataset):
    from paraspeechclap.annotate.engines import annotated_rows

    out, lines, _ = dataset
    rows = annotated_rows(out).to_pylist()
    assert [r["row"] for r in rows] == list(range(13))
    for r, line in zip(rows[:12], lines):
        assert r["speaker"] == line["speaker"] and r["text_description"] == line["text_description"]
        assert r["audio_path"] == line["audio_path"]
        assert r["input_duration"] == line["duration"] and r["duration"] == pytest.approx(
            sf.info(line["audio_path"]).duration, abs=1e-3)  # the measured one keeps its name
        assert r["input_gender"] == "female"  # taken by mini's gender attribute
        assert r["measured"] == line["measured"] and r["intrinsic_tags"] == line["intrinsic_tags"]
        assert json.loads(r["mixed"]) == line["mixed"]  # no one Arrow type holds ints and strings: JSON text
        assert r["empty"] == "{}"
        assert r["audio"] == {"bytes": None, "path": line["audio_path"]}
    assert rows[12]["speaker"] == "spk9" and rows[12]["text_description"] is None
    carried = json.loads((out / MANIFEST).read_text())["input"]["carried"]
    assert {c["key"]: c["column"] for c in carried}["duration"] == "input_duration"
    assert {c["key"]: c["type"] for c in carried}["mixed"] == "json"


def test_datasets_reads_splits_and_audio(dataset):
    from datasets import Audio, load_dataset

    out, lines, _ = dataset
    ds = load_dataset("parquet", data_dir=str(out))
    assert sorted(ds) == sorted(SPLITS) and {s: len(ds[s]) for s in SPLITS} == {"train": 5, "validation": 4,
                                                                                 "test": 4}
    assert isinstance(ds["test"].features["audio"], Audio)
    assert set(ds["test"]["split"]) == {"test"} and "speaker" in ds["test"].column_names
    first = ds["validation"].cast_column("audio", Audio(decode=False))[0]
    assert first["audio"]["path"] == lines[1]["audio_path"]
    wave, rate = sf.read(first["audio"]["path"])
    assert rate == 16000 and len(wave) > 0


def test_datasets_decodes_the_audio(dataset):
    """datasets (>= 4) decodes Audio with torchcodec, which needs FFmpeg; skipped where that does not load."""
    from datasets import load_dataset

    try:
        import torchcodec.decoders  # noqa: F401
    except (ImportError, OSError, RuntimeError) as err:
        pytest.skip(f"datasets decodes audio with torchcodec, which does not load here ({err})")
    out, lines, _ = dataset
    wave, _ = sf.read(lines[1]["audio_path"])
    samples = load_dataset("parquet", data_dir=str(out), split="validation")[0]["audio"].get_all_samples()
    assert samples.sample_rate == 16000
    np.testing.assert_allclose(samples.data.numpy()[0], wave, atol=1e-4)


def test_index_build_search_and_where_on_carried_fields(dataset, capsys):
    from paraspeechclap.cli import main

    out, lines, _ = dataset
    assert main(["index", "build", str(out)]) == 0
    capsys.readouterr()
    args = ["search", str(out), "--like", lines[4]["audio_path"], "--top", "2", "--format", "json",
            "--where", "speaker = 'spk0' AND split = 'validation' AND audio LIKE '%.wav'"]
    assert main(args) == 0
    hits = json.loads(capsys.readouterr().out)["results"]
    assert [h["row"] for h in hits] == [4]  # speaker spk0 in validation: rows 4 (i % 4 == 0, i % 3 == 1) only
    assert hits[0]["audio"] == lines[4]["audio_path"] and hits[0]["score"] == pytest.approx(1.0, abs=1e-3)


def test_plan_and_carried_columns_without_a_model():
    rows = [InputRow(i, f"r{i}", f"/a/{i}.wav", split=["b", "a"][i % 2], fields={"x": i, "id2": None})
            for i in range(7)]
    plan = plan_shards(rows, 2)
    assert [(s.name, [r.row for r in s.rows]) for s in plan] == [  # splits in order of first appearance
        ("data/b-00000-of-00002.parquet", [0, 2]), ("data/b-00001-of-00002.parquet", [4, 6]),
        ("data/a-00000-of-00002.parquet", [1, 3]), ("data/a-00001-of-00002.parquet", [5])]
    assert [s.split for s in plan] == ["b", "b", "a", "a"]
    assert [s.index for s in plan] == [0, 1, 2, 3]
    v1 = plan_shards(rows, 2, version=1)
    assert [s.name for s in v1] == [f"train-{k:05d}.parquet" for k in range(4)]
    assert [[r.row for r in s.rows] for s in v1] == [[0, 1], [2, 3], [4, 5], [6]]
    carried = carried_columns(rows)
    assert [(c.key, str(c.type)) for c in carried] == [("x", "int64"), ("id2", "None")]
    assert carried[1] == Carried("id2", "id2", None)  # only nulls: kept as (null) text
    assert [c.column for c in name_carried(carried, {"x", "input_x"})] == ["input_input_x", "id2"]
