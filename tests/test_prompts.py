"""Prompt templates: plain substitution of exactly one ``{}``, the same in the library, the CLI and the service."""
from __future__ import annotations

import random

import pytest

from paraspeechclap.prompts import DEFAULT_TEMPLATE, MAX_PROMPT_CHARS, check_template, fill_template, tag_prompt


def test_fill_is_plain_substitution_of_one_slot():
    assert fill_template(DEFAULT_TEMPLATE, "calm") == "A person is speaking in a calm style."
    # braces around the slot and format syntax elsewhere are text, not instructions
    assert fill_template("say {} {{not a slot}}", "hi") == "say hi {{not a slot}}"
    assert fill_template("{} {0.__class__} {x:>10}", "a") == "a {0.__class__} {x:>10}"
    assert fill_template("{}", "{0} {}") == "{0} {}"                   # the label is inserted as it is
    # the bomb: its one '{}' is the middle of '{{}}'; filled as text, nothing widened
    assert fill_template("{:>10000000}{{}}", "deep") == "{:>10000000}{deep}"


@pytest.mark.parametrize("template", ["no slot", "{} and {}", "{{}} {}", "{x} {0}", 7, None])
def test_templates_without_exactly_one_slot_are_refused(template):
    with pytest.raises(ValueError, match="exactly one|must be a string"):
        fill_template(template, "a")
    with pytest.raises(ValueError):
        check_template(template)


def test_filled_length_is_capped():
    assert len(fill_template("{}", "a" * MAX_PROMPT_CHARS)) == MAX_PROMPT_CHARS
    with pytest.raises(ValueError, match="limit is"):
        fill_template("{}!", "a" * MAX_PROMPT_CHARS)
    with pytest.raises(ValueError, match="limit is 10"):
        fill_template("{}", "a" * 11, max_chars=10)


def test_tag_prompt_falls_back_through_the_filler():
    assert tag_prompt("deep", None, random.Random(0)) == "A person is speaking in a deep style."


def test_the_model_and_the_annotator_use_the_one_filler(tiny_model):
    """A template that str.format would read as a format spec or an attribute access is plain text to classify."""
    from paraspeechclap.annotate.attributes import AttributeTable

    weird = "{} {0.__class__} {x:>9}"
    # str.format would have raised (or filled in an attribute); the filler keeps the text as it is
    expected = tiny_model.embed_text(["deep {0.__class__} {x:>9}", "high {0.__class__} {x:>9}"])
    got = tiny_model.embed_prompts(["deep", "high"], weird)
    assert abs(got - expected).max() < 1e-5
    with pytest.raises(ValueError, match="exactly one"):
        tiny_model.classify_embeddings(expected[:1], ["deep", "high"], "{x} {} {}")
    table = AttributeTable("t", "Voice {} {{x}}.", [])
    assert table.caption(["deep", "calm"]) == "Voice deep and calm {{x}}."
