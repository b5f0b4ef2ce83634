"""index: build, incremental extension, search with known neighbours, SQL filters, ids aligned with Parquet rows."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("duckdb")

from paraspeechclap.annotate.attributes import AttributeTable  # noqa: E402
from paraspeechclap.annotate.job import MANIFEST, Job, JobConfig  # noqa: E402
from paraspeechclap.annotate.layout import annotation_schema  # noqa: E402
from paraspeechclap.annotate.inputs import InputRow  # noqa: E402
from paraspeechclap.index import Index, IndexError_  # noqa: E402

DIM = 16
SHARD = 25
TABLE = AttributeTable.from_dict({"attributes": {"pitch": {"classes": ["deep", "high"]}}})


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _write_annotations(folder: Path, vectors: np.ndarray, shards: list[int], bad_rows=(3,)) -> None:
    """An annotation folder with the real job's manifest and schema, embeddings given (no model)."""
    import pyarrow as pa

    n = len(vectors)
    rows = [InputRow(i, f"clip{i:03d}", f"/audio/clip{i:03d}.wav") for i in range(n)]
    job = Job(JobConfig(inputs=["/audio"], out=str(folder), shard_size=SHARD), rows=rows)
    job.ensure_manifest({"model": "fake", "identity": "abc", "precision": "fp32"}, TABLE, DIM)
    schema = annotation_schema(TABLE, DIM, "float32")
    for k in shards:
        part = range(k * SHARD, min((k + 1) * SHARD, n))
        ok = [i not in bad_rows for i in part]
        deep = [float(i % 2) for i in part]
        flat = pa.array(vectors[list(part)].ravel(), pa.float32())
        table = pa.table({
            "row": pa.array(list(part), pa.int64()), "id": [f"clip{i:03d}" for i in part],
            "audio": [f"/audio/clip{i:03d}.wav" for i in part], "duration": [1.0 + (i % 5) for i in part],
            "status": ["ok" if o else "error" for o in ok], "error": [None if o else "broken" for o in ok],
            "embedding": pa.FixedSizeListArray.from_arrays(flat, DIM, mask=pa.array([not o for o in ok])),
            "pitch": ["deep" if d else "high" for d in deep], "p_pitch_deep": deep, "p_pitch_high": [1 - d for d in deep],
            "tags": [["deep"] if d else [] for d in deep], "caption": [None for _ in part]}, schema=schema)
        job.commit(job.shards[k], table)


@pytest.fixture(params=["usearch", "faiss"])
def backend(request):
    pytest.importorskip(request.param)
    return request.param


def test_known_neighbours_ids_and_filters(tmp_path, backend):
    vectors = _vectors(100)
    _write_annotations(tmp_path / "ann", vectors, shards=[0, 1, 2, 3])
    index = Index.build(tmp_path / "ann", backend=backend)
    assert len(index) == 99  # the failed row is not indexed
    for probe in (0, 17, 42, 99):
        hits = index.search_vector(vectors[probe], top=5)
        exact = np.argsort(-(vectors @ vectors[probe]))
        exact = [int(i) for i in exact if i != 3][:5]
        assert [r for r, _ in hits] == exact
        assert hits[0][1] == pytest.approx(1.0, abs=1e-4)
        info = index.rows([hits[0][0]])[probe]
        assert info["id"] == f"clip{probe:03d}" and info["row"] == probe  # ids stay aligned with Parquet rows
    # filters run in DuckDB over the Parquet columns; exact path and over-fetching ANN path agree
    where = "duration > 3 AND pitch = 'deep'"
    allowed = {i for i in range(100) if i != 3 and 1.0 + (i % 5) > 3 and i % 2 == 1}
    for limit in (20000, 0):
        hits = index.search_vector(vectors[42], top=10, where=where, exact_limit=limit)
        assert len(hits) == 10 and {r for r, _ in hits} <= allowed
        best = sorted(allowed, key=lambda i: -float(vectors[i] @ vectors[42]))[:10]
        assert [r for r, _ in hits] == best
    assert index.search_vector(vectors[0], top=5, where="duration > 100") == []
    assert set(index.filter_rows("list_contains(tags, 'deep')")) == {i for i in range(100) if i % 2 == 1 and i != 3}


