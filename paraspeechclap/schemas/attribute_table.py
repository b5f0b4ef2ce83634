"""Attribute tables (``paraspeechclap/models/**/attributes*.json``, ``annotate --attributes FILE``, what
``python -m paraspeechclap.annotate.calibrate`` writes): per attribute its classes, the neutral ones, and the
threshold a top class needs to become a tag.

An attribute is calibrated when it carries a ``calibration`` record (the precision and coverage its threshold gave
on a labelled corpus); the table's ``calibration.status`` must say the same (``calibrated``: every attribute,
``partly calibrated``: some, ``uncalibrated``: none), so a table cannot claim a calibration it does not have. A
``threshold`` of null (or none given) means two times chance (2 / number of classes, at most 0.9).

Version 2 adds an optional per-attribute ``probe`` (calibrate ``--probe``): a multinomial logistic model over the
attribute's taggable classes and ``"none"`` on L2-normalised audio embeddings (``weights``: one row of ``dim`` values
per outcome, ``bias``: one per outcome); where it is present the attribute's probabilities are its softmax and the
tag its most probable outcome (none for ``"none"``, which is the attribute's neutral class where it has exactly one),
the thresholds unused. Version-1 tables read unchanged.

Version 0 (before stamps) had ``calibration`` as free text and, when written by calibrate, a ``calibration_report``
({attribute: record or null}) beside thresholds written for every attribute; the upgrade moves each record to its
attribute and derives the status from them (version-0 tables that calibrate wrote with nothing calibrated read as
``uncalibrated``).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveInt, StrictStr, field_validator, \
    model_validator

from ..prompts import DEFAULT_TEMPLATE
from .core import Closed, Contract, Record, declare, unchanged

STATUSES = ("calibrated", "partly calibrated", "uncalibrated")
OBJECTIVES = ("precision", "per-clip")  # what calibrate's thresholds serve
NONE = "none"  # a probe's outcome for "no tag" (truth neutral or none); never a class name
Share = Field(ge=0.0, le=1.0)


class ClassCalibration(Record):
    precision: Optional[float] = Share  # of the tags of this class (None: it emitted none)
    tagged: NonNegativeInt
    right: NonNegativeInt


class ProbeCalibration(Record):
    """How calibrate chose the probe: per-clip accuracy by k-fold cross-validation, for each ``lambda`` of the grid
    and for no probe (the thresholds alone), on the calibration clips."""

    chosen: Optional[float] = None  # the lambda fitted (None: no probe)
    policy: str = "auto"  # auto (a probe where it gains >= min_gain), forced, never
    min_gain: Optional[float] = None
    folds: PositiveInt
    clips: NonNegativeInt
    cv_no_probe: float = Share
    cv_probe: dict[str, float] = {}  # str(lambda) -> per-clip accuracy


class AttributeCalibration(Record):
    """What the attribute's thresholds gave on the labelled clips it was calibrated on."""

    precision: Optional[float] = Share  # of the tags it emits (neutral top classes emit none); None: it emits none
    coverage: float = Share  # share of the clips that get a tag
    per_clip: Optional[float] = Field(None, ge=0.0, le=1.0)  # clips right: their class, or no tag where none claimed
    clips: NonNegativeInt  # clips of the attribute's suite, its negatives included
    tagged: Optional[NonNegativeInt] = None
    per_class: dict[str, ClassCalibration] = {}
    probe: Optional[ProbeCalibration] = None  # version 2: the cross-validation that chose (or refused) a probe


class AttributeProbe(Closed):
    """Logits ``weights @ x + bias`` of an L2-normalised embedding ``x`` (one row per outcome); fitted as the zero-shot
    weights (``logit_scale`` x the class prompts' text embeddings, zero for ``"none"``) plus a change penalised by
    ``lambda`` x its squared norm."""

    model_config = ConfigDict(extra="forbid", defer_build=True, serialize_by_alias=True, validate_by_name=True,
                              validate_by_alias=True)
    outcomes: list[StrictStr] = Field(min_length=2)
    dim: PositiveInt  # of the embeddings it reads
    weights: list[list[float]]
    bias: list[float]
    lambda_: NonNegativeFloat = Field(alias="lambda")

    @field_validator("outcomes")
    @classmethod
    def _outcomes(cls, value):
        if value.count(NONE) != 1 or value[-1] != NONE or len(set(value)) != len(value):
            raise ValueError(f"outcomes must be distinct classes followed by {NONE!r}, got {value}")
        return value

    @field_validator("weights", "bias")
    @classmethod
    def _shapes(cls, value, info):
        outcomes, dim = info.data.get("outcomes"), info.data.get("dim")
        if outcomes is not None and len(value) != len(outcomes):
            raise ValueError(f"{len(value)} rows, one per outcome ({len(outcomes)}) is needed")
        wrong = [i for i, row in enumerate(value) if info.field_name == "weights" and len(row) != dim]
        if dim is not None and wrong:
            raise ValueError(f"row {wrong[0]} has {len(value[wrong[0]])} values, not dim {dim} (the width of the "
                             "embeddings the probe reads)")
        return value


