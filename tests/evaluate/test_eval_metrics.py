"""Metric definitions: parity with the reference fixture and hand-computed cases."""
import json

import numpy as np
import pytest
from reference_fixture import FIXTURE

from paraspeechclap.evaluate import metrics as M


@pytest.fixture(scope="module")
def golden():
    arrays = np.load(FIXTURE / "golden.npz")
    with open(FIXTURE / "golden.json") as handle:
        reference = json.load(handle)["retrieval_metrics_a2t"]
    return arrays["retrieval_similarity"], arrays["retrieval_gt"], reference


def test_audio_to_text_reproduces_reference_fixture(golden):
    similarity, targets, reference = golden
    assert similarity.shape == (12, 7)
    ours = M.audio_to_text_metrics(similarity, targets)
    assert list(ours) == list(reference)  # same keys, same order
    for key, value in reference.items():
        assert ours[key] == pytest.approx(value, abs=1e-4), key
    assert isinstance(ours["MedR_A2T"], int) and ours["MedR_A2T"] == reference["MedR_A2T"]


def test_fixture_has_no_ties_so_tie_policy_agrees_with_any_order(golden):
    similarity, targets, _ = golden
    ranks = M.audio_to_text_ranks(similarity, targets)
    stable = np.array([int(np.where(np.argsort(-row, kind="stable") == t)[0][0]) + 1
                       for row, t in zip(similarity, targets)])
    np.testing.assert_array_equal(ranks, stable)
    assert ranks.tolist() == [3, 6, 1, 1, 6, 6, 6, 4, 1, 4, 7, 1]


def test_ties_count_against_the_correct_item():
    similarity = np.array([[0.5, 0.5, 0.1],   # correct 0 tied with 1 -> rank 2
                           [0.5, 0.5, 0.1],   # correct 1 tied with 0 -> rank 2 too (order-independent)
                           [0.2, 0.2, 0.2],   # three-way tie -> rank 3
                           [0.1, 0.9, 0.3]])  # no tie, correct 1 -> rank 1
    ranks = M.audio_to_text_ranks(similarity, [0, 1, 2, 1])
    assert ranks.tolist() == [2, 2, 3, 1]
    out = M.audio_to_text_metrics(similarity, [0, 1, 2, 1])
    assert out["R@1_A2T"] == pytest.approx(25.0)
    assert out["MedR_A2T"] == 2  # sorted 1,2,2,3 -> lower middle 2
    assert out["MeanR_A2T"] == pytest.approx(2.0)


def test_lower_median_of_even_count():
    assert M.lower_median([4, 1, 3, 2]) == 2
    assert M.lower_median([5, 1, 3]) == 3
    assert M.rank_summary(np.array([1, 10]), "X")["MedR_X"] == 1


def test_duplicated_captions_are_one_candidate():
    captions = ["deep voice", "calm", "deep voice", "deep voice ", "calm"]
    unique, targets = M.deduplicate_captions(captions)
    assert unique == ["deep voice", "calm", "deep voice "]  # exact strings: trailing space is another caption
    assert targets.tolist() == [0, 1, 0, 2, 1]
    # five clips against the three unique captions
    similarity = np.array([[0.9, 0.1, 0.8],
                           [0.2, 0.3, 0.9],
                           [0.1, 0.5, 0.4],
                           [0.3, 0.2, 0.1],
                           [0.0, 0.7, 0.6]])
    assert M.audio_to_text_ranks(similarity, targets).tolist() == [1, 2, 3, 3, 1]


def test_text_to_audio_hit_on_any_clip_carrying_the_caption():
    # clips 0 and 1 carry caption 0, clip 2 carries caption 1
    similarity = np.array([[0.1, 0.9],
                           [0.8, 0.2],
                           [0.9, 0.3]])
    targets = [0, 0, 1]
    # caption 0: order 2 (wrong), 1 (hit) -> rank 2; caption 1: order 0 (wrong), 2 (hit) -> rank 2
    assert M.text_to_audio_ranks(similarity, targets).tolist() == [2, 2]
    out = M.text_to_audio_metrics(similarity, targets)
    assert out["R@1_T2A"] == 0.0 and out["R@5_T2A"] == 100.0 and out["MedR_T2A"] == 2
    # AP@10 caption 0: relevant at positions 2 and 3 -> (1/2 + 2/3) / 2; caption 1: relevant at 2 -> 1/2
    assert out["mAP@10_T2A"] == pytest.approx(100 * ((0.5 + 2 / 3) / 2 + 1 / 2) / 2)


