"""Per-attribute adherence: for each attribute a prompt names, is the clip classified as the intended class?

The classes and the template come from the model's attribute table (:mod:`paraspeechclap.annotate.attributes`,
``table_for_model``); a clip's probabilities per attribute are that table's classification (softmax over the
attribute's classes of ``logit_scale * cosine``, or the attribute's probe where the table has one: its ``"none"`` is
the neutral class, or, for an attribute without one, matches no class), and the predicted class is the most probable
one. The intended class
of an attribute is the prompt's label, or, without labels, the class its caption names (parsed with the
counterfactual table; a class the model's table lacks is looked up under its declared equivalents, e.g. ``shrill`` ->
``high-pitched``; the first attribute of the table holding it is used).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .counterfactual import CounterfactualTable

__all__ = ["find_class", "intended_classes", "predictions"]


def find_class(cls: str, attr_table: Any, cf_table: CounterfactualTable,
               attribute: str | None = None) -> tuple[str, str] | None:
    """``(attribute, class)`` of the model's table for class word ``cls`` (or one of its equivalents), or None."""
    for name in (cls, *cf_table.equivalents(cls)):
        for a in attr_table.attributes:
            if (attribute is None or a.name == attribute) and name in a.classes:
                return a.name, name
    return None


def intended_classes(labels: Any, caption_classes: dict[str, str], attr_table: Any,
                     cf_table: CounterfactualTable) -> tuple[dict[str, str], list[str]]:
    """The model-table ``{attribute: intended class}`` of a prompt, and notes on labels that could not be used.

    ``labels``: a ``{attribute: class}`` object, a list of class words, or None (then ``caption_classes``, the
    counterfactual table's parse of the caption, is used)."""
    out: dict[str, str] = {}
    notes: list[str] = []
    if isinstance(labels, dict):
        for attribute, cls in labels.items():
            hit = find_class(str(cls), attr_table, cf_table, attribute=str(attribute)) if isinstance(cls, str) else None
            if hit is None:
                notes.append(f"label {attribute}={cls!r} is not a class of that attribute in the model's table")
            else:
                out[hit[0]] = hit[1]
        return out, notes
    if isinstance(labels, list):
        words = [w for w in labels if isinstance(w, str)]
        notes += [f"label {w!r} is not a string" for w in labels if not isinstance(w, str)]
    elif labels is None:
        words = list(caption_classes.values())
    else:
        return out, [f"labels must be an object or a list, got {type(labels).__name__}"]
    for word in words:
        hit = find_class(word, attr_table, cf_table)
        if hit is None:
            notes.append(f"{word!r} is not a class of the model's attribute table")
        elif hit[0] in out and out[hit[0]] != hit[1]:
            notes.append(f"two classes for {hit[0]} ({out[hit[0]]!r}, {hit[1]!r}): the first is used")
        else:
            out[hit[0]] = hit[1]
    return out, notes


def predictions(model: Any, embeddings: np.ndarray, attr_table: Any,
                attributes: set[str] | None = None) -> dict[str, list[str]]:
    """The predicted class of every row of ``embeddings`` for each attribute (those in ``attributes`` when given),
    through the table's own classification (:meth:`AttributeTable.probabilities`: zero-shot, or an attribute's probe,
    whose ``"none"`` matches no class)."""
    if attributes is not None:
        attr_table = type(attr_table)(attr_table.family, attr_table.template,
                                      [a for a in attr_table.attributes if a.name in attributes],
                                      attr_table.calibration, attr_table.source)
    probs = attr_table.probabilities(model, embeddings)
    return {a.name: [a.outcomes[int(k)] for k in np.argmax(probs[a.name], axis=1)] if len(embeddings) else []
            for a in attr_table.attributes}
