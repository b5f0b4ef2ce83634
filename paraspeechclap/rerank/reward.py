"""The reward API: caption-audio cosine or contrastive adherence as a batched reward, and best-of-N over a generator.

``score="cosine"`` (default) is the caption-audio cosine. ``score="contrastive"`` is the style-adherence benchmark's
contrastive score (:func:`paraspeechclap.ttseval.contrastive.contrastive_scores`, the one function that computes it):
the probability that the caption beats captions flipping one named attribute (deep <-> high-pitched, slow <-> fast,
...); the same numbers as ``paraspeechclap tts-eval``. Works with any model that has the core numpy API
(``embed_audio``, ``embed_text``, rows L2-normalised; contrastive also needs ``logit_scale``); needs only numpy (and
scipy for contrastive), so it imports without training extras.
"""

from __future__ import annotations

import inspect
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .selection import select

__all__ = ["reward", "best_of_n", "BestOfNResult", "embed_audio_safely", "caption_embeddings", "REWARD_SCORES",
           "contrastive_candidate_scores"]

AudioLike = Any  # str | Path | bytes | (np.ndarray, sample_rate)
#: what a reward can be: the caption-audio cosine, or the contrastive adherence of paraspeechclap.ttseval
REWARD_SCORES = ("cosine", "contrastive")


def _is_single_audio(audio: Any) -> bool:
    if isinstance(audio, (str, Path, bytes, bytearray)):
        return True
    return (
        isinstance(audio, tuple)
        and len(audio) == 2
        and isinstance(audio[0], np.ndarray)
        and isinstance(audio[1], (int, np.integer))
    )


def _check_audio(audio: Any, where: str) -> None:
    if not _is_single_audio(audio):
        raise TypeError(
            f"{where}: expected a path, bytes or an (array, sample_rate) tuple, "
            f"got {type(audio).__name__}"
        )


