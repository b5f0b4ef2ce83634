"""The signature: its format, parsing, and that every pinned setting changes it."""
from __future__ import annotations

import copy
import json

import pytest

from paraspeechclap.ttseval.counterfactual import TABLE_FILE, CounterfactualTable, packaged_table
from paraspeechclap.ttseval.gates import packaged_gates
from paraspeechclap.ttseval.signature import ORDER, build_fields, format_signature, parse_signature


def _fields(model, cf=None, boot=1000, seed=0, prompt_set="6@abcdef12"):
    from paraspeechclap.annotate.attributes import table_for_model

    return build_fields(model, cf or packaged_table(), table_for_model(model), packaged_gates(), prompt_set,
                        boot, seed, 0.95)


def test_format_and_parse_round_trip(mini):
    fields = _fields(mini)
    text = format_signature(fields)
    assert text.startswith("ttseval:1|model:mini@" + mini.identity() + "|prec:fp32|pre:")
    assert parse_signature(text) == fields and tuple(fields) == ORDER
    assert "|cf:v1@" in text and "|boot:1000|seed:0|ci:95|" in text


def test_bad_signatures_are_refused(mini):
    text = format_signature(_fields(mini))
    with pytest.raises(ValueError, match="not a ttseval:1"):
        parse_signature("bleu:1|" + text.partition("|")[2])
    with pytest.raises(ValueError, match="not one of"):
        parse_signature(text + "|extra:1")
    with pytest.raises(ValueError, match="missing"):
        format_signature({**_fields(mini), "seed": ""})
    with pytest.raises(ValueError, match="may not contain"):
        format_signature({**_fields(mini), "set": "a|b"})


def test_a_different_model_table_or_resampling_gives_a_different_signature(mini, tiny_model):
    base = format_signature(_fields(mini))
    doc = json.loads(TABLE_FILE.read_text())
    edited = copy.deepcopy(doc)
    edited["attributes"]["rate"]["opposites"]["measured"] = ["fast"]
    assert format_signature(_fields(mini, cf=CounterfactualTable(edited))) != base
    assert format_signature(_fields(mini, boot=2000)) != base
    assert format_signature(_fields(mini, seed=1)) != base
    assert format_signature(_fields(mini, prompt_set="6@00000000")) != base
    other = format_signature(_fields(tiny_model))
    assert parse_signature(other)["model"] != parse_signature(base)["model"]
    assert parse_signature(other)["attr"] != parse_signature(base)["attr"]  # the paper table, not mini's
