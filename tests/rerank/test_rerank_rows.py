"""Reranking manifests are read by data.rows: gzip, line numbers of bad rows, and a file that cannot be read."""
import gzip
import json

import pytest

from paraspeechclap.rerank import InputError, read_manifest


def test_gzipped_manifest_and_line_refs(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"x")
    path = tmp_path / "m.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(json.dumps({"id": "p", "caption": "A deep voice.", "candidates": ["a.wav"]}) + "\n\n[1]\n")
    data = read_manifest(path)
    assert [(p.id, [c.path for c in p.candidates]) for p in data.prompts] == [("p", [tmp_path / "a.wav"])]
    assert data.issues == [f"{path}:3: expected a JSON object, got list; row skipped"] and data.num_lines == 2
    (tmp_path / "broken.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(InputError, match="cannot read"):
        read_manifest(tmp_path / "broken.jsonl.gz")
    (tmp_path / "m.csv").write_text("caption\nx\n")
    with pytest.raises(InputError, match=".jsonl"):
        read_manifest(tmp_path / "m.csv")
