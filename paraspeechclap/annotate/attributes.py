"""The attribute -> classes table of a model family, as data (``paraspeechclap/models/**/attributes*.json``).

Each file (contract ``attribute-table``, :mod:`paraspeechclap.schemas.attribute_table`) names a family, the speech
encoders it matches, the classification template, and per attribute its classes, optional neutral classes
(probabilities are kept, but they make no tag and no caption words), the thresholds a top class needs to become a
tag (per class, or one per attribute, else two times chance), the classes calibration withheld, and ``not_with``
gates (no pitch tag on a clip tagged whispered). Probabilities are the model's zero-shot classification within one
attribute (softmax over its classes of ``logit_scale * cosine``), so they sum to one per attribute; an attribute with
a ``probe`` (calibrate ``--probe``) gets the probe's softmax instead, over its classes, its ``"none"`` given to the
attribute's neutral class where it has exactly one and kept as a ``"none"`` outcome otherwise; its tag is the most
probable outcome unless neutral or ``"none"``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import schemas
from ..prompts import fill_template
from ..schemas.attribute_table import NONE, status_of

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
KIND = "attribute-table"


def column_name(attribute: str, cls: str) -> str:
    """Flat Parquet/SQL-friendly column of one class's probability: ``p_<attribute>_<class>``."""
    return "p_" + re.sub(r"[^0-9a-zA-Z]+", "_", f"{attribute}_{cls}").strip("_").lower()


