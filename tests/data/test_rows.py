"""The one reader of rows: every kind of input, bad rows with their line numbers, and the one audio-path rule."""
import gzip
import json
import os
from pathlib import Path

import pytest

from paraspeechclap.data.rows import AUDIO_SUFFIXES, Row, read_rows, resolve_audio_path


def _good(rows):
    return [r for r in rows if r.ok]


def _bad(rows):
    return {r.ref: r.error for r in rows if not r.ok}


# --------------------------------------------------------------------------------------------- the path rule
def test_path_precedence(tmp_path):
    base = tmp_path / "m"
    # direct columns: path > audio > audio_path > file, and all of them before relative_audio_path
    row = {"path": "p.wav", "audio": "a.wav", "audio_path": "ap.wav", "file": "f.wav", "relative_audio_path": "r.wav"}
    assert resolve_audio_path(row, base) == str(base / "p.wav")
    assert resolve_audio_path({**row, "path": " "}, base) == str(base / "a.wav")
    assert resolve_audio_path({"audio_path": "ap.wav", "file": "f.wav"}, base) == str(base / "ap.wav")
    assert resolve_audio_path({"file": "f.wav"}, base) == str(base / "f.wav")
    # absolute stays; ~ is expanded
    assert resolve_audio_path({"path": "/abs/x.wav"}, base, "/root") == "/abs/x.wav"
    assert resolve_audio_path({"path": "~/x.wav"}) == os.path.expanduser("~/x.wav")
    # relative: the caller's root, then the row's own audio_root (relative to the manifest), then the manifest folder
    rel = {"source": "ears", "relative_audio_path": "p1/a.wav", "audio_root": "own"}
    assert resolve_audio_path(rel, base, "/root") == "/root/ears/p1/a.wav"
    assert resolve_audio_path(rel, base) == str(base / "own" / "ears" / "p1" / "a.wav")
    assert resolve_audio_path({**rel, "audio_root": "/abs-root"}, base) == "/abs-root/ears/p1/a.wav"
    assert resolve_audio_path({"relative_audio_path": "a.wav"}, base) == str(base / "a.wav")  # no source
    assert resolve_audio_path({"relative_audio_path": "a.wav", "source": None}, None, "/r") == "/r/a.wav"
    assert resolve_audio_path({"audio_path": "x/y.wav"}, None, "/r") == "/r/x/y.wav"
    assert resolve_audio_path({"audio_path": "x/y.wav"}) == "x/y.wav"  # no root: relative to the working folder
    # relative_audio_path beats a Hugging Face audio dict; the dict is used when nothing else names the audio
    hf = {"audio": {"path": "clip.wav", "bytes": None}}
    assert resolve_audio_path({**hf, "relative_audio_path": "r.wav"}, None, "/r") == "/r/r.wav"
    assert resolve_audio_path(hf, None, "/r") == "/r/clip.wav"
    assert resolve_audio_path({"audio": {"path": "/abs/c.wav"}}) == "/abs/c.wav"
    with pytest.raises(ValueError, match="audio-root"):
        resolve_audio_path({"relative_audio_path": "a.wav"})
    with pytest.raises(ValueError, match="no audio column"):
        resolve_audio_path({"text_description": "x", "audio": {"path": None, "bytes": None}}, base)


