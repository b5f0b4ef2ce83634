"""paraspeechclap.fileio.read_jsonl: a bad line is reported with its number and skipped, the rest are read."""
from __future__ import annotations

import os

from paraspeechclap.fileio import read_jsonl


def test_read_jsonl_reports_bad_lines_and_reads_the_rest(tmp_path, capsys):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\nnot json\n[1, 2]\n{"a": 2}\n')
    assert list(read_jsonl(path)) == [{"a": 1}, {"a": 2}]
    err = capsys.readouterr().err
    assert "rows.jsonl:3: not a JSON object" in err and "rows.jsonl:4: not a JSON object" in err
    assert ":2:" not in err  # a blank line is not an error


def test_file_records_stream_and_checks_say_what_is_wrong(tmp_path):
    import hashlib

    from paraspeechclap.fileio import check_file, check_tree, file_record, tree_records

    data = os.urandom(3 * (1 << 20) + 17)  # more than one 1 MiB block
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "big.bin").write_bytes(data)
    (tmp_path / "small").write_text("abc")
    assert file_record(tmp_path / "sub" / "big.bin") == {"sha256": hashlib.sha256(data).hexdigest(),
                                                         "bytes": len(data)}
    records = tree_records(tmp_path, exclude=["small"])
    assert list(records) == ["sub/big.bin"]
    assert check_tree(tmp_path, records) == {}
    flipped = bytearray(data)
    flipped[2 << 20] ^= 1
    (tmp_path / "sub" / "big.bin").write_bytes(bytes(flipped))
    assert check_tree(tmp_path, records) == {"sub/big.bin": "SHA-256 differs from the record (contents altered)"}
    (tmp_path / "sub" / "big.bin").write_bytes(data[:100])
    assert check_file(tmp_path / "sub" / "big.bin", records["sub/big.bin"]) == f"100 bytes, recorded {len(data)}"
    assert check_file(tmp_path / "nothing", records["sub/big.bin"]) == "missing"
    assert check_file(tmp_path / "sub", records["sub/big.bin"]) == "not a regular file"
    assert check_file(tmp_path / "small", {"bytes": 3}) is None  # a size-only record: checked by size
    assert check_tree(tmp_path, {"../small": {"bytes": 3}}) == {"../small": "not a path inside the folder"}


def test_remove_temporaries_takes_only_the_pattern(tmp_path):
    from paraspeechclap.fileio import atomic_path, remove_temporaries, temporary_name, temporary_pattern

    target = tmp_path / "train-00001.parquet"
    leftover = temporary_name(target)
    leftover.write_text("half")
    kept = [tmp_path / ".train-00001.parquet.tmp", tmp_path / ".other.parquet.0123456789ab.tmp",
            tmp_path / "train-00001.parquet"]
    for p in kept:
        p.write_text("keep")
    pattern = temporary_pattern(r"train-\d{5}\.parquet")
    with atomic_path(tmp_path / "x.txt") as tmp:  # a name atomic_path makes matches temporary_pattern's form
        assert temporary_pattern(r"x\.txt").match(os.path.basename(tmp))
    assert remove_temporaries(tmp_path, pattern) == [leftover]
    assert all(p.read_text() == "keep" for p in kept)
    assert remove_temporaries(tmp_path / "absent", pattern) == []
