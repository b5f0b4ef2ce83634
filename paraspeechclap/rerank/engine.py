"""Score every candidate of a :class:`RerankInput` with a model and select one per prompt."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .inputs import Prompt, RerankInput
from .reward import caption_embeddings, embed_audio_safely
from .selection import Gate, Selection, select

__all__ = ["PromptResult", "rerank_input", "select_all"]


@dataclass
class PromptResult:
    """A prompt, its candidates' cosine scores, the selection, and per-candidate audio errors."""

    prompt: Prompt
    scores: np.ndarray
    selection: Selection
    errors: dict[int, str] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.selection.chosen is None


def select_all(
    prompts: Sequence[Prompt],
    scores: Sequence[np.ndarray],
    errors: Sequence[Mapping[int, str]] | None = None,
    gates: Sequence[Gate] = (),
    weights: Mapping[str, float] | None = None,
) -> list[PromptResult]:
    """Apply :func:`select` to each prompt given its candidates' scores (NaN = not scored)."""
    errors = errors if errors is not None else [{} for _ in prompts]
    results = []
    for prompt, prompt_scores, prompt_errors in zip(prompts, scores, errors, strict=True):
        sel = select(
            list(prompt_scores),
            indices=[c.index for c in prompt.candidates],
            columns=[c.columns for c in prompt.candidates],
            gates=gates,
            weights=weights,
        )
        results.append(PromptResult(prompt, np.asarray(prompt_scores, np.float32), sel, dict(prompt_errors)))
    return results


def rerank_input(
    model: Any,
    data: RerankInput,
    gates: Sequence[Gate] = (),
    weights: Mapping[str, float] | None = None,
    batch_size: int | None = 8,
    show_progress: bool = True,
) -> list[PromptResult]:
    """Embed each distinct caption once and each distinct audio file once, then select per prompt.

    A candidate whose audio fails to load or embed gets a NaN score and an entry in ``errors``;
    it is never chosen.
    """
    prompts = data.prompts
    flat = [(p, c) for p in range(len(prompts)) for c in range(len(prompts[p].candidates))]
    paths = list(dict.fromkeys(str(prompts[p].candidates[c].path) for p, c in flat))  # each file once
    row_of = {path: k for k, path in enumerate(paths)}
    text_emb, rows = caption_embeddings(model, [p.caption for p in prompts]) if prompts else (None, None)

    bar = None
    if show_progress and paths:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), desc="embedding candidates", unit="file")
    try:
        audio_emb, failed = embed_audio_safely(
            model, paths, batch_size=batch_size, progress=bar.update if bar else None
        )
    finally:
        if bar is not None:
            bar.close()

    per_prompt_scores = [np.full(len(p.candidates), np.nan, np.float32) for p in prompts]
    per_prompt_errors: list[dict[int, str]] = [{} for _ in prompts]
    for p, c in flat:
        k = row_of[str(prompts[p].candidates[c].path)]
        if k in failed:
            per_prompt_errors[p][c] = failed[k]
        else:
            per_prompt_scores[p][c] = float(audio_emb[k] @ text_emb[rows[p]])
    return select_all(prompts, per_prompt_scores, per_prompt_errors, gates, weights)