# --------------------------------------------------------------------------------------------- manifests
def test_jsonl_rows_and_bad_rows(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_bytes(b"\xef\xbb\xbf" + "\n".join([
        json.dumps({"id": "a", "path": "a.wav", "text_description": ["x", "y"]}),  # 1
        "",  # 2: blank, not a row
        "{oops",  # 3
        json.dumps([1, 2]),  # 4
        json.dumps({"id": "nothing"}),  # 5
        json.dumps({"id": "b", "relative_audio_path": "b.wav", "source": "s"}),  # 6
    ]).encode() + b"\n\xff\xfe\n" + json.dumps({"id": "c", "file": "/c.wav"}).encode() + b"\n")
    rows = list(read_rows(m))
    assert [r.ref for r in rows] == [f"{m}:{n}" for n in (1, 3, 4, 5, 6, 7, 8)]
    good = _good(rows)
    assert [(r.fields["id"], r.audio) for r in good] == [("a", str(tmp_path / "a.wav")),
                                                        ("b", str(tmp_path / "s" / "b.wav")), ("c", "/c.wav")]
    assert good[0].fields == {"id": "a", "path": "a.wav", "text_description": ["x", "y"]}
    bad = _bad(rows)
    assert "not valid JSON" in bad[f"{m}:3"]
    assert bad[f"{m}:4"] == "expected a JSON object, got list"
    assert "no audio column" in bad[f"{m}:5"]
    assert bad[f"{m}:7"] == "not valid UTF-8 (byte 0xff at column 1)"
    # a row without audio keeps its columns; without require_audio it is a good row with no audio
    assert [r for r in rows if r.ref == f"{m}:5"][0].fields == {"id": "nothing"}
    loose = list(read_rows(m, require_audio=False))
    assert [r.ok for r in loose] == [True, False, False, True, True, False, True]
    assert loose[3].audio is None
    # the caller's audio root
    assert _good(read_rows(str(m), audio_root="/r"))[1].audio == "/r/s/b.wav"


def test_declared_columns_of_the_wrong_type_are_bad_rows(tmp_path):
    """The manifest-row contract types the columns the reader gives meaning to; the rest pass through."""
    m = tmp_path / "m.jsonl"
    m.write_text("\n".join(json.dumps(r) for r in [
        {"path": "a.wav", "duration": 1.5, "text_description": "one", "intrinsic_tags": ["deep"], "mine": {"x": 1}},
        {"path": "b.wav", "duration": "1.5"},
        {"relative_audio_path": 7, "audio_path": "c.wav"},
        {"path": "d.wav", "schema": "paraspeechclap.manifest-row/9"},
        {"path": "e.wav", "text_description": [1, 2]},
        {"caption": "no audio here", "duration": "x"},
    ]) + "\n")
    rows = list(read_rows(m))
    bad = _bad(rows)
    assert [r.ok for r in rows] == [True, False, False, False, False, False]
    assert bad[f"{m}:2"] == "field 'duration': expected a valid number, got '1.5' (expected manifest-row version 1)"
    assert bad[f"{m}:3"].startswith("field 'relative_audio_path': expected a valid string, got 7")
    assert bad[f"{m}:4"].startswith("field 'schema': written as version 9, newer than this paraspeechclap reads")
    assert bad[f"{m}:5"].startswith("field 'text_description.0': expected a valid string, got 1")
    assert rows[0].fields["mine"] == {"x": 1}
    # a column-only read of a row that names no audio (a reranking manifest) does not check its columns
    assert [r.ok for r in read_rows(m, require_audio=False)][-1]


def test_json_list_ndjson_and_gzip(tmp_path):
    records = [{"path": "a.wav", "n": 1}, "not an object", {"path": "b.wav"}]
    (tmp_path / "l.json").write_text(json.dumps(records, indent=1))
    rows = list(read_rows(tmp_path / "l.json"))
    assert [r.ref for r in rows] == [f"{tmp_path / 'l.json'}#{i}" for i in range(3)]
    assert [r.ok for r in rows] == [True, False, True]
    (tmp_path / "broken.json").write_text('[{"path": "a.wav"},\n  {oops}]')
    assert list(_bad(read_rows(tmp_path / "broken.json"))) == [f"{tmp_path / 'broken.json'}:2"]
    (tmp_path / "l.ndjson").write_text('{"path": "a.wav"}\n')
    assert _good(read_rows(tmp_path / "l.ndjson"))[0].audio == str(tmp_path / "a.wav")
    with gzip.open(tmp_path / "z.jsonl.gz", "wt") as handle:
        handle.write('{"path": "a.wav"}\nnope\n')
    rows = list(read_rows(tmp_path / "z.jsonl.gz"))
    assert [r.ok for r in rows] == [True, False] and rows[1].ref.endswith("z.jsonl.gz:2")
    (tmp_path / "bad.jsonl.gz").write_bytes(b"not gzip at all")
    (bad,) = read_rows(tmp_path / "bad.jsonl.gz")
    assert not bad.ok and "cannot read" in bad.error


def test_csv_and_tsv(tmp_path):
    m = tmp_path / "m.csv"
    m.write_bytes(("id,relative_audio_path,source,duration,n,tags,text_description\n"
                   "001,a.wav,s,1.5,3,\"[\"\"deep\"\", \"\"calm\"\"]\",\"a line\nthat goes on\"\n"
                   "\n"
                   "x,,,,,,\n"
                   "y,b.wav,,,,['a'],ok\n").encode() + b"z,\xff.wav,,,,,\n" + b"w,c.wav,,,,,,extra\n")
    rows = list(read_rows(m))
    assert [r.ref for r in rows] == [f"{m}:{n}" for n in (2, 5, 6, 7, 8)]  # the multi-line row is named by line 2
    first = rows[0]
    assert first.ok and first.audio == str(tmp_path / "s" / "a.wav")
    assert first.fields == {"id": "001", "relative_audio_path": "a.wav", "source": "s", "duration": 1.5, "n": 3,
                            "tags": ["deep", "calm"], "text_description": "a line\nthat goes on"}
    assert "no audio column" in rows[1].error
    assert rows[2].ok and rows[2].audio == str(tmp_path / "b.wav") and rows[2].fields["tags"] == ["a"]
    assert rows[3].error == "not valid UTF-8" and "cells for" in rows[4].error
    t = tmp_path / "m.tsv"
    t.write_text("path\tcaption\nx.wav\thello\n")
    (row,) = read_rows(t)
    assert row.ok and row.ref == f"{t}:2" and row.fields == {"path": "x.wav", "caption": "hello"}


def test_parquet_in_row_groups(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"relative_audio_path": [f"{i}.wav" if i != 3 else None for i in range(5)],
                      "source": ["s"] * 5, "text_description": [["a", "b"]] * 5,
                      "audio": [{"path": None, "bytes": b"RIFF"}] * 5})
    pq.write_table(table, tmp_path / "m.parquet", row_group_size=2)
    assert pq.ParquetFile(tmp_path / "m.parquet").num_row_groups == 3
    rows = list(read_rows(tmp_path / "m.parquet", audio_root="/r"))
    assert [r.ref for r in rows] == [f"{tmp_path / 'm.parquet'}#{i}" for i in range(5)]
    assert [r.audio for r in rows] == ["/r/s/0.wav", "/r/s/1.wav", "/r/s/2.wav", None, "/r/s/4.wav"]
    assert "no audio column" in rows[3].error
    assert rows[0].fields["text_description"] == ["a", "b"]
    assert rows[0].fields["audio"] == {"path": None, "bytes": None}  # bytes are not JSON-able: dropped
    json.dumps([r.fields for r in rows])
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 nope")
    (bad,) = read_rows(tmp_path / "broken.parquet")
    assert not bad.ok and bad.ref == str(tmp_path / "broken.parquet")