class AttributeSpec(Closed):
    """One attribute: its classes (a tag is the top class), the neutral ones (never a tag), the threshold a top class
    needs (per class in ``thresholds``, else ``threshold``, else two times chance), the classes never tagged
    (``withheld``: calibration found no threshold that reaches the wanted precision), and ``not_with``: no tag when
    the clip is tagged with one of these classes of another attribute (a whisper has no pitch)."""

    classes: list[StrictStr] = Field(min_length=2)
    neutral: list[StrictStr] = []
    threshold: Optional[float] = Field(None, gt=0.0, le=1.0)
    thresholds: dict[str, Annotated[float, Field(gt=0.0, le=1.0)]] = {}
    withheld: list[StrictStr] = []
    not_with: dict[str, list[StrictStr]] = {}
    calibration: Optional[AttributeCalibration] = None
    probe: Optional[AttributeProbe] = None  # version 2

    @model_validator(mode="after")
    def _classes(self):
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be distinct, got {self.classes}")
        for what, names in (("neutral", self.neutral), ("thresholds", list(self.thresholds)),
                            ("withheld", self.withheld)):
            stray = [c for c in names if c not in self.classes]
            if stray:
                raise ValueError(f"{what} {stray} are not among the classes {self.classes}")
        taggable = [c for c in self.classes if c not in self.neutral]
        if NONE in self.classes:
            raise ValueError(f"{NONE!r} cannot be a class (it is a probe's outcome for no tag)")
        if self.probe is not None and self.probe.outcomes != taggable + [NONE]:
            raise ValueError(f"probe outcomes {self.probe.outcomes} must be the taggable classes and "
                             f"{NONE!r}: {taggable + [NONE]}")
        if self.calibration is not None and self.probe is None:  # a probe's tags need no thresholds
            open_ = [c for c in taggable if c not in self.thresholds and c not in self.withheld]
            if open_ and self.threshold is None:
                raise ValueError(f"a calibrated attribute needs a threshold for {open_} (or to withhold them)")
        return self


class TableCalibration(Record):
    """How the thresholds were set, with the provenance of a calibration (corpus, target, date, command)."""

    status: Literal["calibrated", "partly calibrated", "uncalibrated"]
    note: str = ""
    objective: Optional[Literal[OBJECTIVES]] = None  # None: precision (tables before the choice)
    precision_target: Optional[float] = Field(None, gt=0.0, le=1.0)
    confidence: Optional[float] = Field(None, ge=0.5, lt=1.0)  # of the precision's lower bound
    min_clips: Optional[NonNegativeInt] = None
    probe: Optional[dict[str, Any]] = None  # version 2: calibrate's --probe policy, lambdas, folds, min_gain
    corpus: Optional[dict[str, Any]] = None  # suite file, clips, and a synthetic corpus' seed and size
    model: Optional[dict[str, Any]] = None  # source and numeric precision
    date: Optional[str] = None
    command: Optional[str] = None


class AttributeTable(Closed):
    family: StrictStr = "custom"
    description: str = ""
    match: dict[str, list[StrictStr]] = {}
    template: StrictStr = DEFAULT_TEMPLATE
    attributes: dict[str, AttributeSpec] = Field(min_length=1)
    calibration: TableCalibration = TableCalibration(status="uncalibrated")

    @field_validator("template")
    @classmethod
    def _one_placeholder(cls, value):
        if value.count("{}") != 1:
            raise ValueError(f"a template needs exactly one {{}} placeholder, got {value!r}")
        return value

    @model_validator(mode="after")
    def _gates(self):
        for name, spec in self.attributes.items():
            for other, classes in spec.not_with.items():
                gate = self.attributes.get(other)
                if gate is None or other == name:
                    raise ValueError(f"attribute {name!r}: not_with names {other!r}, not another attribute of the table")
                if gate.not_with:
                    raise ValueError(f"attribute {name!r}: not_with {other!r}, which has a not_with of its own")
                stray = [c for c in classes if c not in gate.classes]
                if stray:
                    raise ValueError(f"attribute {name!r}: not_with {other!r} classes {stray} are not its classes")
        return self

    @model_validator(mode="after")
    def _status_matches(self):
        if self.calibration.status != status_of(self.attributes):
            raise ValueError(f"calibration.status {self.calibration.status!r} does not match the attributes "
                             f"({status_of(self.attributes)!r}: {calibrated_names(self.attributes)} calibrated)")
        return self


def calibrated_names(attributes: dict) -> list[str]:
    return [name for name, spec in attributes.items() if _calibration_of(spec) is not None]


def _calibration_of(spec: Any):
    return spec.get("calibration") if isinstance(spec, dict) else spec.calibration


def status_of(attributes: dict) -> str:
    """``calibrated`` / ``partly calibrated`` / ``uncalibrated`` from which attributes carry a calibration."""
    n = len(calibrated_names(attributes))
    return "uncalibrated" if n == 0 else "calibrated" if n == len(attributes) else "partly calibrated"


def _table_from_v0(doc: dict) -> dict:
    report = doc.pop("calibration_report", None) or {}
    doc.pop("default_threshold", None)  # documentation only ("chance")
    attributes = {name: dict(spec) for name, spec in (doc.get("attributes") or {}).items()} \
        if isinstance(doc.get("attributes"), dict) else doc.get("attributes")
    if isinstance(attributes, dict):
        for name, spec in attributes.items():
            found = report.get(name) if isinstance(report, dict) else None
            if isinstance(found, dict):
                spec["calibration"] = {k: found[k] for k in ("precision", "coverage", "clips") if k in found}
                spec.setdefault("threshold", found.get("threshold"))
        doc["attributes"] = attributes
    note = doc.get("calibration", "")
    status = status_of(attributes) if isinstance(attributes, dict) else "uncalibrated"
    doc["calibration"] = dict(note, status=status) if isinstance(note, dict) else {"status": status, "note": str(note)}
    return doc


ATTRIBUTE_TABLE = declare(Contract(
    "attribute-table", 2, AttributeTable,
    "an attribute table (packaged per model family; calibrate writes one; annotate and serve read them)",
    upgrades={0: _table_from_v0, 1: unchanged}))
