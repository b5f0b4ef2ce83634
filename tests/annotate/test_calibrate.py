"""annotate.calibrate: per-class thresholds for a wanted tag precision, withheld classes, not_with gates."""
from __future__ import annotations

import numpy as np

from paraspeechclap.annotate.attributes import Attribute, AttributeTable
from paraspeechclap.annotate.calibrate import calibrate_attribute, class_threshold, per_clip_threshold


def test_class_threshold_is_the_lowest_that_keeps_the_precision():
    p = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.6])
    right = np.array([True, True, True, False, True, False])
    assert class_threshold(p, right, 0.8, 1) == 0.7  # 4 of the top 5 right
    assert class_threshold(p, right, 1.0, 1) == 0.9
    assert class_threshold(p, right, 1.0, 4) is None  # never 4 tags all right
    assert class_threshold(p[:0], right[:0], 0.9, 1) is None
    many = np.linspace(1.0, 0.5, 200)
    right = np.arange(200) % 20 != 19  # 95 % right all along
    assert class_threshold(many, right, 0.9, 1) == many[-1]
    margin = class_threshold(many, right, 0.9, 1, confidence=0.95)  # 19 of the first 20 is too few to be sure
    assert margin is not None and margin < many[60]
    assert class_threshold(many[:20], right[:20], 0.9, 1, confidence=0.95) is None


def test_per_clip_threshold_tags_where_a_tag_makes_more_clips_right_than_wrong():
    p = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    right = np.array([True, True, False, True, False, False, True])
    unclaimed = np.array([False, False, True, False, False, True, False])  # index 4: another class, wrong anyway
    assert per_clip_threshold(p, right, unclaimed, 1) == 0.95  # gains 1, 2, 1, 2, 2, 1, 2: the fewest tags of the best
    assert per_clip_threshold(p, right, unclaimed, 5) == 0.7
    assert per_clip_threshold(p[[2, 5]], right[[2, 5]], unclaimed[[2, 5]], 1) is None  # only costs
    assert per_clip_threshold(p[:0], right[:0], unclaimed[:0], 1) is None
    assert per_clip_threshold(p[:2], right[:2], unclaimed[:2], 3) is None  # fewer tags than min_clips


def test_per_clip_objective_tags_a_class_short_of_the_precision_when_that_makes_more_clips_right():
    a = Attribute("range", ["monotonous", "singsong"])
    sing = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7]
    probs = np.array([[1 - q, q] for q in sing] + [[0.9, 0.1], [0.85, 0.15]])
    gold = ["singsong", None, "singsong", "singsong", None, "singsong", "monotonous", "monotonous"]
    calibrate_attribute(a, probs, gold, np.zeros(len(gold), bool), precision=0.9, min_clips=2)
    assert a.withheld == ["singsong"] and a.thresholds == {"monotonous": 0.85}  # singsong: 3 of 4 right at best
    assert a.calibration["per_clip"] == 0.5  # the monotonous pair and the two unclaimed clips
    calibrate_attribute(a, probs, gold, np.zeros(len(gold), bool), precision=0.9, min_clips=2, objective="per-clip")
    assert a.thresholds == {"monotonous": 0.85, "singsong": 0.8} and a.withheld == []
    assert a.calibration["per_clip"] == 0.75 and a.calibration["precision"] == round(5 / 6, 4)


def test_calibrate_attribute_sets_per_class_thresholds_and_withholds():
    a = Attribute("quality", ["normal", "whispered", "fry"], neutral=["normal"])
    # rows: [normal, whispered, fry] probabilities; gold None is a negative (claims none of the classes)
    probs = np.array([[0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [0.4, 0.6, 0.0],   # whispered, right
                      [0.0, 0.0, 1.0], [0.1, 0.0, 0.9], [0.3, 0.0, 0.7],   # fry: right, wrong, wrong
                      [0.9, 0.1, 0.0], [0.0, 0.55, 0.45]])                 # normal; a negative tagged whispered
    gold = ["whispered", "whispered", "whispered", "fry", "normal", "normal", "normal", None]
    calibrate_attribute(a, probs, gold, np.zeros(len(gold), bool), precision=0.9, min_clips=2)
    assert a.thresholds == {"whispered": 0.6} and a.withheld == ["fry"]  # fry: 1 of 2 at best
    rec = a.calibration
    assert rec["tagged"] == 3 and rec["precision"] == 1.0 and rec["coverage"] == round(3 / 8, 4)
    assert rec["per_class"]["fry"] == {"precision": None, "tagged": 0, "right": 0}
    gated = np.zeros(len(gold), bool)
    gated[0] = True  # another attribute's tag keeps row 0 from one
    calibrate_attribute(a, probs, gold, gated, precision=0.9, min_clips=2)
    assert a.calibration["tagged"] == 2


def test_tags_follow_per_class_thresholds_withheld_and_not_with():
    table = AttributeTable("t", "A {} style.", [
        Attribute("pitch", ["deep", "high"], thresholds={"deep": 0.9, "high": 0.6},
                  not_with={"quality": ["whispered"]}),
        Attribute("quality", ["normal", "whispered", "fry"], neutral=["normal"], thresholds={"whispered": 0.5},
                  withheld=["fry"])])
    probs = {"pitch": np.array([[0.8, 0.2], [0.3, 0.7], [0.95, 0.05], [0.1, 0.9]]),
             "quality": np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1.0], [0.2, 0.8, 0]])}
    assert [table.tags(probs, i) for i in range(4)] == [[], ["high"], ["deep"], ["whispered"]]
    doc = table.to_dict()
    assert doc["attributes"]["quality"]["withheld"] == ["fry"] and doc["calibration"]["status"] == "uncalibrated"
    assert AttributeTable.from_dict(doc).to_dict() == doc


