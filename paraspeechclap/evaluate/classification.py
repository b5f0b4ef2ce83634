"""Zero-shot style classification: candidates embedded through prompt templates, argmax over cosines.

With one template each candidate's prompt is ``fill_template(template, candidate)`` (default
``"A person is speaking in a {} style."``, the reference's). With several templates the candidate's text
embedding is the mean of its prompts' embeddings, re-normalised to unit length (prompt ensembling).
Metrics: accuracy, UAR and macro-F1 over the full sorted candidate set (see :mod:`.metrics`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..prompts import DEFAULT_TEMPLATE, fill_template
from . import _io
from .metrics import check_labels, classification_metrics, confusion, per_class_table, predict



def check_templates(templates: Sequence[str]) -> List[str]:
    """Each template must contain exactly one ``{}`` placeholder."""
    templates = list(templates)
    if not templates:
        raise ValueError("no prompt template given")
    for template in templates:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ValueError(f"template {template!r} must contain exactly one '{{}}' placeholder")
    return templates


def candidate_embeddings(embed_text: Callable[[List[str]], np.ndarray], candidates: Sequence[str],
                         templates: Sequence[str] = (DEFAULT_TEMPLATE,)) -> np.ndarray:
    """``[C, D]`` unit-length text embeddings of the candidates (mean over templates when there are several)."""
    templates = check_templates(templates)
    per_template = [np.asarray(embed_text([fill_template(t, c) for c in candidates]), dtype=np.float64) for t in templates]
    if len(per_template) == 1:
        return per_template[0]
    mean = np.mean(per_template, axis=0)
    return mean / np.linalg.norm(mean, axis=1, keepdims=True).clip(min=1e-12)


@dataclass
class ClassificationResult:
    metrics: Dict[str, float]
    candidates: List[str]  # in the given order (columns of ``scores``)
    labels: List[str]  # sorted candidates (axes of ``confusion``)
    ids: List[str]
    paths: List[str]
    gold: List[str]
    predictions: List[str]
    scores: np.ndarray  # [N, C] cosines
    per_class: List[Dict[str, object]]
    confusion: np.ndarray  # [C, C] rows true, columns predicted, over ``labels``


def evaluate_classification(audio_embeddings: np.ndarray, gold: Sequence[str], candidates: Sequence[str],
                            class_embeddings: np.ndarray, ids: Optional[Sequence[str]] = None,
                            paths: Optional[Sequence[str]] = None) -> ClassificationResult:
    """Argmax of ``audio @ classᵀ`` per clip, and the metrics against ``gold``."""
    candidates = list(candidates)
    check_labels(list(gold), candidates)
    audio = np.asarray(audio_embeddings, dtype=np.float64)
    classes = np.asarray(class_embeddings, dtype=np.float64)
    if audio.ndim != 2 or audio.shape[0] != len(gold):
        raise ValueError(f"{audio.shape[0] if audio.ndim == 2 else audio.shape} audio embeddings for {len(gold)} gold labels")
    if classes.shape != (len(candidates), audio.shape[1]):
        raise ValueError(f"class embeddings have shape {classes.shape}, expected {(len(candidates), audio.shape[1])}")
    scores = audio @ classes.T
    predictions = predict(scores, candidates)
    labels, matrix = confusion(list(gold), predictions, candidates)
    n = len(gold)
    return ClassificationResult(
        metrics=classification_metrics(list(gold), predictions, candidates),
        candidates=candidates,
        labels=labels,
        ids=list(ids) if ids is not None else [str(i) for i in range(n)],
        paths=list(paths) if paths is not None else [""] * n,
        gold=list(gold),
        predictions=predictions,
        scores=scores,
        per_class=per_class_table(list(gold), predictions, candidates),
        confusion=matrix,
    )


def confusion_frame(result: ClassificationResult):
    """The confusion matrix as the reference's pandas crosstab: index ``True Label``, columns ``Predicted Label``."""
    import pandas as pd

    return pd.DataFrame(result.confusion, index=pd.Index(result.labels, name="True Label"),
                        columns=pd.Index(result.labels, name="Predicted Label"))


def write_outputs(result: ClassificationResult, folder: Path) -> List[Path]:
    """Reference-compatible files in ``folder``: ``final_classification_metrics.yaml``,
    ``predictions_classification.csv`` (``prediction,target`` plus id, path, correctness and one cosine column
    per candidate) and ``confusion_matrix_classification.csv``."""
    import pandas as pd

    folder = Path(folder)
    frame = pd.DataFrame({"prediction": result.predictions, "target": result.gold, "id": result.ids,
                          "audio_path": result.paths,
                          "correct": [p == g for p, g in zip(result.predictions, result.gold)]})
    for j, candidate in enumerate(result.candidates):
        frame[f"score_{candidate}"] = result.scores[:, j]
    return [
        _io.write_yaml(folder / "final_classification_metrics.yaml", dict(result.metrics)),
        _io.write_dataframe_csv(folder / "predictions_classification.csv", frame, index=False),
        _io.write_dataframe_csv(folder / "confusion_matrix_classification.csv", confusion_frame(result)),
    ]
