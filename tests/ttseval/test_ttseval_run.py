"""``evaluate_systems``: the signature reproduces its numbers (a second run, a copy of the inputs elsewhere), the
cache makes a rerun cheap, and labels given in the prompts file are used."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from paraspeechclap.ttseval import evaluate_systems, parse_signature

from tts_helpers import needs_espeak

pytestmark = needs_espeak
FAST = dict(n_boot=200, n_permutations=200)


def _numbers(doc: dict) -> dict:
    """Every number of a report (view statistics and clip scores), keyed by where it is; no paths, no times."""
    out = {}

    def walk(value, key):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}/{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{key}/{i}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = value

    walk(doc["views"], "views")
    for rec in doc["clips"]:
        for k in ("cosine", "contrastive", "contrastive_win", "attribute"):
            out[f"clip/{rec['system']}/{rec['prompt']}/{k}"] = rec[k]
    return out


def test_same_signature_same_numbers_twice_and_from_a_copy(bench, tmp_path, mini):
    systems = {"good": bench / "good", "bad": bench / "bad"}
    first = evaluate_systems(bench / "prompts.jsonl", systems, mini, cache_dir=None, **FAST)
    second = evaluate_systems(bench / "prompts.jsonl", systems, mini, cache_dir=None, **FAST)
    copy = tmp_path / "elsewhere"
    shutil.copytree(bench, copy)
    third = evaluate_systems(copy / "prompts.jsonl", {"good": copy / "good", "bad": copy / "bad"}, mini,
                             cache_dir=None, **FAST)
    assert first.signature == second.signature == third.signature
    a, b, c = _numbers(first.doc), _numbers(second.doc), _numbers(third.doc)
    assert a.keys() == b.keys() == c.keys() and len(a) > 200
    for key in a:  # the stated tolerance on the fp32 path: 1e-5 (here, one machine: identical)
        assert b[key] == pytest.approx(a[key], abs=1e-5) and c[key] == pytest.approx(a[key], abs=1e-5), key
    other = evaluate_systems(bench / "prompts.jsonl", systems, mini, cache_dir=None, n_boot=200, n_permutations=200,
                             seed=1)
    assert parse_signature(other.signature)["seed"] == "1" and other.signature != first.signature
    mean = lambda r: r.doc["views"]["all"]["scores"]["contrastive"]["systems"]["good"]  # noqa: E731
    assert mean(other)["mean"] == mean(first)["mean"] and mean(other)["lo"] != mean(first)["lo"]


def test_the_cache_makes_a_rerun_cheap(bench, tmp_path, mini):
    systems = {"good": bench / "good"}
    cold = evaluate_systems(bench / "prompts.jsonl", systems, mini, cache_dir=tmp_path / "cache", **FAST)
    warm = evaluate_systems(bench / "prompts.jsonl", systems, mini, cache_dir=tmp_path / "cache", **FAST)
    assert cold.doc["cache"]["embedded"] == 6 and warm.doc["cache"]["embedded"] == 0
    assert warm.doc["cache"]["reused"] == 6
    np.testing.assert_array_equal(cold.scores.contrastive, warm.scores.contrastive)


def test_labels_from_the_prompts_file(bench, tmp_path, mini):
    rows = [json.loads(line) for line in (bench / "prompts.jsonl").read_text().splitlines()]
    rows[0]["labels"] = {"pitch": "deep", "rate": "slow"}      # what the caption says
    rows[1]["labels"] = ["fast"]                                # a list of class words
    rows[2]["labels"] = {"pitch": "squeaky", "loudness": "x"}   # not classes of the model's table
    rows[4]["labels"] = {"pitch": "high-pitched"}              # the caption says deep
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = evaluate_systems(prompts, {"good": bench / "good"}, mini, cache_dir=None, **FAST)
    intended = [item["intended"] for item in result.doc["prompts"]["items"]]
    assert intended[0] == {"pitch": "deep", "rate": "slow"} and intended[1] == {"rate": "fast"}
    assert intended[3] == {"gender": "female", "pitch": "high-pitched", "rate": "fast"}  # parsed from the caption
    bad = [p for p in result.problems if p.kind == "bad_label"]
    assert len(bad) == 2 and all(p.prompt == "p2" and p.severity == "warning" for p in bad)
    mismatch = [p for p in result.problems if p.kind == "label_mismatch"]
    assert [(p.prompt, p.severity) for p in mismatch] == [("p4", "warning")] and "deep" in mismatch[0].message
    assert not result.failed
