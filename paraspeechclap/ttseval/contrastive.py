"""Contrastive adherence: the probability that a clip's caption beats captions that flip one named attribute.

For a clip with L2-normalised embedding ``a``, its caption ``c`` and the counterfactual captions ``c'`` of
:mod:`.counterfactual` (one per named attribute and opposite class), with ``s`` the model's own ``logit_scale``::

    contrastive(a, c) = mean over named attributes A of
                        mean over the counterfactuals c' of A of
                        softmax over {c, c'} of s * cos  =  sigmoid(s * (cos(a, c) - cos(a, c')))

Each term is the model's probability, in a two-way choice, that the prompt's caption describes the clip better than
the same caption with one attribute flipped ("deep" -> "high-pitched"). Averaging within an attribute first weighs
every named attribute equally, however many opposites it has. Why this compares across prompts and models where a raw
cosine does not: both captions of a term share every word but the attribute's, and both are scored against the same
clip, so what moves a raw cosine without saying anything about adherence (a caption's length and wording, a voice or
channel that brings every caption closer, a model whose cosines live in a narrower band) cancels in the difference;
the result is a probability with chance at 0.5 for every prompt and every model, each model using the temperature it
was trained with. ``contrastive_win`` is the temperature-free version (the share of counterfactuals the caption beats).

This is the one place the score is computed: the benchmark (:mod:`paraspeechclap.ttseval`), the reward API
(:func:`paraspeechclap.rerank.reward` with ``score="contrastive"``) and reward shaping
(:func:`paraspeechclap.rerank.shaping.shape_rewards` with ``mode="contrastive"``) all call
:func:`contrastive_scores`. Nothing here imports the annotation or evaluation rooms.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .counterfactual import CounterfactualTable, packaged_table

__all__ = ["ContrastSet", "ContrastiveResult", "contrast_set", "contrastive_from_cosines", "contrastive_scores"]


@dataclass
class ContrastSet:
    """The counterfactuals of N captions, flattened: counterfactual k belongs to item ``item[k]``, has text
    ``texts[k]`` and weight ``weight[k]`` (an item's weights sum to one). ``problems[i]`` says why item i has no
    counterfactual (None when it has some); ``notes[i]`` lists attributes left out of item i."""

    captions: list[str]
    table: CounterfactualTable
    item: np.ndarray
    weight: np.ndarray
    texts: list[str]
    attribute: list[str]
    source: list[str]
    target: list[str]
    problems: list[str | None]
    notes: list[list[str]] = field(default_factory=list)
    classes: list[dict[str, str]] = field(default_factory=list)


def contrast_set(captions: Sequence[str], table: CounterfactualTable | None = None) -> ContrastSet:
    """The counterfactuals of each caption (each distinct caption parsed once)."""
    table = table or packaged_table()
    parsed: dict[str, tuple] = {}
    item, weight, texts, attrs, sources, targets = [], [], [], [], [], []
    problems: list[str | None] = []
    notes: list[list[str]] = []
    classes: list[dict[str, str]] = []
    for i, caption in enumerate(captions):
        if caption not in parsed:
            parsed[caption] = table.counterfactuals(caption)
        cfs, parse = parsed[caption]
        notes.append(list(parse.problems))
        classes.append(dict(parse.classes))
        if not cfs:
            problems.append("the caption names no attribute the counterfactual table can flip"
                            + (f" ({'; '.join(parse.problems)})" if parse.problems else ""))
            continue
        problems.append(None)
        per_attribute: dict[str, int] = {}
        for cf in cfs:
            per_attribute[cf.attribute] = per_attribute.get(cf.attribute, 0) + 1
        for cf in cfs:
            item.append(i)
            weight.append(1.0 / (len(per_attribute) * per_attribute[cf.attribute]))
            texts.append(cf.caption)
            attrs.append(cf.attribute)
            sources.append(cf.source)
            targets.append(cf.target)
    return ContrastSet(list(captions), table, np.asarray(item, np.int64), np.asarray(weight, np.float64), texts,
                       attrs, sources, targets, problems, notes, classes)


def contrastive_from_cosines(cosines: Sequence[float], cf_cosines: Sequence[float], item: Sequence[int],
                             weight: Sequence[float], logit_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The formula: ``(contrastive [N], contrastive_win [N])`` from each item's caption cosine and its
    counterfactuals' cosines (flattened as in :class:`ContrastSet`). NaN for an item with no counterfactual or a NaN
    cosine. Computed in float64."""
    from scipy.special import expit

    cos = np.asarray(cosines, np.float64)
    cf = np.asarray(cf_cosines, np.float64)
    item = np.asarray(item, np.int64)
    w = np.asarray(weight, np.float64)
    n = len(cos)
    margin = cos[item] - cf
    prob = np.bincount(item, weights=w * expit(float(logit_scale) * margin), minlength=n)
    win = np.bincount(item, weights=w * ((margin > 0) + 0.5 * (margin == 0)), minlength=n)
    has = np.bincount(item, minlength=n) > 0
    bad = ~has | ~np.isfinite(cos) | ~np.isfinite(np.bincount(item, weights=margin, minlength=n))
    prob[bad] = np.nan
    win[bad] = np.nan
    return prob, win


@dataclass
class ContrastiveResult:
    """Per item: ``scores`` (contrastive adherence), ``win`` (temperature-free share beaten), ``cosines`` (the
    caption's), ``problems`` (why an item has no score); per counterfactual (flattened as ``contrast``): ``cf_cosines``."""

    scores: np.ndarray
    win: np.ndarray
    cosines: np.ndarray
    cf_cosines: np.ndarray
    contrast: ContrastSet
    logit_scale: float
    problems: list[str | None]

    def details(self, i: int) -> list[dict]:
        """Item i's counterfactuals: attribute, from, to, caption and cosine."""
        c = self.contrast
        return [{"attribute": c.attribute[k], "from": c.source[k], "to": c.target[k], "caption": c.texts[k],
                 "cosine": float(self.cf_cosines[k])} for k in np.flatnonzero(c.item == i)]


def _logit_scale(model: Any, logit_scale: float | None) -> float:
    if logit_scale is not None:
        return float(logit_scale)
    scale = getattr(model, "logit_scale", None)
    if scale is None:
        raise ValueError("contrastive adherence needs the model's logit_scale (or pass logit_scale=)")
    return float(scale)


def contrastive_scores(model: Any, audio_emb: np.ndarray, captions: Sequence[str],
                       table: CounterfactualTable | None = None, logit_scale: float | None = None,
                       contrast: ContrastSet | None = None) -> ContrastiveResult:
    """Contrastive adherence of N clips (``audio_emb`` [N, D], L2-normalised rows; NaN rows for clips that failed)
    with their captions. Every distinct caption and counterfactual is embedded once (``model.embed_text``).

    This is the function the reward service and the RL adapters call: it needs the model (``embed_text``,
    ``logit_scale``), the audio embeddings they already have, and the captions."""
    audio = np.asarray(audio_emb, np.float64)
    captions = list(captions)
    if audio.ndim != 2 or len(audio) != len(captions):
        raise ValueError(f"{audio.shape} audio embeddings for {len(captions)} captions")
    scale = _logit_scale(model, logit_scale)
    contrast = contrast if contrast is not None else contrast_set(captions, table)
    unique = list(dict.fromkeys(captions + contrast.texts))
    row = {text: k for k, text in enumerate(unique)}
    text = np.asarray(model.embed_text(unique), np.float64) if unique else np.zeros((0, audio.shape[1]))
    cos = np.einsum("nd,nd->n", audio, text[[row[c] for c in captions]]) if captions else np.zeros(0)
    cf_rows = [row[t] for t in contrast.texts]
    cf_cos = np.einsum("kd,kd->k", audio[contrast.item], text[cf_rows]) if cf_rows else np.zeros(0)
    scores, win = contrastive_from_cosines(cos, cf_cos, contrast.item, contrast.weight, scale)
    problems = list(contrast.problems)
    for i in np.flatnonzero(~np.isfinite(cos)):
        problems[i] = problems[i] or "no audio embedding"
    return ContrastiveResult(scores, win, cos, cf_cos, contrast, scale, problems)
