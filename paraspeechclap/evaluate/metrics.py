"""Retrieval and classification metrics (numpy and scikit-learn only; no model, no torch).

Definitions follow the reference evaluation scripts (``reference-behaviour.md`` §5):

* Audio-to-text retrieval scores every clip against the *exact-unique* captions (identical strings are one
  candidate, paraphrases are not merged). Ranks count from 1. ``R@k`` is ``100 * mean(rank <= k)``,
  ``MedR`` is the **lower** median (for an even count, the lower of the two middle values, an integer),
  ``MeanR`` is the mean rank.
* Text-to-audio retrieval (an extension; the reference does not compute it) queries with each unique
  caption; a hit on any clip carrying that caption counts, so the rank is that of the best-placed correct clip.
* ``mAP@10`` (an extension) is the mean over queries of ``sum_{k<=10} P(k) rel(k) / min(n_relevant, 10)``.
  For audio-to-text each clip has one correct caption, so it equals the reciprocal rank cut at 10.
* Classification: accuracy, UAR (= macro recall) and macro-F1 in percent, computed by scikit-learn over
  the **full sorted candidate set** with ``zero_division=0``. A candidate with no gold items therefore
  contributes a recall (and F1) of 0, exactly as in the reference.

Tie policy (documented, deterministic, order-independent): a tie counts **against** the correct item.
The rank of a correct item is ``1 + (number of other candidates whose score is >= its score)``; for
text-to-audio, ``1 + (number of non-matching clips scoring >= the best matching clip)``. The reference used a
non-stable ``torch.argsort`` whose tie order is undefined; on tie-free scores (such as the parity fixture)
both agree. In ranked lists (top-k, mAP) tied items are ordered non-matching first. Classification breaks
ties by candidate order (``argmax`` takes the first maximum), as the reference does.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

RECALL_KS: Tuple[int, ...] = (1, 5, 10)
MAP_K = 10


# ----------------------------------------------------------------------------------------------- helpers
def deduplicate_captions(captions: Sequence[str]) -> Tuple[List[str], np.ndarray]:
    """Exact-string de-duplication in first-occurrence order.

    Returns ``(unique_texts, targets)`` where ``targets[i]`` is the index in ``unique_texts`` of caption ``i``.
    """
    index: Dict[str, int] = {}
    unique: List[str] = []
    targets = np.empty(len(captions), dtype=np.int64)
    for i, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise TypeError(f"caption {i} is {type(caption).__name__}, expected a string")
        j = index.get(caption)
        if j is None:
            j = index[caption] = len(unique)
            unique.append(caption)
        targets[i] = j
    return unique, targets


def _check_similarity(similarity: np.ndarray, n_rows_expected: int | None = None) -> np.ndarray:
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2:
        raise ValueError(f"similarity must be 2-D [queries, candidates], got shape {sim.shape}")
    if sim.shape[0] == 0 or sim.shape[1] == 0:
        raise ValueError(f"similarity is empty (shape {sim.shape}); nothing to evaluate")
    if n_rows_expected is not None and sim.shape[0] != n_rows_expected:
        raise ValueError(f"similarity has {sim.shape[0]} rows but {n_rows_expected} targets were given")
    if not np.all(np.isfinite(sim)):
        raise ValueError("similarity contains NaN or Inf values")
    return sim


def _check_targets(targets: Sequence[int], n_candidates: int) -> np.ndarray:
    gt = np.asarray(targets)
    if gt.ndim != 1 or not np.issubdtype(gt.dtype, np.integer):
        raise ValueError("targets must be a 1-D integer array")
    if gt.size and (gt.min() < 0 or gt.max() >= n_candidates):
        raise ValueError(f"targets must lie in [0, {n_candidates}), got range [{gt.min()}, {gt.max()}]")
    return gt.astype(np.int64)


def lower_median(values: Iterable[float]) -> float:
    """The lower middle value (``torch.median`` semantics): for an even count, the smaller of the two middles."""
    ordered = np.sort(np.asarray(list(values), dtype=np.float64).ravel())
    if ordered.size == 0:
        raise ValueError("median of an empty set")
    return ordered[(ordered.size - 1) // 2]


def rank_summary(ranks: np.ndarray, suffix: str, ks: Sequence[int] = RECALL_KS) -> Dict[str, float]:
    """``R@k`` (percent), ``MedR`` (lower median, int) and ``MeanR`` from 1-based ranks."""
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        raise ValueError("no ranks to summarise")
    out: Dict[str, float] = {}
    for k in ks:
        out[f"R@{k}_{suffix}"] = float(100.0 * np.mean(ranks <= k))
    out[f"MedR_{suffix}"] = int(lower_median(ranks.tolist()))
    out[f"MeanR_{suffix}"] = float(np.mean(ranks))
    return out


# ----------------------------------------------------------------------------------------------- retrieval
def audio_to_text_ranks(similarity: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    """1-based rank of each row's correct column; ties count against the correct item (pessimistic)."""
    sim = _check_similarity(similarity)
    gt = _check_targets(targets, sim.shape[1])
    if gt.size != sim.shape[0]:
        raise ValueError(f"similarity has {sim.shape[0]} rows but {gt.size} targets were given")
    correct = sim[np.arange(sim.shape[0]), gt]
    # others with score >= correct: all columns with score >= correct, minus the correct column itself
    return (sim >= correct[:, None]).sum(axis=1).astype(np.int64)


