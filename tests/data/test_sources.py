import json

import numpy as np
import pytest

from paraspeechclap.data import schema
from paraspeechclap.data.sources import (ListTable, combine, interleave_indices, load_source, load_sources,
                                         read_manifest, split_specs)


def test_normalize_tags():
    assert schema.normalize_tags(None) == []
    assert schema.normalize_tags(" Deep ") == ["deep"]
    assert schema.normalize_tags(["Deep", " ", "", None, 3, "deep", "CALM "]) == ["deep", "calm"]
    assert schema.build_vocabulary([["b", "A"], None, "c", ["a "]]) == ["a", "b", "c"]


def test_audio_path_and_captions(tmp_path):
    row = {"source": "ears", "relative_audio_path": "p1/a.wav"}
    assert schema.audio_path(row, "/root") == "/root/ears/p1/a.wav"
    assert schema.audio_path({"audio_path": "x/y.wav"}, "/r") == "/r/x/y.wav"
    assert schema.audio_path({"audio_path": "/abs.wav"}, "/r") == "/abs.wav"
    with pytest.raises(ValueError):
        schema.audio_path(row, None)
    assert schema.captions(["a", " ", "b"]) == ["a", "b"]
    assert schema.captions("x") == ["x"]


def _rows(n, tag="t"):
    return [{"source": "s", "relative_audio_path": f"{i}.wav", "text_description": f"c{i}", "intrinsic_tags": [tag]}
            for i in range(n)]


def test_manifest_formats(tmp_path):
    rows = _rows(3)
    rows[1]["text_description"] = ["one", "two"]
    p = tmp_path / "m.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert read_manifest(p) == rows
    import pandas as pd

    df = pd.DataFrame([dict(r, text_description=[r["text_description"]] if isinstance(r["text_description"], str)
                            else r["text_description"]) for r in rows])
    df.to_parquet(tmp_path / "m.parquet")
    got = load_source(tmp_path / "m.parquet")
    assert len(got) == 3 and list(got[1]["text_description"]) == ["one", "two"]
    csv_rows = [dict(r, intrinsic_tags=json.dumps(r["intrinsic_tags"])) for r in rows]
    csv_rows[1]["text_description"] = json.dumps(["one", "two"])
    pd.DataFrame(csv_rows).to_csv(tmp_path / "m.csv", index=False)
    got = load_source(str(tmp_path / "m.csv"))
    assert got[1]["text_description"] == ["one", "two"] and got[0]["intrinsic_tags"] == ["t"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        read_manifest(bad)


def test_save_to_disk_folder(tmp_path):
    import datasets

    datasets.Dataset.from_list(_rows(4)).save_to_disk(str(tmp_path / "ds"))
    t = load_source(tmp_path / "ds")
    assert len(t) == 4 and t.column("relative_audio_path")[2] == "2.wav"
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(_rows(2)), "test": datasets.Dataset.from_list(_rows(1))})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert len(load_source(tmp_path / "dd", split="test")) == 1
    it = load_source(tmp_path / "ds", streaming=True)
    assert len(list(it)) == 4


def test_round_robin_interleave_matches_reference():
    idx = interleave_indices([2, 5])  # all_exhausted: k < 5, row k mod len
    assert idx.tolist() == [[0, 0], [1, 0], [0, 1], [1, 1], [0, 0], [1, 2], [0, 1], [1, 3], [0, 0], [1, 4]]
    assert interleave_indices([2, 5], stopping_strategy="first_exhausted").tolist() == [[0, 0], [1, 0], [0, 1], [1, 1]]


def test_round_robin_matches_hf_interleave():
    import datasets

    a = datasets.Dataset.from_dict({"x": [f"a{i}" for i in range(3)]})
    b = datasets.Dataset.from_dict({"x": [f"b{i}" for i in range(7)]})
    for strat in ("all_exhausted", "first_exhausted"):
        hf = datasets.interleave_datasets([a, b], stopping_strategy=strat)["x"]
        ours = combine([ListTable(a.to_list()), ListTable(b.to_list())], stopping_strategy=strat).column("x")
        assert ours == hf


def test_probabilities_interleave():
    idx = interleave_indices([10, 100], probabilities=[0.5, 0.5], stopping_strategy="all_exhausted", seed=1)
    counts = np.bincount(idx[:, 0])
    assert (idx[idx[:, 0] == 1, 1] == np.arange(100)).all()  # rows in order, every row of the larger once
    assert abs(counts[0] - counts[1]) < 40
    first = interleave_indices([10, 100], probabilities=[0.5, 0.5], stopping_strategy="first_exhausted", seed=1)
    assert (first[:, 0] == 0).sum() == 10 and len(first) < 40
    again = interleave_indices([10, 100], probabilities=[0.5, 0.5], seed=1)
    assert (again == idx).all()


def test_concatenate_and_specs(tmp_path):
    a, b = ListTable(_rows(2, "x")), ListTable(_rows(3, "y"))
    c = combine([a, b], mode="concatenate")
    assert len(c) == 5 and c.column("intrinsic_tags")[4] == ["y"]
    assert split_specs("org/a+org/b") == ["org/a", "org/b"]
    assert split_specs(["x", "y+z"]) == ["x", "y", "z"]
    pa, pb = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    pa.write_text("\n".join(json.dumps(r) for r in _rows(2)))
    pb.write_text("\n".join(json.dumps(r) for r in _rows(4)))
    t = load_sources([str(pa), {"path": str(pb), "audio_root": "/other"}])
    assert len(t) == 8
    assert t[1]["_audio_root"] == "/other" and "_audio_root" not in t[0]
