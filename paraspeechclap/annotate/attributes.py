"""The attribute -> classes table of a model family, as data (``paraspeechclap/models/**/attributes*.json``).

Each file names a family, the speech encoders it matches, the classification template, and per attribute its
classes, optional neutral classes (probabilities are kept, but they make no tag and no caption words) and an
optional calibrated ``threshold``. Probabilities are the model's zero-shot classification within one attribute
(softmax over its classes of ``logit_scale * cosine``), so they sum to one per attribute.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..prompts import fill_template

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


def column_name(attribute: str, cls: str) -> str:
    """Flat Parquet/SQL-friendly column of one class's probability: ``p_<attribute>_<class>``."""
    return "p_" + re.sub(r"[^0-9a-zA-Z]+", "_", f"{attribute}_{cls}").strip("_").lower()


@dataclass
class Attribute:
    name: str
    classes: list[str]
    neutral: list[str] = field(default_factory=list)
    threshold: float | None = None

    def effective_threshold(self) -> float:
        if self.threshold is not None:
            return float(self.threshold)
        return min(0.9, 2.0 / len(self.classes))


@dataclass
class AttributeTable:
    family: str
    template: str
    attributes: list[Attribute]
    calibration: str = ""
    source: str = ""

    @classmethod
    def from_file(cls, path: str | Path) -> "AttributeTable":
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls.from_dict(doc, source=str(path))

    @classmethod
    def from_dict(cls, doc: dict, source: str = "") -> "AttributeTable":
        attrs = []
        for name, spec in doc["attributes"].items():
            classes = list(spec["classes"])
            if len(classes) < 2 or len(set(classes)) != len(classes):
                raise ValueError(f"{source}: attribute {name!r} needs two or more distinct classes")
            attrs.append(Attribute(name, classes, list(spec.get("neutral", [])), spec.get("threshold")))
        return cls(doc.get("family", "custom"), doc.get("template", "A person is speaking in a {} style."), attrs,
                   doc.get("calibration", ""), source)

    def to_dict(self) -> dict:
        return {"family": self.family, "template": self.template, "calibration": self.calibration,
                "attributes": {a.name: {"classes": a.classes, "neutral": a.neutral,
                                        "threshold": a.effective_threshold()} for a in self.attributes}}

    def probability_columns(self) -> list[tuple[str, str, str]]:
        """``(attribute, class, column)`` for every class of every attribute, in table order."""
        return [(a.name, c, column_name(a.name, c)) for a in self.attributes for c in a.classes]

    # ---------------------------------------------------------------- scoring
    def probabilities(self, model: Any, embeddings: np.ndarray) -> dict[str, np.ndarray]:
        """attribute -> ``[N, classes]`` probabilities (rows sum to one) of L2-normalised embeddings."""
        out = {}
        for a in self.attributes:
            if len(embeddings) == 0:
                out[a.name] = np.zeros((0, len(a.classes)), np.float32)
                continue
            rows = model.classify_embeddings(embeddings, a.classes, self.template)
            out[a.name] = np.asarray([[r[c] for c in a.classes] for r in rows], dtype=np.float32)
        return out

    def tags(self, probs: dict[str, np.ndarray], row: int) -> list[str]:
        """The top class of each attribute whose probability reaches the attribute's threshold (neutral classes
        excluded), in table order."""
        tags = []
        for a in self.attributes:
            p = probs[a.name][row]
            top = int(np.argmax(p))
            if p[top] >= a.effective_threshold() and a.classes[top] not in a.neutral:
                tags.append(a.classes[top])
        return tags

    def caption(self, tags: list[str]) -> str | None:
        """A caption from confident tags through the model's own template (``None`` when there are none)."""
        if not tags:
            return None
        words = tags[0] if len(tags) == 1 else ", ".join(tags[:-1]) + " and " + tags[-1]
        return fill_template(self.template, words)


def packaged_tables() -> list[AttributeTable]:
    files = sorted(MODELS_DIR.glob("**/attributes*.json"))
    return [AttributeTable.from_file(p) for p in files]


def _speech_model_type(model: Any) -> str | None:
    config = getattr(model, "config", None)
    speech = getattr(config, "speech_config", None)
    if isinstance(speech, dict):
        return speech.get("model_type")
    return getattr(speech, "model_type", None)


def table_for_model(model: Any, path: str | Path | None = None) -> AttributeTable:
    """The table of ``path`` if given, else the packaged table whose ``match`` fits the model's speech encoder,
    else the paper's table (the released models)."""
    if path is not None:
        return AttributeTable.from_file(path)
    kind = _speech_model_type(model)
    docs = [(p, json.loads(p.read_text(encoding="utf-8"))) for p in sorted(MODELS_DIR.glob("**/attributes*.json"))]
    for p, doc in docs:
        if kind is not None and kind in doc.get("match", {}).get("speech_model_type", []):
            return AttributeTable.from_dict(doc, source=str(p))
    for p, doc in docs:
        if doc.get("family") == "paper":
            return AttributeTable.from_dict(doc, source=str(p))
    raise FileNotFoundError(f"no attributes table in {MODELS_DIR}")
