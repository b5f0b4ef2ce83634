"""The filter rule (search --where, /v1/search, Index.search): expressions over the annotation columns pass; files,
subqueries, second statements and clauses are refused with the thing named; the query model must be the index's."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("duckdb")

from test_index import DIM, _vectors, _write_annotations  # noqa: E402

from paraspeechclap.index import FilterError, Index, ModelMismatch, validate_where  # noqa: E402

COLUMNS = ["row", "id", "split", "audio", "duration", "status", "error", "embedding", "pitch", "p_pitch_deep", "p_pitch_high",
           "tags", "caption"]

ACCEPTED = [
    "duration > 3 AND pitch = 'deep'",
    "list_contains(tags, 'deep')",
    "p_pitch_deep > 0.8 OR NOT (duration BETWEEN 1 AND 2)",
    "id IN ('clip001', 'clip002') AND caption IS NULL",
    "id LIKE 'clip0%' AND id NOT ILIKE '%9' AND audio GLOB '/audio/*'",
    "CASE WHEN duration > 2 THEN pitch ELSE 'x' END = 'deep'",
    "duration::INTEGER % 2 = 0 AND lower(pitch) = 'deep' AND len(tags) >= 1",
    "coalesce(caption, '') = '' AND regexp_matches(id, '^clip0[0-4]') AND tags[1] = 'deep'",
    "duration > 1 -- a trailing comment",
]

REFUSED = {
    "len(read_text('/etc/hostname')) > 0": "the function read_text() is not allowed",
    "(SELECT count(*) FROM read_csv('/etc/hostname')) > 0": "a subquery is not allowed",
    "id IN (SELECT id FROM clips)": "a subquery is not allowed",
    "EXISTS (SELECT 1)": "a subquery is not allowed",
    "1 = 1; COPY (SELECT 1) TO '{out}'": "a second statement is refused",
    "1) UNION SELECT 1 FROM read_csv('/etc/hostname') WHERE (1": "a clause after it",
    "1) GROUP BY (1": "a clause after it",
    "getenv('HOME') = ''": "the function getenv() is not allowed",
    "current_setting('threads') = 2": "the function current_setting() is not allowed",
    "COLUMNS(*) IS NULL": "* or COLUMNS(...) is not allowed",
    "duration > ?": "a parameter (? or $n) is not allowed",
    "list_filter(tags, t -> t = 'a') = []": "the function list_filter() is not allowed",
    "no_such_column > 1": "unknown column 'no_such_column'",
    "clips.duration > 1": "unknown column 'clips.duration'",
    "duration > ": "not a valid filter expression",
    "": "the filter is empty",
    "duration > 1" + " " * 5000: "the limit is 4096",
}


@pytest.mark.parametrize("where", ACCEPTED)
def test_expressions_over_the_columns_pass(where):
    assert validate_where(where, COLUMNS) == where


@pytest.mark.parametrize("where", sorted(REFUSED))
def test_refused_with_what_was_refused(where, tmp_path):
    out = tmp_path / "written.csv"
    with pytest.raises(FilterError, match=_escape(REFUSED[where])):
        validate_where(where.format(out=out), COLUMNS)
    assert not out.exists()


def _escape(text: str) -> str:
    import re

    return re.escape(text)


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    vectors = _vectors(50)
    ann = tmp_path_factory.mktemp("filters") / "ann"
    _write_annotations(ann, vectors, shards=[0, 1])
    return Index.build(ann), vectors


def test_the_index_applies_the_rule_and_its_connection_reads_only_the_shards(index, tmp_path):
    idx, vectors = index
    assert set(idx.columns) == set(COLUMNS)
    assert set(idx.filter_rows("pitch = 'deep' AND duration >= 4")) == {i for i in range(50)
                                                                           if i % 2 and 1 + i % 5 >= 4 and i != 3}
    out = tmp_path / "copied.csv"
    for where in (f"1 = 1; COPY (SELECT 1) TO '{out}'", "len(read_text('/etc/hostname')) > 0"):
        with pytest.raises(FilterError):
            idx.search_vector(vectors[0], top=3, where=where)
    assert not out.exists()
    import duckdb

    with pytest.raises(duckdb.Error, match="(?i)permission|disabled"):  # defence in depth, under the rule
        idx.sql.execute("SELECT * FROM read_csv('/etc/hostname')").fetchall()
    with pytest.raises(duckdb.Error):
        idx.sql.execute("SET enable_external_access = true").fetchall()


def test_another_model_is_refused_naming_both(index, tmp_path, capsys):
    import os

    from paraspeechclap import ParaSpeechCLAP
    from paraspeechclap.cli import main

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    idx, vectors = index
    mini = ParaSpeechCLAP.from_pretrained("mini", device="cpu", precision="fp32")
    with pytest.raises(ModelMismatch) as err:
        idx.search("a deep voice", model=mini)
    message = str(err.value)
    dim = mini.config.embedding_dim
    assert f"'fake' (identity abc, dimension {DIM}," in message
    assert f"(identity {mini.identity()}, dimension {dim}," in message
    assert main(["search", str(idx.folder), "a deep voice", "--model", "mini"]) == 2
    stderr = capsys.readouterr().err
    assert "identity abc, dimension 16" in stderr and "Traceback" not in stderr and "AssertionError" not in stderr
    assert main(["search", str(idx.folder), "a deep voice", "--where", "len(read_text('/etc/hostname')) > 0"]) == 2
    assert "error: --where: the function read_text() is not allowed" in capsys.readouterr().err
    assert np.isfinite(idx.search_vector(vectors[1], top=2)[0][1])  # the index itself still works
