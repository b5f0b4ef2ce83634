"""Scoring every clip of every system: embeddings (the engine's bulk road through the evaluation cache), quality
gates, and the three scores (raw cosine, contrastive adherence, per-attribute adherence).

Arrays are ``[systems, prompts]``; a clip that is missing or could not be embedded has NaN scores and its status says
why.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .adherence import intended_classes, predictions
from .contrastive import ContrastiveResult, contrast_set, contrastive_scores
from .gates import GateTable, measure
from .inputs import Problem, Prompt, SystemClips

__all__ = ["ClipScores", "PromptInfo", "prompt_info", "score_clips", "embedder"]


@dataclass
class PromptInfo:
    """What each prompt asks for: the classes its caption names (counterfactual table), the intended classes per
    attribute of the model's table, and notes."""

    caption_classes: list[dict[str, str]]
    intended: list[dict[str, str]]
    notes: list[list[str]]


def prompt_info(prompts: Sequence[Prompt], cf_table: Any, attr_table: Any, problems: list[Problem]) -> PromptInfo:
    """Resolve every prompt's named attributes; a prompt with none, or whose caption cannot be flipped, is a problem."""
    contrast = contrast_set([p.caption for p in prompts], cf_table)
    info = PromptInfo([], [], [])
    for i, p in enumerate(prompts):
        intended, label_notes = intended_classes(p.labels, contrast.classes[i], attr_table, cf_table)
        named = set(contrast.classes[i].values())
        mismatch = [f"the label {attr}={cls} is not what the caption names ({', '.join(sorted(named))})"
                    for attr, cls in intended.items() if p.labels is not None and named and cls not in named
                    and not any(cls in cf_table.equivalents(n) for n in named)]
        info.caption_classes.append(contrast.classes[i])
        info.intended.append(intended)
        info.notes.append(contrast.notes[i] + label_notes + mismatch)
        for kind, note in [("bad_label", n) for n in label_notes] + [("label_mismatch", n) for n in mismatch]:
            problems.append(Problem(kind, note, prompt=p.id, where=p.ref, severity="warning"))
        if not intended and contrast.problems[i] is not None:
            problems.append(Problem("no_attribute", f"the prompt names no attribute the tables know: {p.caption!r}",
                                    prompt=p.id, where=p.ref))
        elif contrast.problems[i] is not None:
            problems.append(Problem("no_counterfactual", f"{contrast.problems[i]}; contrastive score left out",
                                    prompt=p.id, where=p.ref, severity="warning"))
    return info


@dataclass
class ClipScores:
    systems: list[str]
    prompts: list[Prompt]
    paths: list[list[str | None]]
    status: np.ndarray            # [S, P] object: ok | missing | unreadable
    cosine: np.ndarray
    contrastive: np.ndarray
    win: np.ndarray
    attribute: np.ndarray         # share of the prompt's named attributes classified as intended
    predicted: dict[str, np.ndarray]   # attribute -> [S, P] object (None where not named or no clip)
    flags: list[list[list[str]]]
    measures: list[list[dict]]
    contrast: ContrastiveResult | None = None
    info: PromptInfo | None = None
    embeddings: np.ndarray | None = None
    extras: dict = field(default_factory=dict)

    def correct(self, attribute: str) -> np.ndarray:
        """[S, P] 1.0 / 0.0 where the attribute is named and the clip scored, NaN elsewhere."""
        out = np.full(self.status.shape, np.nan)
        pred = self.predicted.get(attribute)
        for p, want in enumerate(self.info.intended):
            if attribute in want and pred is not None:
                for s in range(len(self.systems)):
                    if pred[s, p] is not None:
                        out[s, p] = float(pred[s, p] == want[attribute])
        return out


def embedder(model: Any, cache_dir: str | None, batch_size: int | None, progress: bool):
    """The evaluation room's cached embedder (SQLite cache keyed by model identity, preprocessing and file bytes)."""
    from ..evaluate.cache import AudioEmbedder, EmbeddingCache, model_identity

    cache = EmbeddingCache(cache_dir, model_identity(model))
    return AudioEmbedder(model, cache, batch_size=batch_size or 8, progress=progress)