@dataclass
class Attribute:
    name: str
    classes: list[str]
    neutral: list[str] = field(default_factory=list)
    threshold: float | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    withheld: list[str] = field(default_factory=list)
    not_with: dict[str, list[str]] = field(default_factory=dict)
    calibration: dict | None = None
    probe: dict | None = None  # {outcomes, dim, weights, bias, lambda}: see the attribute-table contract

    @property
    def outcomes(self) -> list[str]:
        """What its probabilities are over: the classes, and ``"none"`` when a probe gives them and the attribute has
        no single neutral class to give its "none" to (range: its neutral range is only "no tag")."""
        return self.classes + [NONE] if self.probe is not None and len(self.neutral) != 1 else list(self.classes)

    def tag_of(self, p: np.ndarray) -> str | None:
        """The tag of one row of probabilities (over :attr:`outcomes`), gates aside: the probe's most probable
        outcome unless ``"none"``, else the top class when taggable and at its threshold."""
        top = int(np.argmax(p))
        cls = self.outcomes[top]
        if self.probe is not None:
            return None if cls == NONE or cls in self.neutral else cls
        return cls if self.taggable(cls) and p[top] >= self.effective_threshold(cls) else None

    def probe_probabilities(self, embeddings: np.ndarray, source: str = "") -> np.ndarray:
        """``[N, outcomes]``: the probe's softmax of L2-normalised ``embeddings``; its ``"none"`` is the attribute's
        neutral class where it has exactly one (medium-pitched, measured, ...), else a ``"none"`` outcome of its own."""
        probe = self.probe
        self.check_dim(embeddings.shape[-1] if embeddings.ndim == 2 else -1, source)
        from .probe import normalised

        x = normalised(embeddings)
        logits = x @ np.asarray(probe["weights"], np.float64).T + np.asarray(probe["bias"], np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        out = np.zeros((len(x), len(self.outcomes)), np.float32)
        names = [self.neutral[0] if o == NONE and NONE not in self.outcomes else o for o in probe["outcomes"]]
        out[:, [self.outcomes.index(o) for o in names]] = p
        return out

    def check_dim(self, dim: int, source: str = "") -> None:
        """ValueError naming the table and field when the probe cannot read ``dim``-wide embeddings."""
        if self.probe is not None and dim != self.probe["dim"]:
            raise ValueError(f"{source or '<attribute table>'}: field 'attributes.{self.name}.probe.weights' reads "
                             f"{self.probe['dim']}-d embeddings; the model gives {dim}-d ones (a table calibrated for "
                             "another model)")

    def effective_threshold(self, cls: str | None = None) -> float:
        """The probability ``cls`` (default: any class without its own) needs to become a tag."""
        if cls is not None and cls in self.thresholds:
            return float(self.thresholds[cls])
        if self.threshold is not None:
            return float(self.threshold)
        return min(0.9, 2.0 / len(self.classes))

    def taggable(self, cls: str) -> bool:
        return cls not in self.neutral and cls not in self.withheld

    def unclaimed(self, truth: str | None) -> bool:
        """Whether a clip whose corpus class is ``truth`` is right without a tag: it claims a neutral class or none."""
        return truth is None or truth in self.neutral

    def clip_right(self, tag: str | None, truth: str | None) -> bool:
        """The per-clip rule (issue 28): right with its true class as its tag, or with no tag where it claims a
        neutral class or none. Calibration's per-clip objective and ``scripts/eval_mini_tags.py`` both use it."""
        return tag == truth if tag is not None else self.unclaimed(truth)

    def to_dict(self) -> dict:
        spec = {"classes": self.classes, "neutral": self.neutral, "threshold": self.threshold}
        for key in ("thresholds", "withheld", "not_with", "calibration", "probe"):
            if getattr(self, key):
                spec[key] = getattr(self, key)
        return spec


@dataclass
class AttributeTable:
    family: str
    template: str
    attributes: list[Attribute]
    calibration: dict = field(default_factory=lambda: {"status": "uncalibrated", "note": ""})
    source: str = ""
    description: str = ""
    match: dict = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | Path) -> "AttributeTable":
        """A table file, checked against its contract (an older version is upgraded); :class:`ValueError`
        (:class:`paraspeechclap.schemas.SchemaError`) naming the file and field when it does not meet it."""
        return cls._from_valid(schemas.read(path, KIND), str(path))

    @classmethod
    def from_dict(cls, doc: dict, source: str = "") -> "AttributeTable":
        return cls._from_valid(schemas.validate(doc, KIND, source or "<attribute table>"), source)

    @classmethod
    def _from_valid(cls, doc: dict, source: str) -> "AttributeTable":
        attrs = [Attribute(name, list(spec["classes"]), list(spec["neutral"]), spec["threshold"],
                           dict(spec["thresholds"]), list(spec["withheld"]), dict(spec["not_with"]),
                           spec["calibration"], spec.get("probe"))
                 for name, spec in doc["attributes"].items()]
        return cls(doc["family"], doc["template"], attrs, doc["calibration"], source, doc["description"],
                   doc["match"])

    def to_dict(self) -> dict:
        """The table as an ``attribute-table`` document (stamped; thresholds as set, null meaning two times chance)."""
        doc = {"family": self.family, "description": self.description, "match": self.match,
               "template": self.template, "attributes": {a.name: a.to_dict() for a in self.attributes},
               "calibration": dict({k: v for k, v in self.calibration.items() if v is not None}, status=status_of(
                   {a.name: {"calibration": a.calibration} for a in self.attributes}))}
        return schemas.stamped(doc, KIND, self.source or "<attribute table>")

    def probability_columns(self) -> list[tuple[str, str, str]]:
        """``(attribute, outcome, column)`` for every class of every attribute (and ``"none"`` of one with a probe),
        in table order."""
        return [(a.name, c, column_name(a.name, c)) for a in self.attributes for c in a.outcomes]

    # ---------------------------------------------------------------- scoring
    def probabilities(self, model: Any, embeddings: np.ndarray) -> dict[str, np.ndarray]:
        """attribute -> ``[N, outcomes]`` probabilities (rows sum to one) of L2-normalised embeddings: the probe's
        where the attribute has one, else the zero-shot softmax over its classes."""
        out = {}
        for a in self.attributes:
            if a.probe is not None:
                out[a.name] = a.probe_probabilities(np.asarray(embeddings, np.float32), self.source)
            elif len(embeddings) == 0:
                out[a.name] = np.zeros((0, len(a.classes)), np.float32)
            else:
                rows = model.classify_embeddings(embeddings, a.classes, self.template)
                out[a.name] = np.asarray([[r[c] for c in a.classes] for r in rows], dtype=np.float32)
        return out

    def check_dim(self, dim: int) -> None:
        """Refuse a model whose embeddings a probe of this table cannot read (before any work is done)."""
        for a in self.attributes:
            a.check_dim(dim, self.source)

    def tags(self, probs: dict[str, np.ndarray], row: int) -> list[str]:
        """The tag of each attribute (:meth:`Attribute.tag_of`: the probe's, or the top class at its threshold),
        none for an attribute whose ``not_with`` classes another attribute tagged, in table order."""
        top = {}
        for a in self.attributes:
            tag = a.tag_of(probs[a.name][row])
            if tag is not None:
                top[a.name] = tag
        return [cls for name, cls in top.items()
                if not any(top.get(other) in classes for other, classes in self.by_name(name).not_with.items())]

    def by_name(self, name: str) -> Attribute:
        return next(a for a in self.attributes if a.name == name)

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
    else the paper's table (the released models); refused (ValueError naming the field) when a probe in it cannot
    read the model's embeddings, before any work is done."""
    table = _table_for(model, path)
    dim = getattr(getattr(model, "config", None), "embedding_dim", None)
    if dim is not None:
        table.check_dim(int(dim))
    return table


def _table_for(model: Any, path: str | Path | None) -> AttributeTable:
    if path is not None:
        return AttributeTable.from_file(path)
    kind = _speech_model_type(model)
    tables = packaged_tables()
    for table in tables:
        if kind is not None and kind in table.match.get("speech_model_type", []):
            return table
    for table in tables:
        if table.family == "paper":
            return table
    raise FileNotFoundError(f"no attributes table in {MODELS_DIR}")
