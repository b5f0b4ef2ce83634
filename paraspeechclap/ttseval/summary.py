"""Per-system statistics of one view of the clip scores.

Views: ``all`` counts every clip that could be scored; ``gated`` leaves out the clips a quality gate flagged. Within a
view, statistics run over the prompts that **every** system has a clip for (so systems are compared on the same
prompts, and a system cannot gain by failing its hard prompts); the prompts left out, and why, are in the report.
Scores: ``cosine`` (the raw caption-audio cosine), ``contrastive`` (:mod:`.contrastive`) and ``attribute`` (the share of
a prompt's named attributes the clip is classified as); per attribute, accuracy and UAR.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np

from .scoring import ClipScores
from .stats import interval, paired, rank_with_ties, replicates, uar, weighted_mean

__all__ = ["SCORES", "VIEWS", "view_mask", "summarise_view"]

#: score -> what it is (the report's definitions)
SCORES = {
    "cosine": "raw cosine of the caption's and the clip's embeddings (not comparable across prompts or models)",
    "contrastive": "probability the caption beats captions flipping one named attribute (0.5 = chance)",
    "attribute": "share of the prompt's named attributes the clip is classified as (per attribute: accuracy, UAR)",
}
VIEWS = {"all": "every clip that could be scored", "gated": "clips flagged by a quality gate left out"}


def view_mask(scores: ClipScores, view: str) -> np.ndarray:
    """[S, P] which clips a view counts."""
    ok = scores.status == "ok"
    if view == "all":
        return ok
    if view == "gated":
        flagged = np.array([[bool(f) for f in row] for row in scores.flags], dtype=bool).reshape(ok.shape)
        return ok & ~flagged
    raise ValueError(f"unknown view {view!r} (known: {', '.join(VIEWS)})")


def _score_block(values: np.ndarray, systems: list[str], reps, n_permutations: int) -> dict:
    """Per-system intervals, every pair compared, and the ranking of one score."""
    per_system = {}
    for s, name in enumerate(systems):
        finite = np.isfinite(values[s])
        point = float(values[s][finite].mean()) if finite.any() else float("nan")
        per_system[name] = {**interval(point, weighted_mean(values[s], reps.weights), reps.level),
                            "n": int(finite.sum())}
    pairs, better = [], {}
    for a, b in combinations(range(len(systems)), 2):
        result = paired(values[a], values[b], reps, n_permutations)
        pairs.append({"a": systems[a], "b": systems[b], "diff": result.diff, "p_value": result.p_value,
                      "win_rate": result.win_rate, "n": result.n, "significant": result.significant})
        if result.significant:
            better[(systems[a], systems[b]) if result.diff["mean"] > 0 else (systems[b], systems[a])] = True
    ranking = rank_with_ties({k: v["mean"] for k, v in per_system.items()}, better)
    order = [s for s in ranking if ranking[s]["rank"] is not None]
    neighbours = []
    for hi, lo in zip(order, order[1:]):
        x, y = per_system[hi], per_system[lo]
        neighbours.append({"higher": hi, "lower": lo,
                           "intervals_overlap": None if None in (x["lo"], y["hi"]) else bool(x["lo"] <= y["hi"])})
    return {"systems": per_system, "pairs": pairs, "ranking": ranking, "neighbours": neighbours}


def _attribute_block(scores: ClipScores, columns: np.ndarray, reps) -> dict:
    """Per attribute and system: accuracy and UAR with intervals, over the view's prompts naming the attribute."""
    out = {}
    intended = [scores.info.intended[p] for p in np.flatnonzero(columns)]
    for attr in sorted({a for want in intended for a in want}):
        correct = scores.correct(attr)[:, columns]
        named = np.array([attr in want for want in intended])
        gold = [want.get(attr) for want in intended]
        rows = {}
        for s, name in enumerate(scores.systems):
            c = correct[s]
            ok = np.isfinite(c) & named
            acc = float(c[ok].mean()) if ok.any() else float("nan")
            g = [gold[j] for j in np.flatnonzero(ok)]
            point_uar = float(uar(g, c[ok], np.ones((1, int(ok.sum()))))[0]) if ok.any() else float("nan")
            rows[name] = {"accuracy": interval(acc, weighted_mean(c, reps.weights), reps.level),
                          "uar": interval(point_uar, uar(g, c[ok], reps.weights[:, ok]), reps.level),
                          "n": int(ok.sum()), "classes": sorted(set(g))}
        out[attr] = rows
    return out


def summarise_view(scores: ClipScores, view: str, n_boot: int, seed: int, level: float,
                   n_permutations: int) -> dict:
    """Everything a view reports: its prompt set, per score the systems' intervals, pairs and ranking, and the
    per-attribute accuracy and UAR."""
    mask = view_mask(scores, view)
    columns = mask.all(axis=0)
    excluded = {}
    for p in np.flatnonzero(~columns):
        excluded[scores.prompts[p].id] = sorted({f"{scores.systems[s]}: {scores.status[s, p]}"
                                                 + (f" ({', '.join(scores.flags[s][p])})" if scores.flags[s][p] else "")
                                                 for s in np.flatnonzero(~mask[:, p])})
    reps = replicates(int(columns.sum()), n_boot, seed, level)
    arrays = {"cosine": scores.cosine, "contrastive": scores.contrastive, "attribute": scores.attribute}
    return {
        "description": VIEWS[view],
        "n_prompts": int(columns.sum()),
        "excluded_prompts": excluded,
        "scores": {name: _score_block(arrays[name][:, columns], scores.systems, reps, n_permutations)
                   for name in SCORES},
        "attributes": _attribute_block(scores, columns, reps),
    }