def test_incremental_build_adds_new_shards_only(tmp_path, backend):
    vectors = _vectors(100, seed=1)
    ann = tmp_path / "ann"
    _write_annotations(ann, vectors, shards=[0, 2])
    first = Index.build(ann, backend=backend)
    assert len(first) == 49 and sorted(first.meta["shards"]) == ["data/train-00000-of-00004.parquet",
                                                             "data/train-00002-of-00004.parquet"]
    assert first.search_vector(vectors[30], top=1)[0][0] != 30  # shard 1 not there yet
    _write_annotations(ann, vectors, shards=[1, 3])
    second = Index.build(ann)
    assert len(second) == 99 and len(second.meta["shards"]) == 4 and second.meta["backend"] == backend
    assert second.search_vector(vectors[30], top=1)[0][0] == 30
    reopened = Index.open(ann)  # ANNOTATIONS/_index
    assert len(reopened) == 99 and reopened.search_vector(vectors[77], top=1)[0][0] == 77
    again = Index.build(ann)  # nothing new: unchanged
    assert len(again) == 99
    with pytest.raises(IndexError_):
        Index.build(ann, backend="faiss" if backend == "usearch" else "usearch")


def test_refuses_foreign_folder(tmp_path):
    vectors = _vectors(30)
    _write_annotations(tmp_path / "ann", vectors, shards=[0])
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(IndexError_, match="not an index"):
        Index.build(tmp_path / "ann", out=foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(IndexError_):
        Index.open(tmp_path / "nothing")


def test_text_and_example_search_end_to_end(tmp_path, capsys):
    """annotate (mini) -> index build -> search by text, by example clip, with --where; CLI and Python."""
    import soundfile as sf

    from paraspeechclap.annotate import annotate
    from paraspeechclap.cli import main

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        t = np.arange(int(16000 * (0.8 + 0.3 * i))) / 16000
        wave = 0.3 * np.sin(2 * np.pi * (100 + 40 * i) * t) + 0.01 * rng.standard_normal(len(t))
        sf.write(audio / f"c{i}.wav", wave.astype(np.float32), 16000)
    ann = tmp_path / "ann"
    annotate(audio, ann, workers=1, shard_size=3, device="cpu", precision="fp32")
    assert main(["index", "build", str(ann)]) == 0
    capsys.readouterr()
    assert main(["search", str(ann), "--like", str(audio / "c5.wav"), "--top", "3", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    hits = doc["results"]
    assert doc["provenance"]["identity"] and doc["query"]["like"] == str(audio / "c5.wav")
    assert hits[0]["id"] == "c5.wav" and hits[0]["score"] == pytest.approx(1.0, abs=1e-3) and len(hits) == 3
    assert main(["search", str(ann), "a deep voice speaking slowly", "--where", "duration > 1.5", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("rank,score,id") and len(lines) == 1 + 5  # c3..c7 are longer than 1.5 s
    index = Index.open(ann)
    python_hits = index.search("a deep voice speaking slowly", where="duration > 1.5", top=20)
    assert [h["id"] for h in python_hits] == [line.split(",")[2] for line in lines[1:]]
    manifest = json.loads((ann / MANIFEST).read_text())
    assert index.meta["model"]["identity"] == manifest["model"]["identity"]
    assert main(["search", str(ann), "x", "--where", "no_such_column > 1"]) == 2
    capsys.readouterr()
    out = tmp_path / "hits.parquet"
    assert main(["search", str(ann), "a deep voice", "--top", "2", "--out", str(out)]) == 0
    import pyarrow.parquet as pq

    from paraspeechclap.output import read_provenance

    assert pq.read_table(out).column_names[:3] == ["rank", "score", "id"] and pq.read_table(out).num_rows == 2
    assert read_provenance(out)["identity"] == manifest["model"]["identity"]
    assert main(["index", "info", str(ann)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["provenance"]["identity"] == manifest["model"]["identity"] and info["count"] == 8
    assert main(["index", "info", str(ann), "--format", "table"]) == 0
    assert "count" in capsys.readouterr().out
