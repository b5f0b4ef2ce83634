"""The attribute table's per-clip rule: right with the true class, or untagged where a neutral class or none is
claimed."""
from __future__ import annotations

from paraspeechclap.annotate.attributes import Attribute


def test_a_clip_is_right_with_its_class_or_untagged_where_nothing_is_claimed():
    pitch = Attribute("pitch", ["deep", "medium", "high-pitched"], neutral=["medium"])
    assert pitch.clip_right("deep", "deep") and not pitch.clip_right("deep", "high-pitched")
    assert pitch.clip_right(None, "medium") and pitch.clip_right(None, None)
    assert not pitch.clip_right(None, "deep")          # a claimed class left untagged is a miss
    assert not pitch.clip_right("deep", "medium")      # a tag where the corpus claims neutral is wrong
    assert pitch.unclaimed("medium") and pitch.unclaimed(None) and not pitch.unclaimed("deep")
