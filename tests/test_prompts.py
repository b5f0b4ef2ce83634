"""Prompt templates: plain substitution of exactly one ``{}``, the same in the library, the CLI and the service."""
from __future__ import annotations

import random

import pytest

from paraspeechclap.prompts import DEFAULT_TEMPLATE, MAX_PROMPT_CHARS, check_template, fill_template, tag_prompt


def test_fill_is_plain_substitution_of_one_slot():
    assert fill_template(DEFAULT_TEMPLATE, "calm") == "A person is speaking in a calm style."
    assert fill_template("{}", "{0} {}") == "{0} {}"                   # the label is inserted as it is


@pytest.mark.parametrize("template", ["say {} {{not a slot}}", "{} {0.__class__}", "{} {x:>10}", "{:>10000000}{{}}",
                                      "{} }", "{ {}"])
def test_format_fields_beside_the_slot_are_refused(template):
    """str.format habits are refused, not kept as text: the issue's bomb ``{:>10000000}{{}}`` included."""
    with pytest.raises(ValueError, match="no braces besides"):
        check_template(template)


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
    """A template that str.format would read as a format spec or an attribute access is refused by classify and by
    an attribute table alike, before any text is embedded."""
    from paraspeechclap.annotate.attributes import AttributeTable

    expected = tiny_model.embed_text(["Voice deep.", "Voice high."])
    assert abs(tiny_model.embed_prompts(["deep", "high"], "Voice {}.") - expected).max() < 1e-5
    with pytest.raises(ValueError, match="no braces besides"):
        tiny_model.embed_prompts(["deep", "high"], "{} {0.__class__} {x:>9}")
    with pytest.raises(ValueError, match="exactly one"):
        tiny_model.classify_embeddings(expected[:1], ["deep", "high"], "{x} {} {}")
    assert AttributeTable("t", "Voice {}.", []).caption(["deep", "calm"]) == "Voice deep and calm."
    with pytest.raises(ValueError, match="no braces besides"):
        AttributeTable("t", "Voice {} {{x}}.", []).caption(["deep", "calm"])
