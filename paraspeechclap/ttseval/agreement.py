"""Agreement of the benchmark's scores with people: pairwise preferences or ratings of the same clips.

The human file (JSONL/CSV/... through the one row reader) holds either kind of row:

* a **preference**: ``prompt`` (or ``prompt_id`` / ``id``), ``system_a``, ``system_b``, ``preferred``: ``a``, ``b``,
  ``tie`` or a system name. Pairwise accuracy: over the judgements that are not ties, the share where the score
  prefers the same clip (a tie of the score counts half);
* a **rating**: ``prompt``, ``system``, ``rating`` (any number; several ratings of one clip are averaged). Clip-level
  Spearman and Kendall (tau-b) correlations between the score and the mean rating, and system-level ones between
  the systems' mean score and mean rating.

Intervals: the prompts are resampled (percentile bootstrap, same seed as the report); scipy computes the correlations.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from .inputs import Problem
from .stats import interval, replicates

__all__ = ["read_human", "agreement"]

PROMPT_COLUMNS = ("prompt", "prompt_id", "id")


def _prompt(fields: dict) -> str | None:
    for c in PROMPT_COLUMNS:
        v = fields.get(c)
        if isinstance(v, (str, int)) and not isinstance(v, bool) and str(v).strip():
            return str(v).strip()
    return None


def read_human(path: str | os.PathLike, systems: list[str], problems: list[Problem]) -> tuple[list, list]:
    """``(preferences [(prompt, a, b, 'a'|'b'|'tie')], ratings [(prompt, system, value)])``; bad rows -> problems."""
    from ..data.rows import read_rows

    prefs, ratings = [], []
    for row in read_rows(str(path), require_audio=False):
        f = row.fields
        pid = _prompt(f) if row.ok else None
        if not row.ok or pid is None:
            problems.append(Problem("bad_human_row", row.error or "no prompt id", where=row.ref))
            continue
        if "system_a" in f:
            a, b, pref = str(f.get("system_a")), str(f.get("system_b")), str(f.get("preferred", f.get("preference")))
            pref = {a: "a", b: "b"}.get(pref, pref.lower())
            if a not in systems or b not in systems or a == b or pref not in ("a", "b", "tie"):
                problems.append(Problem("bad_human_row", f"systems {a!r}/{b!r} (known: {', '.join(systems)}) or "
                                        f"preferred {pref!r} (a, b, tie or a system name) not usable", prompt=pid,
                                        where=row.ref))
                continue
            prefs.append((pid, a, b, pref))
        else:
            system, value = str(f.get("system")), f.get("rating", f.get("score"))
            if system not in systems or isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not np.isfinite(value):
                problems.append(Problem("bad_human_row", f"system {system!r} unknown or rating {value!r} not a number",
                                        prompt=pid, where=row.ref))
                continue
            ratings.append((pid, system, float(value)))
    return prefs, ratings


def _pairwise(prefs: list, value: dict, reps_for, level: float) -> dict:
    rows = [(p, value.get((p, a)), value.get((p, b)), pref) for p, a, b, pref in prefs if pref != "tie"]
    rows = [(p, x, y, pref) for p, x, y, pref in rows if x is not None and y is not None]
    if not rows:
        return {"n": 0, "ties_skipped": sum(pref == "tie" for *_, pref in prefs)}
    agree = np.array([(0.5 if x == y else float((x > y) == (pref == "a"))) for _, x, y, pref in rows])
    prompts = sorted({p for p, *_ in rows})
    col = np.array([prompts.index(p) for p, *_ in rows])
    w = reps_for(len(prompts)).weights[:, col].astype(np.float64)
    reps = (w @ agree) / np.maximum(w.sum(axis=1), 1)
    return {"n": len(rows), "ties_skipped": sum(pref == "tie" for *_, pref in prefs),
            "pairwise_accuracy": interval(float(agree.mean()), reps, level)}


def _correlations(x: np.ndarray, y: np.ndarray, groups: np.ndarray, reps_for, level: float) -> dict:
    from scipy.stats import kendalltau, spearmanr

    def both(i):
        if len(np.unique(x[i])) < 2 or len(np.unique(y[i])) < 2:
            return np.nan, np.nan
        return spearmanr(x[i], y[i])[0], kendalltau(x[i], y[i])[0]

    point = both(np.arange(len(x)))
    uniq = np.unique(groups)
    members = [np.flatnonzero(groups == g) for g in uniq]
    boots = []
    for row in reps_for(len(uniq)).weights:
        index = np.concatenate([np.repeat(members[g], row[g]) for g in np.flatnonzero(row)])
        boots.append(both(index))
    boots = np.asarray(boots)
    return {"n": int(len(x)), "spearman": interval(float(point[0]), boots[:, 0], level),
            "kendall": interval(float(point[1]), boots[:, 1], level)}


def _system_level(keys: list, x: np.ndarray, y: np.ndarray, reps_for, level: float) -> dict:
    """Spearman / Kendall between the systems' mean score and mean rating; prompts resampled for the intervals."""
    from scipy.stats import kendalltau, spearmanr

    systems = sorted({k[1] for k in keys})
    if len(systems) < 3:
        return {"n": len(systems)}
    prompts = sorted({k[0] for k in keys})
    col = np.array([prompts.index(k[0]) for k in keys])
    sys_of = np.array([systems.index(k[1]) for k in keys])

    def both(w):
        w = w[col]
        mx = np.array([np.sum(w * x * (sys_of == s)) / max(np.sum(w * (sys_of == s)), 1e-12) for s in range(len(systems))])
        my = np.array([np.sum(w * y * (sys_of == s)) / max(np.sum(w * (sys_of == s)), 1e-12) for s in range(len(systems))])
        if len(np.unique(mx)) < 2 or len(np.unique(my)) < 2:
            return np.nan, np.nan
        return spearmanr(mx, my)[0], kendalltau(mx, my)[0]

    point = both(np.ones(len(prompts)))
    boots = np.asarray([both(row.astype(np.float64)) for row in reps_for(len(prompts)).weights])
    return {"n": len(systems), "spearman": interval(float(point[0]), boots[:, 0], level),
            "kendall": interval(float(point[1]), boots[:, 1], level)}


def agreement(scores: Any, prefs: list, ratings: list, n_boot: int, seed: int, level: float) -> dict:
    """Per score: pairwise accuracy (preferences) and clip- and system-level Spearman / Kendall (ratings)."""
    reps_for = lambda n: replicates(n, n_boot, seed, level)  # noqa: E731
    ids = [p.id for p in scores.prompts]
    out: dict = {"preferences": len(prefs), "ratings": len(ratings), "scores": {}}
    arrays = {"cosine": scores.cosine, "contrastive": scores.contrastive, "attribute": scores.attribute}
    for name, arr in arrays.items():
        value = {(pid, system): float(arr[s, p]) for s, system in enumerate(scores.systems)
                 for p, pid in enumerate(ids) if np.isfinite(arr[s, p])}
        entry: dict = {}
        if prefs:
            entry["pairwise"] = _pairwise(prefs, value, reps_for, level)
        if ratings:
            per_clip: dict = {}
            for pid, system, r in ratings:
                per_clip.setdefault((pid, system), []).append(r)
            keys = [k for k in per_clip if k in value]
            x = np.array([value[k] for k in keys])
            y = np.array([np.mean(per_clip[k]) for k in keys])
            entry["clip_level"] = _correlations(x, y, np.array([k[0] for k in keys]), reps_for, level) if keys else {}
            entry["system_level"] = _system_level(keys, x, y, reps_for, level)
        out["scores"][name] = entry
    return out
