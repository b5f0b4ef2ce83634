"""Input rows of an annotation job: the split rule (a row's own, the job's, the one its manifest's name names,
else train)."""
from __future__ import annotations

import json

import pytest

from paraspeechclap.annotate.inputs import plan_rows, split_named_by


@pytest.mark.parametrize("name, split", [("test.jsonl", "test"), ("dev.csv", "validation"),
                                         ("my_valid_rows.parquet", "validation"), ("train-v2.jsonl", "train"),
                                         ("eval.jsonl", "test"), ("rows.jsonl", None), ("contest.jsonl", None),
                                         ("latest.csv", None)])
def test_split_named_by_a_manifest_name(name, split):
    assert split_named_by(f"/data/{name}") == split


def _manifest(folder, name: str, splits: list) -> str:
    (folder / "a.wav").write_bytes(b"")
    rows = [{"audio": "a.wav", **({"split": s} if s else {})} for s in splits]
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_rows_take_their_own_split_then_the_jobs_then_the_manifest_name(tmp_path):
    test = _manifest(tmp_path, "test.jsonl", [None, "validation"])
    other = _manifest(tmp_path, "rows.jsonl", [None])
    assert [r.split for r in plan_rows([test, other])] == ["test", "validation", "train"]
    assert [r.split for r in plan_rows([test, other], split="extra")] == ["extra", "validation", "extra"]
    assert [r.row for r in plan_rows([test, other])] == [0, 1, 2]
