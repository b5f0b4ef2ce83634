"""Evaluation files: a suite file (``evaluate --suite FILE.json``; ``synth`` writes one as ``suites.json``), the
report's ``metrics.json`` and its ``report_manifest.json``.

Version 0 of a suite file is every file written before stamps; it includes the classification-only form that synth
wrote before 0.2 (``{"template", "audio_root", "suites": {attribute: {"manifest", "candidates", "counts"}}}``),
which the upgrade turns into ``classification``.
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import Field, NonNegativeInt, StrictInt, StrictStr, field_validator, model_validator

from .core import Closed, Contract, FieldStamp, Record, declare, unchanged

Number = Union[StrictInt, float, None]  # an int stays an int (median ranks)


class SuiteTask(Closed):
    """One task: rows from a ``manifest`` (relative paths are relative to the suite file) or a ``dataset``."""

    manifest: Optional[StrictStr] = None
    dataset: Optional[StrictStr] = None
    split: StrictStr = "test"
    candidates: Optional[list[StrictStr]] = None
    group: Optional[StrictStr] = None
    audio_root: Optional[StrictStr] = None
    caption_column: Optional[StrictStr] = None
    label_column: Optional[StrictStr] = None
    kind: Optional[Literal["retrieval", "classification"]] = None
    name: Optional[StrictStr] = None
    counts: Optional[dict[str, NonNegativeInt]] = None  # clips per class, for people
    #: a manifest of clips that belong to none of the candidates (a whisper has no pitch): any tag on one is wrong.
    #: annotate.calibrate counts them; evaluate does not score them
    negatives: Optional[StrictStr] = None
    description: Optional[StrictStr] = None

    @model_validator(mode="after")
    def _one_source(self):
        if bool(self.manifest) == bool(self.dataset):
            raise ValueError("give exactly one of `manifest` or `dataset`")
        return self


class ClassificationTask(SuiteTask):
    candidates: list[StrictStr] = Field(min_length=1)  # the classes, in the order given


class NamedTask(SuiteTask):
    name: StrictStr = Field(min_length=1)


class NamedClassificationTask(ClassificationTask):
    name: StrictStr = Field(min_length=1)


class EvaluationSuite(Closed):
    """A named set of retrieval and classification tasks (``suite_from_json`` documents the fields). A task is an
    object, or (retrieval) just its manifest path; a block is {name: task} or a list of tasks with a ``name``."""

    name: Optional[StrictStr] = None
    description: Optional[StrictStr] = None
    template: Optional[StrictStr] = None  # the prompt template the suite was made for
    audio_root: Optional[StrictStr] = None  # the default audio root of its tasks
    retrieval: Union[dict[str, Union[SuiteTask, StrictStr]], list[NamedTask]] = {}
    classification: Union[dict[str, ClassificationTask], list[NamedClassificationTask]] = {}

    @field_validator("template")
    @classmethod
    def _one_placeholder(cls, value):
        if value is not None and value.count("{}") != 1:
            raise ValueError(f"a template needs exactly one {{}} placeholder, got {value!r}")
        return value


def _suite_from_v0(doc: dict) -> dict:
    if "suites" in doc:  # the classification-only form synth wrote before 0.2
        if "classification" in doc:
            raise ValueError("give `classification` or the older `suites`, not both")
        doc["classification"] = doc.pop("suites")
    return doc


class Skipped(Record):
    id: str
    path: str
    reason: str


class Confusion(Record):
    labels: list[str]
    rows: Literal["true"]
    columns: Literal["predicted"]
    matrix: list[list[NonNegativeInt]]


class TaskReport(Record):
    """One task of a report: coverage, skipped items, metrics and (classification) per-class numbers."""

    kind: Literal["retrieval", "classification"]
    group: Optional[str]
    source: str
    status: Literal["ok", "failed"]
    error: Optional[str]
    n_total: NonNegativeInt
    n_scored: NonNegativeInt
    n_skipped: NonNegativeInt
    skipped: list[Skipped]
    metrics: dict[str, Number]
    candidates: Optional[list[str]] = None
    candidates_inferred_from_gold: Optional[bool] = None
    per_class: Optional[list[dict[str, Any]]] = None
    confusion: Optional[Confusion] = None
    n_unique_captions: Optional[NonNegativeInt] = None


class EvaluationMetrics(Record):
    """``metrics.json``: every number of one evaluation run, with the model's identity and the settings."""

    suite: str
    status: Literal["ok", "failed"]
    complete: bool
    created: str
    model: dict[str, Any]
    settings: dict[str, Any]
    headline: dict[str, Number]
    headline_notes: dict[str, str]
    tasks: dict[str, TaskReport]
    cache: dict[str, Any]
    elapsed_s: float


class ReportManifest(Record):
    """``report_manifest.json``: the files (relative path -> size) and folders of a report folder."""

    format: Literal["paraspeechclap-report-v1"]
    written_by: str
    suite: str
    created: str
    files: dict[str, Optional[NonNegativeInt]]
    folders: list[str] = []


EVALUATION_SUITE = declare(Contract(
    "evaluation-suite", 1, EvaluationSuite,
    "a suite file (synth's suites.json; read by evaluate --suite and annotate.calibrate)",
    upgrades={0: _suite_from_v0}))
EVALUATION_METRICS = declare(Contract(
    "evaluation-metrics", 1, EvaluationMetrics, "a report's metrics.json (evaluate writes; scripts read it)",
    upgrades={0: unchanged}))
REPORT_MANIFEST = declare(Contract(
    "report-manifest", 1, ReportManifest,
    "a report folder's report_manifest.json (read before a report folder is replaced)",
    stamp=FieldStamp("format", "paraspeechclap-report-v1"), oldest=1))