def test_text_to_audio_ties_and_map_are_pessimistic():
    similarity = np.array([[0.5], [0.5]])  # one caption; both clips tie, only clip 1 carries it
    with pytest.raises(ValueError):
        M.text_to_audio_ranks(similarity, [0, 1])  # target out of range
    similarity = np.array([[0.5, 0.0], [0.5, 0.0]])
    assert M.text_to_audio_ranks(similarity, [1, 0]).tolist() == [2, 2]
    assert M.average_precision_at_k(np.array([0.5, 0.5]), np.array([False, True])) == pytest.approx(0.5)


def test_audio_to_text_map_is_reciprocal_rank_cut_at_10():
    ranks_wanted = [1, 2, 11]
    n = 12
    similarity = np.zeros((3, n))
    targets = []
    for row, rank in enumerate(ranks_wanted):
        similarity[row] = np.linspace(1, 0, n)
        targets.append(rank - 1)
    assert M.audio_to_text_ranks(similarity, targets).tolist() == ranks_wanted
    assert M.audio_to_text_map(similarity, targets) == pytest.approx(100 * (1 + 0.5 + 0) / 3)


def test_bad_similarity_inputs():
    with pytest.raises(ValueError, match="NaN"):
        M.audio_to_text_metrics(np.array([[np.nan, 1.0]]), [0])
    with pytest.raises(ValueError, match="empty"):
        M.audio_to_text_metrics(np.zeros((0, 3)), [])
    with pytest.raises(ValueError, match="targets"):
        M.audio_to_text_metrics(np.zeros((2, 3)), [0, 3])


def test_uar_counts_a_candidate_without_gold_items_as_zero():
    gold = ["a", "a", "b", "b"]
    pred = ["a", "a", "b", "a"]
    with_c = M.classification_metrics(gold, pred, ["a", "b", "c"])
    assert with_c["Classification_Accuracy"] == pytest.approx(75.0)
    assert with_c["Classification_UAR"] == pytest.approx(100 * (1.0 + 0.5 + 0.0) / 3)  # = 50
    # F1: a = 2*(2/3*1)/(2/3+1) = 0.8, b = 2*(1*0.5)/1.5 = 2/3, c = 0
    assert with_c["Classification_Macro_F1"] == pytest.approx(100 * (0.8 + 2 / 3 + 0) / 3)
    without_c = M.classification_metrics(gold, pred, ["a", "b"])
    assert without_c["Classification_UAR"] == pytest.approx(75.0)
    assert list(with_c) == ["Classification_Accuracy", "Classification_UAR", "Classification_Macro_F1"]


def test_classification_label_checks():
    with pytest.raises(ValueError, match=r"not among the candidates .*\['Deep'\]"):
        M.classification_metrics(["Deep"], ["deep"], ["deep", "shrill"])  # exact, case-sensitive
    with pytest.raises(ValueError, match="empty"):
        M.classification_metrics([], [], ["deep"])
    with pytest.raises(ValueError, match="duplicated"):
        M.check_labels(["deep"], ["deep", "deep"])
    with pytest.raises(ValueError, match="predictions"):
        M.classification_metrics(["deep"], ["nasal"], ["deep", "shrill"])


def test_per_class_table_and_confusion_over_sorted_candidates():
    gold = ["b", "b", "a"]
    pred = ["b", "a", "a"]
    table = M.per_class_table(gold, pred, ["c", "b", "a"])
    assert [row["class"] for row in table] == ["a", "b", "c"]
    a, b, c = table
    assert (a["support"], a["predicted"], a["recall"], a["precision"]) == (1, 2, 100.0, 50.0)
    assert (b["support"], b["predicted"], b["recall"], b["precision"]) == (2, 1, 50.0, 100.0)
    assert (c["support"], c["predicted"], c["recall"], c["f1"]) == (0, 0, 0.0, 0.0)
    labels, matrix = M.confusion(gold, pred, ["c", "b", "a"])
    assert labels == ["a", "b", "c"]
    assert matrix.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 0]]


def test_predict_first_maximum_wins():
    assert M.predict(np.array([[0.3, 0.3, 0.1], [0.1, 0.2, 0.9]]), ["x", "y", "z"]) == ["x", "z"]