def test_save_to_disk_folder(tmp_path):
    import datasets
    import numpy as np

    rows = [{"id": f"u{i}", "relative_audio_path": f"{i}.wav", "source": "vox", "duration": 0.5} for i in range(3)]
    rows[1]["relative_audio_path"] = None
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    got = list(read_rows(tmp_path / "ds", audio_root="/r"))
    assert [r.ref for r in got] == [f"{tmp_path / 'ds'}[train]#{i}" for i in range(3)]
    assert [r.audio for r in got] == ["/r/vox/0.wav", None, "/r/vox/2.wav"] and not got[1].ok
    assert "audio-root" in list(read_rows(tmp_path / "ds"))[0].error  # relative_audio_path needs a root
    # a DatasetDict: the split; an Audio column is not decoded; its path is the audio
    wav = tmp_path / "w.wav"
    import soundfile as sf

    sf.write(wav, np.zeros(160, np.float32), 16000)
    audio_ds = datasets.Dataset.from_dict({"audio": [str(wav)], "text_description": ["calm"]}).cast_column(
        "audio", datasets.Audio(sampling_rate=16000))
    datasets.DatasetDict({"test": audio_ds}).save_to_disk(str(tmp_path / "dd"))
    (row,) = read_rows(str(tmp_path / "dd"), split="test")
    # save_to_disk embeds the audio bytes and keeps only the file name: a path needs the folder of the files
    assert not row.ok and row.ref == f"{tmp_path / 'dd'}[test]#0" and "stored as bytes" in row.error
    assert row.fields["audio"] == {"path": "w.wav", "bytes": None}
    json.dumps(row.fields)
    (row,) = read_rows(str(tmp_path / "dd"), audio_root=str(tmp_path), split="test")
    assert row.ok and row.audio == str(wav)
    # a dataset whose Audio column names files by absolute path (bytes not embedded)
    datasets.Dataset.from_dict({"audio": [{"path": str(wav), "bytes": None}]}).save_to_disk(str(tmp_path / "paths"))
    (row,) = read_rows(tmp_path / "paths")
    assert row.ok and row.audio == str(wav)
    (missing,) = read_rows(tmp_path / "dd", split="train")
    assert not missing.ok and "no split 'train'" in missing.error and missing.ref == f"{tmp_path / 'dd'}[train]"