def caption_embeddings(model: Any, captions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Embed each distinct caption once: returns (unique embeddings [U, D], row of each caption [N])."""
    unique = list(dict.fromkeys(captions))
    where = {text: i for i, text in enumerate(unique)}
    emb = np.asarray(model.embed_text(unique), dtype=np.float32)
    return emb, np.array([where[c] for c in captions], dtype=np.int64)


def reward(
    model: Any,
    audios: AudioLike | Sequence[AudioLike],
    captions: str | Sequence[str],
    batch_size: int = 8,
    score: str = "cosine",
) -> np.ndarray:
    """The reward of each audio for its caption, as a float32 array of shape [N].

    ``audios``: a list of paths, bytes or ``(array, sample_rate)`` tuples at any sample rate (a
    single one is accepted too). ``captions``: one caption per audio, or one string for all.
    ``score``: ``"cosine"`` (the cosine similarity) or ``"contrastive"`` (contrastive adherence in [0, 1]; NaN, with
    a warning, for a caption that names no attribute the counterfactual table can flip).
    Each distinct caption is embedded once; audio is embedded in batches of ``batch_size``.
    Element i equals ``reward(model, [audios[i]], [captions[i]])[0]`` (up to float error).
    """
    if score not in REWARD_SCORES:
        raise ValueError(f"reward: score must be one of {REWARD_SCORES}, got {score!r}")
    if _is_single_audio(audios):
        audios = [audios]
    audios = list(audios)
    for i, audio in enumerate(audios):
        _check_audio(audio, f"reward: audios[{i}]")
    if isinstance(captions, str):
        captions = [captions] * len(audios)
    captions = list(captions)
    if len(captions) != len(audios):
        raise ValueError(f"reward: {len(audios)} audios but {len(captions)} captions")
    if not audios:
        return np.zeros(0, dtype=np.float32)
    if score == "contrastive":
        audio_emb = np.asarray(model.embed_audio(audios, batch_size=batch_size), dtype=np.float32)
        return _contrastive(model, audio_emb, captions)
    text_emb, rows = caption_embeddings(model, captions)
    audio_emb = np.asarray(model.embed_audio(audios, batch_size=batch_size), dtype=np.float32)
    return np.einsum("nd,nd->n", audio_emb, text_emb[rows]).astype(np.float32)


def _contrastive(model: Any, audio_emb: np.ndarray, captions: Sequence[str]) -> np.ndarray:
    """Contrastive adherence (float32, NaN where a caption has no counterfactual: warned once per call)."""
    import warnings

    from ..ttseval.contrastive import contrastive_scores

    result = contrastive_scores(model, audio_emb, captions)
    bad = [i for i, problem in enumerate(result.problems) if problem is not None]
    if bad:
        warnings.warn(f"contrastive reward: {len(bad)} of {len(captions)} item(s) have no score (NaN), e.g. "
                      f"item {bad[0]}: {result.problems[bad[0]]}", RuntimeWarning, stacklevel=3)
    return result.scores.astype(np.float32)


def contrastive_candidate_scores(model: Any, prompts: Sequence[Any], batch_size: int | None = 8,
                                 show_progress: bool = True) -> tuple[list[np.ndarray], list[dict[int, str]]]:
    """Contrastive adherence of every candidate of every rerank prompt (``prompts``: :class:`.inputs.Prompt`), each
    distinct file embedded once: ``(scores per prompt, {candidate position: error} per prompt)``. A candidate whose
    audio fails, or of a caption with no counterfactual, gets NaN and an error (it is never chosen)."""
    flat = [(p, c) for p in range(len(prompts)) for c in range(len(prompts[p].candidates))]
    paths = list(dict.fromkeys(str(prompts[p].candidates[c].path) for p, c in flat))
    bar = None
    if show_progress and paths:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), desc="embedding candidates", unit="file")
    try:
        audio_emb, failed = embed_audio_safely(model, paths, batch_size=batch_size,
                                               progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    from ..ttseval.contrastive import contrastive_scores

    row_of = {path: k for k, path in enumerate(paths)}
    rows = [row_of[str(prompts[p].candidates[c].path)] for p, c in flat]
    result = contrastive_scores(model, audio_emb[rows] if rows else np.zeros((0, audio_emb.shape[-1])),
                                [prompts[p].caption for p, _ in flat])
    scores = [np.full(len(p.candidates), np.nan, np.float32) for p in prompts]
    errors: list[dict[int, str]] = [{} for _ in prompts]
    for k, (p, c) in enumerate(flat):
        if rows[k] in failed:
            errors[p][c] = failed[rows[k]]
        elif result.problems[k] is not None:
            errors[p][c] = result.problems[k]
        else:
            scores[p][c] = result.scores[k]
    return scores, errors


def embed_audio_safely(
    model: Any,
    audios: Sequence[AudioLike],
    batch_size: int | None = 8,
    chunk: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, dict[int, str]]:
    """Embed many audios, isolating the ones that fail: returns (embeddings with NaN rows, errors).

    Runs the project's one bulk loop (:func:`paraspeechclap.inference.embed_items`): decoding a bounded number ahead,
    a failed batch retried one input at a time, so one bad file costs only itself. ``errors`` maps the position of
    each failed item to the error message; ``progress(1)`` is called as each item finishes. (``chunk`` is accepted
    for compatibility and ignored: the loop bounds its own memory.)
    """
    from ..inference import embed_items

    errors: dict[int, str] = {}
    rows: list[np.ndarray | None] = [None] * len(audios)
    done = (lambda result: progress(1)) if progress is not None else None
    for result in embed_items(model, list(audios), batch_size=batch_size, on_done=done):
        if result.ok:
            rows[result.index] = result.embedding
        else:
            errors[result.index] = result.error
    dim = next((r.shape[-1] for r in rows if r is not None), 0)
    out = np.full((len(audios), dim), np.nan, dtype=np.float32)
    for i, row in enumerate(rows):
        if row is not None:
            out[i] = row
    return out, errors


@dataclass
class BestOfNResult:
    """The outcome of :func:`best_of_n`.

    ``index`` is the winner's call number (0-based), ``audio`` what ``generate`` returned for it,
    ``scores`` every candidate's reward in call order, ``margin`` the winner's lead over the
    runner-up (None for n = 1), ``candidates`` everything ``generate`` returned.
    """

    caption: str
    index: int
    audio: AudioLike
    score: float
    scores: np.ndarray
    margin: float | None
    candidates: list[AudioLike]


def _takes_index(generate: Callable) -> bool:
    """True when ``generate`` has two required positional parameters (or ``*args``)."""
    try:
        params = inspect.signature(generate).parameters.values()
    except (TypeError, ValueError):
        return False
    required = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(required) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def best_of_n(
    model: Any,
    generate: Callable[..., AudioLike],
    caption: str,
    n: int,
    seed: int | None = None,
    batch_size: int = 8,
    pass_index: bool | None = None,
    score: str = "cosine",
) -> BestOfNResult:
    """Generate ``n`` candidates for ``caption`` and return the one the model scores highest.

    ``generate`` is called n times, as ``generate(caption, i)`` with i = 0..n-1 when it has two
    required positional parameters (or ``*args``), otherwise as ``generate(caption)``;
    ``pass_index`` forces either form. Each call returns a path, bytes or ``(array, sample_rate)``.
    With ``seed`` set, Python's ``random``, numpy's global generator and torch (if imported) are
    seeded with ``seed + i`` before call i, so stochastic generators are reproducible.
    Ties go to the earliest candidate. ``score``: the reward (see :func:`reward`).
    """
    if n < 1:
        raise ValueError(f"best_of_n: n must be at least 1, got {n}")
    with_index = _takes_index(generate) if pass_index is None else pass_index
    candidates: list[AudioLike] = []
    for i in range(n):
        if seed is not None:
            _seed_everything(seed + i)
        audio = generate(caption, i) if with_index else generate(caption)
        _check_audio(audio, f"best_of_n: generate call {i} returned")
        candidates.append(audio)
    scores = reward(model, candidates, caption, batch_size=batch_size, score=score)
    chosen = select(scores)
    if chosen.chosen is None:
        raise ValueError(f"best_of_n: no candidate had a finite score (scores {scores.tolist()})")
    return BestOfNResult(
        caption=caption,
        index=chosen.chosen,
        audio=candidates[chosen.chosen],
        score=float(scores[chosen.chosen]),
        scores=scores,
        margin=chosen.margin,
        candidates=candidates,
    )
