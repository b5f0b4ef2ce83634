"""Caption retrieval: audio-to-text over exact-unique captions (the paper's protocol) plus text-to-audio.

Given audio embeddings and captions, de-duplicate the captions (exact strings), embed the unique texts,
score ``similarity = audio @ textᵀ`` (raw cosines, no scale) and compute :func:`metrics.retrieval_metrics`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from . import _io
from .metrics import REFERENCE_RETRIEVAL_KEYS, audio_to_text_ranks, deduplicate_captions, retrieval_metrics, top_k

#: Retrieval numbers the reference does not compute (labelled as extensions in reports).
RETRIEVAL_EXTENSIONS = ("mAP@10_A2T", "R@1_T2A", "R@5_T2A", "R@10_T2A", "MedR_T2A", "MeanR_T2A", "mAP@10_T2A")


@dataclass
class RetrievalResult:
    metrics: Dict[str, float]
    ids: List[str]
    paths: List[str]
    captions: List[str]
    unique_texts: List[str]
    targets: np.ndarray  # [N_audio] index into unique_texts
    similarity: np.ndarray  # [N_audio, N_unique]
    ranks: np.ndarray  # [N_audio] audio-to-text ranks (1-based, ties pessimistic)


def evaluate_retrieval(audio_embeddings: np.ndarray, captions: Sequence[str],
                       embed_text: Callable[[List[str]], np.ndarray],
                       ids: Optional[Sequence[str]] = None, paths: Optional[Sequence[str]] = None) -> RetrievalResult:
    """Score clips against their de-duplicated captions; ``embed_text`` maps strings to L2-normalised rows."""
    audio = np.asarray(audio_embeddings, dtype=np.float32)
    if audio.ndim != 2 or audio.shape[0] == 0:
        raise ValueError(f"no audio embeddings to evaluate (shape {audio.shape})")
    if len(captions) != audio.shape[0]:
        raise ValueError(f"{audio.shape[0]} audio embeddings but {len(captions)} captions")
    unique_texts, targets = deduplicate_captions(list(captions))
    text = np.asarray(embed_text(unique_texts), dtype=np.float32)
    if text.shape != (len(unique_texts), audio.shape[1]):
        raise ValueError(f"text embeddings have shape {text.shape}, expected {(len(unique_texts), audio.shape[1])}")
    similarity = audio.astype(np.float64) @ text.astype(np.float64).T
    n = audio.shape[0]
    return RetrievalResult(
        metrics=retrieval_metrics(similarity, targets),
        ids=list(ids) if ids is not None else [str(i) for i in range(n)],
        paths=list(paths) if paths is not None else [""] * n,
        captions=list(captions),
        unique_texts=unique_texts,
        targets=targets,
        similarity=similarity,
        ranks=audio_to_text_ranks(similarity, targets),
    )


def top_k_records(result: RetrievalResult, k: int = 10) -> List[dict]:
    """The reference's ``top_k_retrieved_captions`` entries, with the clip's id, path and rank added."""
    records = []
    for i in range(len(result.ids)):
        row = result.similarity[i]
        records.append({
            "audio_idx": i,
            "audio_id": result.ids[i],
            "audio_path": result.paths[i],
            "ground_truth_caption": result.captions[i],
            "rank": int(result.ranks[i]),
            "retrieved_top_k": [{"caption": result.unique_texts[j], "score": float(row[j])} for j in top_k(row, k)],
        })
    return records


def write_outputs(result: RetrievalResult, folder: Path, k: int = 10, save_similarity: bool = False) -> List[Path]:
    """Reference-compatible files in ``folder``: ``final_retrieval_metrics.yaml``,
    ``top_{k}_retrieved_captions.json`` (plus ids and paths), ``ranks_retrieval.csv`` and, when asked,
    ``similarity_matrix_retrieval.npy`` with ``unique_captions.json``."""
    import pandas as pd

    folder = Path(folder)
    written = [
        _io.write_yaml(folder / "final_retrieval_metrics.yaml", {key: result.metrics[key] for key in REFERENCE_RETRIEVAL_KEYS}),
        # named by the requested k as the reference does; each list holds min(k, unique captions) entries
        _io.write_json(folder / f"top_{k}_retrieved_captions.json", top_k_records(result, k)),
        _io.write_dataframe_csv(folder / "ranks_retrieval.csv", pd.DataFrame({
            "id": result.ids, "audio_path": result.paths, "caption": result.captions,
            "caption_index": result.targets, "rank": result.ranks}), index=False),
    ]
    if save_similarity:
        written.append(_io.atomic_write(folder / "similarity_matrix_retrieval.npy",
                                        lambda handle: np.save(handle, result.similarity.astype(np.float32)), binary=True))
        written.append(_io.write_json(folder / "unique_captions.json", result.unique_texts))
    return written