def test_hub_name_failure_is_a_bad_row(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    (row,) = read_rows("nobody-here/no-such-dataset-xyz", split="test")
    assert not row.ok and row.ref == "nobody-here/no-such-dataset-xyz[test]" and "cannot load dataset" in row.error


# --------------------------------------------------------------------------------------------- Lhotse cuts
def _cut(i, source, text="hello", custom=None):
    return {"id": f"c{i}", "start": 0.5, "duration": 1.0, "channel": 0,
            "supervisions": [{"id": f"s{i}", "recording_id": f"r{i}", "start": 0.0, "duration": 1.0, "channel": 0,
                              "text": text, "speaker": "spk1", "language": "en"}],
            "recording": {"id": f"r{i}", "sources": [source], "sampling_rate": 16000, "num_samples": 32000,
                          "duration": 2.0, "channel_ids": [0]},
            "custom": custom or {}, "type": "MonoCut"}


@pytest.mark.parametrize("with_lhotse", [True, False])
def test_lhotse_cuts(tmp_path, monkeypatch, with_lhotse):
    if with_lhotse:
        pytest.importorskip("lhotse")
    else:
        import sys

        monkeypatch.setitem(sys.modules, "lhotse.serialization", None)  # as if lhotse were not installed
    cuts = [_cut(0, {"type": "file", "channels": [0], "source": "audio/a.wav"},
                 custom={"text_description": "A calm voice."}),
            _cut(1, {"type": "url", "channels": [0], "source": "https://example.org/b.wav"}),
            _cut(2, {"type": "file", "channels": [0], "source": "/abs/c.wav"})]
    path = tmp_path / "cuts.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(json.dumps(cuts[0]) + "\n{broken\n" + json.dumps(cuts[1]) + "\n" + json.dumps(cuts[2]) + "\n")
    rows = list(read_rows(path))
    assert [r.ref for r in rows] == [f"{path}:{n}" for n in (1, 2, 3, 4)]
    assert [r.ok for r in rows] == [True, False, False, True]
    first = rows[0]
    assert first.audio == str(tmp_path / "audio" / "a.wav")
    assert {k: first.fields[k] for k in ("id", "start", "duration", "recording_id", "sampling_rate", "text",
                                         "speaker", "language", "text_description")} == {
        "id": "c0", "start": 0.5, "duration": 1.0, "recording_id": "r0", "sampling_rate": 16000, "text": "hello",
        "speaker": "spk1", "language": "en", "text_description": "A calm voice."}
    assert "no file source" in rows[2].error and "url" in rows[2].error
    assert rows[3].audio == "/abs/c.wav"
    json.dumps([r.fields for r in rows])
    assert _good(read_rows(path, audio_root="/data"))[0].audio == "/data/audio/a.wav"


def test_lhotse_cuts_written_by_lhotse(tmp_path):
    lhotse = pytest.importorskip("lhotse")
    from lhotse.audio import AudioSource

    rec = lhotse.Recording(id="r", sources=[AudioSource(type="file", channels=[0], source=str(tmp_path / "r.wav"))],
                           sampling_rate=16000, num_samples=16000, duration=1.0)
    cut = lhotse.MonoCut(id="c", start=0.0, duration=1.0, channel=0, recording=rec,
                         supervisions=[lhotse.SupervisionSegment(id="s", recording_id="r", start=0, duration=1.0,
                                                                 text="hi")])
    lhotse.CutSet.from_cuts([cut]).to_file(tmp_path / "cuts.jsonl.gz")
    (row,) = read_rows(tmp_path / "cuts.jsonl.gz")
    assert row.ok and row.audio == str(tmp_path / "r.wav") and row.fields["text"] == "hi"


# --------------------------------------------------------------------------------------------- files, globs, folders
def test_files_globs_and_folders(tmp_path):
    for name in ("b.wav", "a.flac", "sub/c.WAV", "sub/deeper/d.mp3", "notes.txt"):
        (tmp_path / "f" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "f" / name).write_bytes(b"x")
    folder = tmp_path / "f"
    rows = list(read_rows(folder))
    expected = sorted(str(folder / n) for n in ("b.wav", "a.flac", "sub/c.WAV", "sub/deeper/d.mp3"))
    assert [r.audio for r in rows] == expected and [r.ref for r in rows] == expected
    assert all(r.ok and r.fields == {"path": r.audio} for r in rows)
    assert ".wav" in AUDIO_SUFFIXES and ".txt" not in AUDIO_SUFFIXES
    # a glob: matching files, sorted; a manifest among them is read as one
    (folder / "m.jsonl").write_text('{"path": "b.wav"}\n')
    rows = list(read_rows(str(folder / "*")))
    assert [r.ref for r in rows] == [str(folder / "a.flac"), str(folder / "b.wav"), f"{folder / 'm.jsonl'}:1",
                                     str(folder / "notes.txt")]
    assert rows[2].audio == str(folder / "b.wav")
    rows = list(read_rows(str(folder / "**" / "*.wav"), audio_root=None))
    assert [r.audio for r in rows] == [str(folder / "b.wav")]  # glob matching is case-sensitive
    (nothing,) = read_rows(str(tmp_path / "*.nothing"))
    assert not nothing.ok and nothing.error == "no files match"
    # several inputs, in order; a file that does not exist is still a row (the decoder reports it)
    rows = list(read_rows([folder / "b.wav", str(tmp_path / "missing.wav"), tmp_path / "missing.jsonl"]))
    assert [(r.ref, r.ok) for r in rows] == [(str(folder / "b.wav"), True), (str(tmp_path / "missing.wav"), True),
                                             (str(tmp_path / "missing.jsonl"), False)]
    assert rows[2].error == "manifest not found"
    (tmp_path / "empty").mkdir()
    (empty,) = read_rows(tmp_path / "empty")
    assert not empty.ok and "no audio files" in empty.error


def test_row_dataclass():
    row = Row("x", "x.wav", {"path": "x.wav"})
    assert row.ok and Row("x", None, {}, "bad").ok is False
    assert isinstance(Path(row.audio), Path)
