"""Selection rules on score matrices: tie-breaks, margins, gates, weights, fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

from paraspeechclap.rerank import Prompt, parse_gate, parse_weight, select, select_all
from paraspeechclap.rerank.inputs import Candidate


def test_highest_score_wins_with_margin_and_ranks():
    sel = select([0.2, 0.9, 0.5, 0.7])
    assert sel.chosen == 1
    assert sel.margin == pytest.approx(0.2)
    assert [c.rank for c in sel.candidates] == [4, 1, 3, 2]
    assert sel.flags == []


def test_ties_go_to_the_lowest_candidate_index_not_the_list_position():
    sel = select([0.5, 0.7, 0.7, 0.1])
    assert sel.chosen == 1 and sel.margin == 0.0 and "tie" in sel.flags
    assert [c.rank for c in sel.candidates] == [3, 1, 2, 4]
    # the same scores listed in reverse candidate order: still the lowest *index* wins
    rev = select([0.1, 0.7, 0.7, 0.5], indices=[3, 2, 1, 0])
    assert rev.candidates[rev.chosen].index == 1
    # deterministic under every permutation of the input order
    rng = np.random.default_rng(0)
    scores = np.array([0.3, 0.8, 0.8, 0.8, 0.1])
    for _ in range(20):
        perm = rng.permutation(5)
        sel = select(scores[perm], indices=perm)
        assert sel.candidates[sel.chosen].index == 1


def test_unscored_candidates_are_never_chosen():
    sel = select([float("nan"), 0.2, None])
    assert sel.chosen == 1 and "audio_error" in sel.flags and "single_candidate" in sel.flags
    assert sel.margin is None
    assert sel.candidates[0].reasons == ["no_score"] and sel.candidates[0].rank == 2
    empty = select([float("nan")])
    assert empty.chosen is None and "no_candidates" in empty.flags
    assert select([]).chosen is None


def test_gate_excludes_failing_candidates():
    cols = [{"wer": 0.5}, {"wer": 0.1}, {"wer": 0.0}, {}]
    sel = select([0.9, 0.8, 0.1, 0.95], columns=cols, gates=[parse_gate("wer<=0.2")])
    assert sel.chosen == 1
    assert sel.margin == pytest.approx(0.7)  # over the runner-up *among eligible* (0.1)
    assert sel.candidates[0].reasons == ["gate:wer<=0.2"] and not sel.candidates[0].eligible
    assert sel.candidates[3].reasons == ["gate:wer<=0.2"]  # a missing value fails the gate
    assert [c.rank for c in sel.candidates] == [4, 1, 2, 3]  # eligible first, then the rest by score


def test_gate_all_fail_falls_back_to_plain_score_and_flags():
    cols = [{"wer": 0.5}, {"wer": 0.9}]
    sel = select([0.3, 0.6], columns=cols, gates=[parse_gate("wer<=0.2")])
    assert sel.chosen == 1 and "fallback" in sel.flags
    assert sel.margin == pytest.approx(0.3)


def test_several_gates_must_all_hold():
    cols = [{"wer": 0.1, "mos": 2.0}, {"wer": 0.1, "mos": 4.0}, {"wer": 0.5, "mos": 5.0}]
    gates = [parse_gate("wer<=0.2"), parse_gate("mos >= 3")]
    assert select([0.9, 0.5, 0.99], columns=cols, gates=gates).chosen == 1


def test_weighted_sum_changes_the_winner():
    cols = [{"wer": 0.5}, {"wer": 0.1}, {"wer": 0.0}]
    sel = select([0.9, 0.8, 0.1], columns=cols, weights={"wer": -1.0})
    assert [c.combined for c in sel.candidates] == pytest.approx([0.4, 0.7, 0.1])
    assert sel.chosen == 1 and sel.margin == pytest.approx(0.3)
    # a candidate missing the weighted value is not eligible
    sel = select([0.9, 0.8], columns=[{}, {"wer": 0.2}], weights={"wer": -1.0})
    assert sel.chosen == 1 and sel.candidates[0].reasons == ["missing:wer"]
    assert sel.candidates[0].combined is None


def test_parse_gate_and_weight():
    gate = parse_gate(" wer < 0.25 ")
    assert (gate.column, gate.op, gate.threshold) == ("wer", "<", 0.25)
    assert gate.passes(0.2) and not gate.passes(0.25) and not gate.passes(None) and not gate.passes("x")
    assert parse_weight("wer=-1.5") == ("wer", -1.5)
    for bad in ("wer", "wer<=x", "<=0.2", "wer=>0.2"):
        with pytest.raises(ValueError, match="gate"):
            parse_gate(bad)
    for bad in ("wer", "wer=abc", "=1", "wer=nan"):
        with pytest.raises(ValueError, match="weight"):
            parse_weight(bad)


def test_select_all_uses_candidate_indices_and_columns():
    prompts = [
        Prompt(0, "0", "a", [Candidate(0, 1, "x0"), Candidate(2, 3, "x2")]),
        Prompt(2, "2", "b", [Candidate(1, 2, "y1", {"wer": 0.9}), Candidate(2, 3, "y2", {"wer": 0.0})]),
        Prompt(3, "3", "c", []),
    ]
    scores = [np.array([0.4, 0.4]), np.array([0.9, 0.2]), np.array([])]
    results = select_all(prompts, scores, gates=[parse_gate("wer<0.5")])
    assert results[0].selection.chosen == 0 and "tie" in results[0].selection.flags
    # prompt 0 has no wer at all -> both fail the gate -> fallback
    assert "fallback" in results[0].selection.flags
    assert results[1].selection.chosen == 1
    assert results[2].failed and results[2].selection.flags == ["no_candidates"]
    assert results[0].selection.margin == 0.0