def audio_to_text_metrics(similarity: np.ndarray, targets: Sequence[int]) -> Dict[str, float]:
    """The reference's ``calculate_audio_to_text_retrieval_metrics``: R@1/5/10 (%), MedR, MeanR.

    Keys and order: ``R@1_A2T, R@5_A2T, R@10_A2T, MedR_A2T, MeanR_A2T``.
    """
    return rank_summary(audio_to_text_ranks(similarity, targets), "A2T")


def _relevance_order(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Indices by descending score; among tied scores non-relevant items come first (pessimistic)."""
    return np.lexsort((relevant.astype(np.int8), -scores))


def average_precision_at_k(scores: np.ndarray, relevant: np.ndarray, k: int = MAP_K) -> float:
    """AP@k of one query: ``sum_{i<=k} P(i) rel(i) / min(n_relevant, k)``; 0 when nothing is relevant."""
    relevant = np.asarray(relevant, dtype=bool)
    n_rel = int(relevant.sum())
    if n_rel == 0:
        return 0.0
    order = _relevance_order(np.asarray(scores, dtype=np.float64), relevant)[:k]
    hits = relevant[order].astype(np.float64)
    precision = np.cumsum(hits) / np.arange(1, hits.size + 1)
    return float((precision * hits).sum() / min(n_rel, k))


def text_to_audio_ranks(similarity: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    """Per unique caption (column), the 1-based rank of its best-placed matching clip.

    ``similarity`` is ``[N_audio, N_unique]`` as for audio-to-text; ``targets[i]`` is clip ``i``'s caption.
    Columns that no clip carries are skipped (they cannot occur after :func:`deduplicate_captions`).
    """
    sim = _check_similarity(similarity)
    gt = _check_targets(targets, sim.shape[1])
    ranks = []
    for t in np.unique(gt):
        relevant = gt == t
        best = sim[relevant, t].max()
        ranks.append(1 + int((sim[~relevant, t] >= best).sum()))
    return np.asarray(ranks, dtype=np.int64)


def text_to_audio_metrics(similarity: np.ndarray, targets: Sequence[int], k: int = MAP_K) -> Dict[str, float]:
    """Extension: text-to-audio R@1/5/10 (%), MedR, MeanR and mAP@10 (%), one query per unique caption."""
    sim = _check_similarity(similarity)
    gt = _check_targets(targets, sim.shape[1])
    out = rank_summary(text_to_audio_ranks(sim, gt), "T2A")
    aps = [average_precision_at_k(sim[:, t], gt == t, k) for t in np.unique(gt)]
    out[f"mAP@{k}_T2A"] = float(100.0 * np.mean(aps))
    return out


def audio_to_text_map(similarity: np.ndarray, targets: Sequence[int], k: int = MAP_K) -> float:
    """Extension: audio-to-text mAP@k in percent (one correct caption per clip: reciprocal rank cut at k)."""
    ranks = audio_to_text_ranks(similarity, targets)
    return float(100.0 * np.mean(np.where(ranks <= k, 1.0 / ranks, 0.0)))


def retrieval_metrics(similarity: np.ndarray, targets: Sequence[int]) -> Dict[str, float]:
    """All retrieval numbers: the reference's audio-to-text five, then the extensions
    (``mAP@10_A2T`` and the text-to-audio set)."""
    out = audio_to_text_metrics(similarity, targets)
    out[f"mAP@{MAP_K}_A2T"] = audio_to_text_map(similarity, targets)
    out.update(text_to_audio_metrics(similarity, targets))
    return out


REFERENCE_RETRIEVAL_KEYS = ("R@1_A2T", "R@5_A2T", "R@10_A2T", "MedR_A2T", "MeanR_A2T")


def top_k(similarity_row: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, best first; ties keep the lower index first (stable)."""
    row = np.asarray(similarity_row)
    return np.argsort(-row, kind="stable")[: min(k, row.size)]


# ----------------------------------------------------------------------------------------------- classification
def check_labels(gold: Sequence[str], candidates: Sequence[str], what: str = "gold labels") -> List[str]:
    """Validate a candidate set against gold labels; return the sorted candidate list.

    Raises ``ValueError`` for an empty gold set, an empty or duplicated candidate list, or a gold label
    outside the candidates (compared exactly, case-sensitively, as the reference does).
    """
    candidates = list(candidates)
    if not candidates:
        raise ValueError("the candidate list is empty")
    dupes = sorted({c for c in candidates if candidates.count(c) > 1})
    if dupes:
        raise ValueError(f"duplicated candidates: {dupes}")
    if len(gold) == 0:
        raise ValueError(f"no {what} to evaluate (empty set)")
    outside = sorted(set(gold) - set(candidates))
    if outside:
        raise ValueError(f"{what} not among the candidates {candidates}: {outside} (exact, case-sensitive match)")
    return sorted(candidates)


def predict(scores: np.ndarray, candidates: Sequence[str]) -> List[str]:
    """Argmax over candidates (first maximum wins a tie), as candidate strings."""
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] != len(candidates):
        raise ValueError(f"scores must be [N, {len(candidates)}], got {scores.shape}")
    return [candidates[j] for j in np.argmax(scores, axis=1)]


