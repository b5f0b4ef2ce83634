"""The output language: --format table|json|jsonl|csv|parquet and --out, each with its provenance where plain
readers (pandas, DuckDB, json) still read the data as it is."""
from __future__ import annotations

import argparse
import json

import pytest

from paraspeechclap import output

PROVENANCE = {"model": "mini", "identity": "abc123", "precision": "fp32", "paraspeechclap": "0.1.0"}
ROWS = [{"path": "a.wav", "style": "deep", "probability": 0.75, "tags": ["x", "y"]},
        {"path": "b, c.wav", "style": "shrill", "probability": 0.25, "tags": []}]


def _emit(fmt, out=None):
    output.emit(fmt, out, provenance=PROVENANCE, document={"results": ROWS}, rows=ROWS, table=lambda: "TABLE\n")


def _args(argv, **kw):
    parser = argparse.ArgumentParser()
    output.add_arguments(parser, **kw)
    return parser.parse_args(argv)


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "parquet"])
def test_every_machine_format_carries_the_provenance_and_reads_back(fmt, tmp_path):
    import pandas as pd

    out = tmp_path / f"results.{fmt}"
    _emit(fmt, str(out))
    assert output.read_provenance(out) == PROVENANCE
    if fmt == "json":
        assert json.loads(out.read_text())["results"] == ROWS
        return
    frame = {"jsonl": lambda: pd.read_json(out, lines=True), "csv": lambda: pd.read_csv(out),
             "parquet": lambda: pd.read_parquet(out)}[fmt]()
    assert list(frame["path"]) == ["a.wav", "b, c.wav"] and list(frame["probability"]) == [0.75, 0.25]


def test_duckdb_reads_the_csv_and_parquet_as_written(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    for fmt in ("csv", "parquet"):
        out = tmp_path / f"r.{fmt}"
        _emit(fmt, str(out))
        assert duckdb.sql(f"SELECT path, style FROM '{out}' ORDER BY probability").fetchall() == [
            ("b, c.wav", "shrill"), ("a.wav", "deep")]


def test_stdout_formats_and_the_provenance_line_on_stderr(capsys):
    _emit("table")
    assert capsys.readouterr().out == "TABLE\n"
    _emit("csv")
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == "path,style,probability,tags" and "a.wav,deep,0.750000,x;y" in captured.out
    assert captured.err.startswith("# provenance: ") and json.loads(captured.err[len("# provenance: "):]) == PROVENANCE
    _emit("json")
    assert json.loads(capsys.readouterr().out)["provenance"] == PROVENANCE


def test_the_format_follows_the_flag_then_the_alias_then_the_suffix(capsys):
    assert output.chosen_format(_args([])) == "table"
    assert output.chosen_format(_args(["--out", "x.parquet"])) == "parquet"
    assert output.chosen_format(_args(["--out", "x.txt"])) == "table"
    assert output.chosen_format(_args(["--format", "jsonl", "--out", "x.csv"])) == "jsonl"
    assert output.chosen_format(_args(["--json"], aliases=("json", "csv"))) == "json"
    assert "--json is deprecated" in capsys.readouterr().err
    with pytest.raises(ValueError, match="contradicts"):
        output.chosen_format(_args(["--csv", "--format", "json"], aliases=("json", "csv")))
    with pytest.raises(ValueError, match="give --out"):
        output.chosen_format(_args(["--format", "parquet"]))
    with pytest.raises(SystemExit):
        _args(["--format", "xml"])


def test_existing_outputs_and_inputs_are_refused(tmp_path):
    out = tmp_path / "r.csv"
    out.write_text("mine")
    with pytest.raises(ValueError, match="exists; pass --overwrite"):
        output.check_output(str(out), [], overwrite=False)
    with pytest.raises(ValueError, match="one of the inputs"):
        output.check_output(str(out), [str(out)], overwrite=True)
    fresh = tmp_path / "new.csv"
    output.sidecar_path(fresh).write_text("{}")
    with pytest.raises(ValueError, match="provenance beside --out"):
        output.check_output(str(fresh), [], overwrite=False)
    output.check_output(str(fresh), [], overwrite=True)