# ------------------------------------------------------------------------------------------------- probes
class _TextModel:
    """What a probe needs of a model: the class prompts' embeddings and the logit scale."""

    logit_scale = 20.0

    def __init__(self, directions: dict[str, np.ndarray]):
        self.directions = directions

    def embed_prompts(self, classes, template=None):
        return np.stack([self.directions[c] for c in classes])


def _clips(centres: dict, n: int, dim: int, seed: int = 0, noise: float = 0.25):
    """``n`` clips per truth around its centre (a unit vector), with noise; (embeddings, truths)."""
    rng = np.random.default_rng(seed)
    emb, gold = [], []
    for truth, centre in centres.items():
        emb.append(centre + noise * rng.standard_normal((n, dim)) / np.sqrt(dim))
        gold += [truth] * n
    emb = np.vstack(emb)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True), gold


def _calibrated(model, emb, gold, forced=False):
    from paraspeechclap.annotate.calibrate import calibrate_probe

    a = Attribute("range", ["monotonous", "singsong"])
    table = AttributeTable("t", "A {} style.", [a])
    probs = table.probabilities(_Classifier(model), emb)["range"]
    gated = np.zeros(len(gold), bool)
    calibrate_attribute(a, probs, gold, gated, precision=0.9, min_clips=3, objective="per-clip")
    calibrate_probe(a, model, table.template, emb, probs, gold, gated, (0.9, 0.5, 3, "per-clip"), forced)
    return a, probs


class _Classifier:
    """Zero-shot classification as the engine does it, from the text model's directions."""

    def __init__(self, model):
        self.model = model

    def classify_embeddings(self, emb, classes, template=None):
        logits = self.model.logit_scale * emb @ self.model.embed_prompts(classes).T
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return [dict(zip(classes, row)) for row in p]


def test_a_probe_finds_class_directions_the_text_weights_miss():
    dim = 12
    e = np.eye(dim)
    model = _TextModel({"monotonous": e[0], "singsong": e[1]})  # the text side points elsewhere than the clips
    centres = {"monotonous": e[2], "singsong": e[3], None: e[4]}
    emb, gold = _clips(centres, 40, dim)
    a, probs = _calibrated(model, emb, gold)
    cv = a.calibration["probe"]
    assert cv["cv_no_probe"] < 0.6 and max(cv["cv_probe"].values()) > 0.95 and cv["chosen"] is not None
    assert a.probe["outcomes"] == ["monotonous", "singsong", "none"] and a.probe["dim"] == dim
    assert a.thresholds == {} and a.calibration["per_clip"] > 0.95
    test, truth = _clips(centres, 30, dim, seed=1)  # clips the probe never saw
    tags = [a.tag_of(p) for p in a.probe_probabilities(test)]
    assert np.mean([a.clip_right(t, g) for t, g in zip(tags, truth)]) > 0.95
    zero_shot = [a.clip_right(None, g) for g in truth]  # what zero-shot left at best: the untagged clips
    assert np.mean(zero_shot) < 0.5


def test_auto_keeps_the_thresholds_where_zero_shot_is_already_right():
    dim = 12
    e = np.eye(dim)
    model = _TextModel({"monotonous": e[0], "singsong": e[1]})
    emb, gold = _clips({"monotonous": e[0], "singsong": e[1], None: (e[0] + e[1] + 2 * e[5]) / np.sqrt(6)}, 40, dim,
                      noise=0.05)
    a, _ = _calibrated(model, emb, gold)
    cv = a.calibration["probe"]
    assert cv["cv_no_probe"] == 1.0 and cv["chosen"] is None and cv["policy"] == "auto"
    assert a.probe is None and set(a.thresholds) == {"monotonous", "singsong"}
    forced, _ = _calibrated(model, emb, gold, forced=True)
    assert forced.probe is not None and forced.calibration["probe"]["policy"] == "forced"


def test_probe_policy_names_attributes_of_the_table():
    import pytest

    from paraspeechclap.annotate.probe import parse_policy

    assert parse_policy("auto", ["range"]) == ("auto", set())
    assert parse_policy("range, pitch", ["pitch", "range"]) == ("forced", {"pitch", "range"})
    with pytest.raises(ValueError, match=r"--probe takes auto, never or attributes of the table \(range\); "
                                         r"got 'rnage'"):
        parse_policy("rnage", ["range"])