def classification_metrics(gold: Sequence[str], predicted: Sequence[str], candidates: Sequence[str]) -> Dict[str, float]:
    """Accuracy, UAR and macro-F1 in percent over the full sorted candidate set (zero_division=0).

    Keys and order as the reference: ``Classification_Accuracy, Classification_UAR, Classification_Macro_F1``.
    """
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    labels = check_labels(gold, candidates)
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} gold labels")
    check_labels(predicted, candidates, what="predictions")
    return {
        "Classification_Accuracy": float(100.0 * accuracy_score(gold, predicted)),
        "Classification_UAR": float(100.0 * recall_score(gold, predicted, average="macro", labels=labels, zero_division=0)),
        "Classification_Macro_F1": float(100.0 * f1_score(gold, predicted, average="macro", labels=labels, zero_division=0)),
    }


def per_class_table(gold: Sequence[str], predicted: Sequence[str], candidates: Sequence[str]) -> List[Dict[str, object]]:
    """One row per candidate (sorted): support, predicted count, precision, recall and F1 in percent."""
    from sklearn.metrics import precision_recall_fscore_support

    labels = check_labels(gold, candidates)
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=labels, average=None, zero_division=0
    )
    predicted_counts = {label: 0 for label in labels}
    for p in predicted:
        predicted_counts[p] = predicted_counts.get(p, 0) + 1
    return [
        {
            "class": label,
            "support": int(support[i]),
            "predicted": int(predicted_counts[label]),
            "precision": float(100.0 * precision[i]),
            "recall": float(100.0 * recall[i]),
            "f1": float(100.0 * f1[i]),
        }
        for i, label in enumerate(labels)
    ]


def confusion(gold: Sequence[str], predicted: Sequence[str], candidates: Sequence[str]) -> Tuple[List[str], np.ndarray]:
    """Confusion matrix over the sorted candidates: rows = true label, columns = predicted label."""
    from sklearn.metrics import confusion_matrix

    labels = check_labels(gold, candidates)
    return labels, confusion_matrix(gold, predicted, labels=labels)
