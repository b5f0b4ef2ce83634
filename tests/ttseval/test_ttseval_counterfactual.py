"""The counterfactual table: parsing captions into named classes, rewriting one attribute, validation, identity."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from paraspeechclap.ttseval.counterfactual import TABLE_FILE, CounterfactualTable, packaged_table

PITCH = {"low": "deep", "medium": "medium-pitched", "high": "high-pitched"}
QUALITY = {"whispered": "whispered", "creaky": "vocal-fry", "normal": "normal"}


def test_every_synth_caption_is_parsed_into_its_own_style():
    """2,000 captions of the synthetic corpus (training and held-out wording): the parse names exactly the classes the
    caption was written from (optional attributes only when present; a "shrill" adjective is high pitch)."""
    from paraspeechclap.synth import styles as S
    from paraspeechclap.synth.captions import full_caption

    table = packaged_table()
    rng = np.random.default_rng(0)
    for i in range(2000):
        a = {k: list(S.LEVEL_PROBS[k])[int(rng.integers(len(S.LEVEL_PROBS[k])))] for k in S.LEVEL_PROBS}
        if a["quality"] == "creaky":
            a["range"] = "neutral"
        caption = full_caption(a, bool(i % 2), rng)
        parse = table.parse(caption)
        got = dict(parse.classes)
        if got.get("pitch") == "shrill":
            got["pitch"] = "high-pitched"
        want = {"gender": a["gender"], "rate": a["rate"]}
        if a["quality"] != "whispered":
            want["pitch"] = PITCH[a["pitch"]]
            if a["range"] != "neutral":
                want["range"] = a["range"]
        if a["quality"] != "normal" or "voice_quality" in got:
            want["voice_quality"] = QUALITY[a["quality"]]
        if a["delivery"] != "flowing" or "delivery" in got:
            want["delivery"] = a["delivery"]
        assert got == want and not parse.problems, caption


def test_counterfactuals_flip_one_attribute_each():
    cfs, parse = packaged_table().counterfactuals("A deep-voiced man speaks slowly.")
    assert parse.classes == {"pitch": "deep", "gender": "male", "rate": "slow"}
    assert {(c.attribute, c.target): c.caption for c in cfs} == {
        ("pitch", "high-pitched"): "A high-pitched-voiced man speaks slowly.",
        ("gender", "female"): "A deep-voiced woman speaks slowly.",
        ("rate", "fast"): "A deep-voiced man speaks quickly.",
    }


def test_a_neutral_class_flips_to_every_opposite_and_phrases_keep_their_grammar():
    cfs, _ = packaged_table().counterfactuals("Neither fast nor slow, a medium-pitched speaker talks in a whisper.")
    got = {(c.attribute, c.target): c.caption for c in cfs}
    assert got[("rate", "slow")] == "Slowly, a medium-pitched speaker talks in a whisper."
    assert got[("rate", "fast")] == "Quickly, a medium-pitched speaker talks in a whisper."
    assert got[("pitch", "deep")] == "Neither fast nor slow, a deep speaker talks in a whisper."
    assert got[("voice_quality", "normal")] == "Neither fast nor slow, a medium-pitched speaker talks in a normal voice."


def test_whole_words_and_longest_phrase_first():
    table = packaged_table()
    assert table.parse("A female voice.").classes == {"gender": "female"}          # not "male" inside "female"
    assert table.parse("A woman speaks.").classes == {"gender": "female"}          # not "man" inside "woman"
    assert table.parse("She speaks in a soft whisper.").classes == {"gender": "female", "voice_quality": "whispered"}
    assert table.parse("A person is speaking in a vocal-fry style.").classes == {"voice_quality": "vocal-fry"}
    assert table.parse("He talks unhurriedly.").classes == {"gender": "male", "rate": "slow"}  # not "hurriedly"


def test_ambiguous_and_unflippable_attributes_are_reported():
    table = packaged_table()
    cfs, parse = table.counterfactuals("A deep and high-pitched voice.")
    assert cfs == [] and "pitch" not in parse.classes and "left out" in parse.problems[0]
    cfs, parse = table.counterfactuals("A nasal voice.")
    assert cfs == [] and parse.classes == {"pitch": "nasal"} and "no opposite" in parse.problems[0]
    cfs, parse = table.counterfactuals("Somebody reads the news.")
    assert cfs == [] and parse.classes == {} and parse.problems == []


def _doc():
    return json.loads(TABLE_FILE.read_text(encoding="utf-8"))


def test_table_validation_names_what_is_wrong(tmp_path):
    doc = _doc()
    del doc["attributes"]["rate"]["replace"]["adv"]["fast"]
    with pytest.raises(ValueError, match=r"no replacement for form 'adv' -> 'fast'"):
        CounterfactualTable(doc)
    doc = _doc()
    doc["attributes"]["rate"]["phrases"]["fast"]["adj"].append("deep")
    with pytest.raises(ValueError, match="listed twice"):
        CounterfactualTable(doc)
    doc = _doc()
    doc["attributes"]["rate"]["opposites"]["slow"] = ["slow"]
    with pytest.raises(ValueError, match="another class"):
        CounterfactualTable(doc)
    with pytest.raises(ValueError, match="format"):
        CounterfactualTable({**_doc(), "format": "x"})
    bad = tmp_path / "t.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        CounterfactualTable.from_file(bad)


def test_identity_is_the_version_and_a_content_hash():
    table = packaged_table()
    assert table.identity().startswith("v1@") and table.identity() == CounterfactualTable(_doc()).identity()
    edited = copy.deepcopy(_doc())
    edited["attributes"]["rate"]["phrases"]["fast"]["adj"].append("zippy")
    other = CounterfactualTable(edited)
    assert other.version == "v1" and other.identity() != table.identity()
    assert other.parse("A zippy talker.").classes == {"rate": "fast"}
