"""paraspeechclap.fileio.read_jsonl: a bad line is reported with its number and skipped, the rest are read."""
from __future__ import annotations

from paraspeechclap.fileio import read_jsonl


def test_read_jsonl_reports_bad_lines_and_reads_the_rest(tmp_path, capsys):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\nnot json\n[1, 2]\n{"a": 2}\n')
    assert list(read_jsonl(path)) == [{"a": 1}, {"a": 2}]
    err = capsys.readouterr().err
    assert "rows.jsonl:3: not a JSON object" in err and "rows.jsonl:4: not a JSON object" in err
    assert ":2:" not in err  # a blank line is not an error
