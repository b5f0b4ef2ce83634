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


def _probe_table(dim: int = 4):
    """A table whose range attribute has a probe: singsong along x0, monotonous along x1, none along x2."""
    from paraspeechclap.annotate.attributes import AttributeTable

    weights = [[0.0] * dim for _ in range(3)]
    weights[0][1], weights[1][0], weights[2][2] = 30.0, 30.0, 30.0
    return AttributeTable.from_dict({"attributes": {
        "range": {"classes": ["monotonous", "singsong"], "thresholds": {"monotonous": 0.99}, "withheld": ["singsong"],
                  "not_with": {"quality": ["whispered"]},
                  "probe": {"outcomes": ["monotonous", "singsong", "none"], "dim": dim, "weights": weights,
                            "bias": [0.0, 0.0, 0.0], "lambda": 0.001}},
        "quality": {"classes": ["normal", "whispered"], "neutral": ["normal"], "threshold": 0.6}}})


def test_a_probe_gives_the_probabilities_and_tags_and_gates_still_apply():
    import numpy as np

    table = _probe_table()
    emb = np.array([[2.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 3, 0], [1, 0, 0, 0]])  # not unit length: normalised first

    class Model:  # quality is zero-shot: the model classifies it; range never reaches the model
        asked = []

        def classify_embeddings(self, emb, classes, template=None):
            self.asked.append(classes)
            return [dict.fromkeys(classes, 1 / len(classes)) for _ in emb]

    model = Model()
    probs = table.probabilities(model, emb)
    assert model.asked == [["normal", "whispered"]]
    assert table.by_name("range").outcomes == ["monotonous", "singsong", "none"]
    assert [c for _, c, _ in table.probability_columns()][:3] == ["monotonous", "singsong", "none"]
    np.testing.assert_allclose(probs["range"].sum(axis=1), 1.0, atol=1e-6)
    range_tags = [table.by_name("range").tag_of(p) for p in probs["range"]]
    assert range_tags == ["singsong", "monotonous", None, "singsong"]  # singsong withheld from thresholds, not probes
    probs["quality"] = np.array([[1.0, 0], [1.0, 0], [1.0, 0], [0.2, 0.8]])
    assert [table.tags(probs, i) for i in range(4)] == [["singsong"], ["monotonous"], [], ["whispered"]]


def test_a_probe_table_round_trips_and_a_wrong_width_is_refused(tmp_path):
    import copy

    import numpy as np
    import pytest

    from paraspeechclap import schemas
    from paraspeechclap.annotate.attributes import AttributeTable

    table = _probe_table()
    path = schemas.write(tmp_path / "t.json", table.to_dict(), "attribute-table")
    back = AttributeTable.from_file(path)
    assert back.to_dict() == table.to_dict() and back.by_name("range").probe["lambda"] == 0.001
    assert '"lambda": 0.001' in path.read_text() and '"schema": "paraspeechclap.attribute-table/2"' in path.read_text()
    with pytest.raises(ValueError, match=r"t.json: field 'attributes.range.probe.weights' reads 4-d embeddings; "
                                         r"the model gives 8-d ones"):
        back.check_dim(8)
    back.check_dim(4)
    with pytest.raises(ValueError, match=r"field 'attributes.range.probe.weights' reads 4-d"):
        back.probabilities(None, np.zeros((2, 8)))
    doc = copy.deepcopy(table.to_dict())
    doc["attributes"]["range"]["probe"]["weights"][2] = [0.0] * 5
    with pytest.raises(schemas.SchemaError, match=r"bad.json: field 'attributes.range.probe.weights': row 2 has 5 "
                                                  r"values, not dim 4"):
        AttributeTable.from_dict(doc, "bad.json")
    doc["attributes"]["range"]["probe"]["weights"] = doc["attributes"]["range"]["probe"]["weights"][:2]
    with pytest.raises(schemas.SchemaError, match=r"field 'attributes.range.probe.weights': 2 rows, one per outcome"):
        AttributeTable.from_dict(doc, "bad.json")
    doc = copy.deepcopy(table.to_dict())
    doc["attributes"]["range"]["probe"]["outcomes"] = ["singsong", "monotonous", "none"]
    with pytest.raises(schemas.SchemaError, match=r"field 'attributes.range': probe outcomes"):
        AttributeTable.from_dict(doc, "bad.json")


def test_a_version_1_table_still_reads():
    from paraspeechclap.annotate.attributes import AttributeTable

    v1 = {"schema": "paraspeechclap.attribute-table/1", "family": "mini", "template": "A {} style.",
          "attributes": {"range": {"classes": ["monotonous", "singsong"], "threshold": 0.7}}}
    table = AttributeTable.from_dict(v1)
    assert table.by_name("range").probe is None and table.by_name("range").outcomes == ["monotonous", "singsong"]
    assert table.to_dict()["schema"] == "paraspeechclap.attribute-table/2"


def test_a_probes_none_is_the_neutral_class_where_there_is_exactly_one():
    import numpy as np

    from paraspeechclap.annotate.attributes import Attribute

    probe = {"outcomes": ["slow", "fast", "none"], "dim": 2, "weights": [[20.0, 0], [-20.0, 0], [0, 0]],
             "bias": [0.0, 0.0, 5.0], "lambda": 0.0}
    rate = Attribute("rate", ["slow", "measured", "fast"], neutral=["measured"], probe=probe)
    assert rate.outcomes == ["slow", "measured", "fast"]  # the shard columns and /v1/classify keep their classes
    p = rate.probe_probabilities(np.array([[1.0, 0.1], [0.0, 1.0], [-1.0, 0.0]]))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert [rate.outcomes[i] for i in p.argmax(axis=1)] == ["slow", "measured", "fast"]
    assert [rate.tag_of(row) for row in p] == ["slow", None, "fast"]  # the neutral class is no tag
    two = Attribute("pitch", ["deep", "medium", "high", "odd"], neutral=["medium", "odd"],
                    probe=dict(probe, outcomes=["deep", "high", "none"]))
    assert two.outcomes == ["deep", "medium", "high", "odd", "none"]  # which neutral class? none of them: "none"
    assert two.probe_probabilities(np.array([[0.0, 1.0]]))[0].tolist()[1] == 0.0