def _gather(systems: Sequence[SystemClips], prompts: Sequence[Prompt], problems: list[Problem]):
    ids = {p.id for p in prompts}
    paths = [[s.clips.get(p.id) for p in prompts] for s in systems]
    for s_i, s in enumerate(systems):
        for p_i, p in enumerate(prompts):
            if paths[s_i][p_i] is None:
                problems.append(Problem("missing_clip", "no clip for this prompt", system=s.name, prompt=p.id,
                                        where=s.source))
        for pid in sorted(set(s.clips) - ids):
            problems.append(Problem("unknown_prompt", f"a clip for a prompt not in the prompts file ({s.clips[pid]}); "
                                    "not scored", system=s.name, prompt=pid, where=s.clips[pid], severity="warning"))
    return paths


def score_clips(model: Any, prompts: Sequence[Prompt], systems: Sequence[SystemClips], cf_table: Any,
                attr_table: Any, gates: GateTable, problems: list[Problem], embed: Any) -> ClipScores:
    """Embed, gate and score every clip; problems (missing clips, unreadable audio, prompts without attributes) are
    appended to ``problems``."""
    info = prompt_info(prompts, cf_table, attr_table, problems)
    paths = _gather(systems, prompts, problems)
    unique = sorted({path for row in paths for path in row if path is not None})
    vectors, failures = embed.embed(unique, desc="clips") if unique else ({}, {})
    S, P = len(systems), len(prompts)
    status = np.full((S, P), "missing", dtype=object)
    dim = next((len(v) for v in vectors.values()), 0)
    emb = np.full((S * P, dim), np.nan)
    flags = [[[] for _ in range(P)] for _ in range(S)]
    measures = [[{} for _ in range(P)] for _ in range(S)]
    for s in range(S):
        for p in range(P):
            path = paths[s][p]
            if path is None:
                continue
            if path in failures:
                status[s, p] = "unreadable"
                problems.append(Problem("unreadable_audio", failures[path], system=systems[s].name,
                                        prompt=prompts[p].id, where=path))
                continue
            status[s, p] = "ok"
            emb[s * P + p] = vectors[path]
            gate = measure(path, gates, prompts[p].transcript)
            flags[s][p] = gate.flags + (["unmeasurable"] if gate.error else [])
            measures[s][p] = gate.measures
    captions = [p.caption for p in prompts] * S
    contrast = contrastive_scores(model, emb, captions, contrast=contrast_set(captions, cf_table))
    out = ClipScores([s.name for s in systems], list(prompts), paths, status,
                     contrast.cosines.reshape(S, P), contrast.scores.reshape(S, P), contrast.win.reshape(S, P),
                     np.full((S, P), np.nan), {}, flags, measures, contrast, info, emb)
    _attribute_scores(model, out, attr_table)
    return out


def _attribute_scores(model: Any, out: ClipScores, attr_table: Any) -> None:
    """Fill ``predicted`` and ``attribute`` (the share of named attributes classified as intended)."""
    S, P = out.status.shape
    wanted = {a for want in out.info.intended for a in want}
    ok = np.flatnonzero((out.status == "ok").ravel())
    preds = predictions(model, out.embeddings[ok], attr_table, wanted) if len(ok) and wanted else {}
    for attr in wanted:
        grid = np.full(S * P, None, dtype=object)
        for k, row in enumerate(ok):
            if attr in out.info.intended[row % P]:
                grid[row] = preds[attr][k]
        out.predicted[attr] = grid.reshape(S, P)
    per_attr = [out.correct(a) for a in sorted(wanted)]
    if per_attr:
        with warnings.catch_warnings():  # a clip with no named attribute: NaN, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            out.attribute = np.nanmean(np.stack(per_attr), axis=0)
