"""scripts/eval_mini_tags.py: per-clip accuracy and precision of the tags against what the corpus claims, coverage."""
from __future__ import annotations

import json

from repo_scripts import load_script

from paraspeechclap.annotate.attributes import Attribute, AttributeTable


def _row(audio, **attrs):
    base = {"gender": "male", "pitch_level": "medium", "rate_level": "measured", "range_level": "neutral",
            "voice_quality": "normal", "delivery": "flowing"}
    return dict(base, **attrs, _audio=audio)


def test_a_tag_where_the_corpus_claims_nothing_is_wrong_and_coverage_counts_every_clip():
    script = load_script("eval_mini_tags")
    table = AttributeTable("t", "A {} style.", [
        Attribute("pitch", ["deep", "medium-pitched", "high-pitched"], neutral=["medium-pitched"]),
        Attribute("range", ["monotonous", "singsong"], withheld=["singsong"])])
    rows = [_row("a", pitch_level="low", range_level="monotonous"),
            _row("b", pitch_level="high"),                               # neutral range: claims no range class
            _row("c", voice_quality="whispered", pitch_level=None, range_level=None),
            _row("d")]
    tags = {"a": ["deep", "monotonous"], "b": ["high-pitched", "singsong"], "c": ["deep"], "d": []}
    f = script.figures(table, rows, tags)
    assert (f["pitch"]["right"], f["pitch"]["tagged"], f["pitch"]["clips"]) == (2, 3, 4)
    assert f["pitch"]["precision"] == 2 / 3 and f["pitch"]["coverage"] == 3 / 4
    assert f["pitch"]["wrong"] == {"no claim -> deep": 1}
    assert (f["pitch"]["taggable"], f["pitch"]["recall"]) == (2, 1.0)  # deep + high; medium is neutral
    assert (f["range"]["right"], f["range"]["tagged"], f["range"]["wrong"]) == (1, 2, {"no claim -> singsong": 1})
    assert f["range"]["taggable"] == 1 and f["range"]["per_class"]["singsong"]["withheld"]  # withheld still counts
    md = script.to_markdown({"attributes": f})
    assert "| pitch | 75.0 [30.1, 95.4] | 3 / 4 | 66.7 | 2 / 3 | 75.0 |" in md and "**no**" in md
    assert f["pitch"]["per_clip_ci95"] == [0.3006, 0.9544]  # Wilson, 95 %: 3 of 4


def test_per_clip_counts_an_untagged_neutral_or_unclaimed_clip_right_and_a_missed_class_wrong():
    script = load_script("eval_mini_tags")
    table = AttributeTable("t", "A {} style.", [
        Attribute("pitch", ["deep", "medium-pitched", "high-pitched"], neutral=["medium-pitched"]),
        Attribute("range", ["monotonous", "singsong"], withheld=["singsong"])])
    rows = [_row("mono", range_level="monotonous"),                      # tagged monotonous: right
            _row("sing", range_level="singsong"),                        # withheld, so untagged: wrong
            _row("neutral"),                                             # untagged neutral range: right
            _row("whisper", voice_quality="whispered", pitch_level=None, range_level=None),  # untagged: right
            _row("low", pitch_level="low"),                              # untagged deep: wrong; neutral range right
            _row("high", pitch_level="high", range_level="monotonous")]  # high tagged deep, mono untagged: wrong
    tags = {"mono": ["monotonous"], "sing": [], "neutral": [], "whisper": [], "low": [], "high": ["deep"]}
    f = script.figures(table, rows, tags)
    assert (f["range"]["clips_right"], f["range"]["clips"]) == (4, 6) and f["range"]["per_clip"] == 4 / 6
    assert f["range"]["precision"] == 1.0                                # one tag, right: precision hides the misses
    assert (f["pitch"]["clips_right"], f["pitch"]["per_clip"]) == (4, 4 / 6)   # medium x4 untagged + whisper
    assert script.target_met(f["range"], 0.9) is False and script.target_met(f["range"], 0.5) is True
    assert script.target_met(f["range"], None) is None
    md = script.to_markdown({"attributes": f})
    assert "| range | 66.7 [30.0, 90.3] | 4 / 6 | 100.0 | 1 / 1 |" in md and "| 90.0 | **no** |" in md


def test_refuses_a_small_corpus_or_the_calibration_corpus(tmp_path):
    script = load_script("eval_mini_tags")
    (tmp_path / "verification.json").write_text(json.dumps({
        "generated": 3, "render_errors": 0, "kept": 3, "dropped": 0, "kept_per_split": {}, "generated_per_split": {},
        "drop_reasons": {}, "agreement": {}, "thresholds": {}, "settings": {"seed": 7, "num_clips": 3}}))
    table = AttributeTable("t", "A {} style.", [Attribute("x", ["a", "b"])], calibration={"corpus": {"seed": 7}})
    assert "fewer than 500" in script.refuse_reason(tmp_path, table, [{}] * 3, 500)[0]
    assert "seed 7 is the seed the table was calibrated on" in script.refuse_reason(tmp_path, table, [{}] * 3, 1)[0]
    table.calibration = {"corpus": {"seed": 8}}
    assert script.refuse_reason(tmp_path, table, [{}] * 3, 1)[0] is None
