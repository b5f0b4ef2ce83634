"""Evaluation suites: which tasks to run, and reading their rows from the hub or local manifests.

A *task* is one retrieval or classification run over one table of rows in the ParaSpeechCaps schema
(``source``, ``relative_audio_path``, ``text_description``, ``classification_tag``; optionally ``id`` and
``audio_path``). A *suite* is a named list of tasks. Built-in suites reproduce the paper's protocol on
``ajd12342/paraspeechclap-eval-{intrinsic,situational,combined}``; a manifest file (JSONL/CSV/TSV/Parquet/JSON
records) or a suite JSON file defines your own.

Row rules (documented choices):

* Rows are read by :func:`paraspeechclap.data.rows.read_rows`, and their audio found by its one rule
  (:func:`~paraspeechclap.data.rows.resolve_audio_path`): a ``path``/``audio``/``audio_path``/``file`` column
  (absolute, or relative to the audio root), else ``{audio_root}/{source}/{relative_audio_path}``
  (``{audio_root}/{relative_audio_path}`` when there is no ``source``), else a dataset's ``audio`` dict; the audio
  root is the task's ``audio_root``, else ``--audio-root``, else a row's own ``audio_root``, else the manifest's
  folder (datasets have none: ``--audio-root`` is needed for ``relative_audio_path``).
* A row that cannot be read (bad JSON, not UTF-8, no audio column) is skipped and reported with its
  ``FILE:LINE``; the other rows are evaluated.
* A caption cell may be a string or a list of strings; evaluation takes the **first non-blank element** of a
  list (deterministic; the reference picked one at random without a seed).
* Rows with a blank caption (retrieval) or label (classification) are skipped and reported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

INTRINSIC_DATASET = "ajd12342/paraspeechclap-eval-intrinsic"
SITUATIONAL_DATASET = "ajd12342/paraspeechclap-eval-situational"
COMBINED_DATASET = "ajd12342/paraspeechclap-eval-combined"

#: The paper's intrinsic attributes (split ``classification_<attribute>`` of the intrinsic set), in config order.
INTRINSIC_ATTRIBUTES: Dict[str, List[str]] = {
    "pitch": ["shrill", "nasal", "deep"],
    "texture": ["silky", "husky", "raspy", "guttural", "vocal-fry"],
    "volume": ["booming", "authoritative", "loud", "hushed", "soft"],
    "clarity": ["crisp", "slurred", "lisp", "stammering"],
    "rhythm": ["flowing", "punctuated", "hesitant", "singsong", "monotonous"],
}
#: The paper's 21 situational classes (split ``test`` of the situational set), in config order.
SITUATIONAL_CLASSES: List[str] = [
    "angry", "guilt", "scared", "happy", "loud", "sarcastic", "sympathetic", "desirous", "enthusiastic",
    "saddened", "anxious", "sleepy", "admiring", "disgusted", "awed", "pained", "fast", "calm", "whispered",
    "enunciated", "confused",
]

CAPTION_COLUMN = "text_description"
LABEL_COLUMN = "classification_tag"
MANIFEST_SUFFIXES = (".jsonl", ".ndjson", ".csv", ".tsv", ".parquet", ".json")


class SuiteError(ValueError):
    """A suite, manifest or dataset that cannot be evaluated; the message says what and where."""


@dataclass
class DataSource:
    """Where a task's rows come from: a dataset (hub id or local folder) and split, or a manifest file."""

    dataset: Optional[str] = None
    split: str = "test"
    manifest: Optional[str] = None
    audio_root: Optional[str] = None  # per-task override of the run's audio root

    def describe(self) -> str:
        return self.manifest if self.manifest else f"{self.dataset} [{self.split}]"


@dataclass
class Task:
    """One retrieval or classification run."""

    name: str
    kind: str  # "retrieval" | "classification"
    source: DataSource
    group: Optional[str] = None  # column group of the paper table: situational | intrinsic | combined
    candidates: Optional[List[str]] = None
    caption_column: str = CAPTION_COLUMN
    label_column: str = LABEL_COLUMN
    #: a manifest of clips that belong to none of the candidates (not scored here; annotate.calibrate counts them)
    negatives: Optional[str] = None

    def __post_init__(self) -> None:
        if self.kind not in ("retrieval", "classification"):
            raise SuiteError(f"task {self.name!r}: kind must be 'retrieval' or 'classification', got {self.kind!r}")
        if self.kind == "classification" and self.candidates is not None and not self.candidates:
            raise SuiteError(f"task {self.name!r}: the candidate list is empty")


@dataclass
class Suite:
    name: str
    tasks: List[Task]
    #: the prompt template the suite was made for (a suite file's ``template``), or None
    template: Optional[str] = None

    def __post_init__(self) -> None:
        names = [t.name for t in self.tasks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SuiteError(f"suite {self.name!r}: duplicated task names {dupes}")
        if not self.tasks:
            raise SuiteError(f"suite {self.name!r} has no tasks")


@dataclass
class Item:
    """One row ready to score."""

    id: str
    path: str
    caption: Optional[str] = None
    label: Optional[str] = None


@dataclass
class EvalRows:
    """A task's rows after reading: the usable items and the rows skipped before any audio was touched."""

    items: List[Item]
    n_total: int
    skipped: List[Dict[str, str]] = field(default_factory=list)  # {id, path, reason}


# ----------------------------------------------------------------------------------------------- built-in suites
def _paper_tasks() -> List[Task]:
    tasks = [
        Task("situational", "retrieval", DataSource(SITUATIONAL_DATASET, "test"), group="situational"),
        Task("intrinsic", "retrieval", DataSource(INTRINSIC_DATASET, "test"), group="intrinsic"),
        Task("combined", "retrieval", DataSource(COMBINED_DATASET, "test"), group="combined"),
    ]
    for attribute, classes in INTRINSIC_ATTRIBUTES.items():
        tasks.append(Task(f"intrinsic-{attribute}", "classification",
                          DataSource(INTRINSIC_DATASET, f"classification_{attribute}"),
                          group="intrinsic", candidates=list(classes)))
    tasks.append(Task("situational-classes", "classification", DataSource(SITUATIONAL_DATASET, "test"),
                      group="situational", candidates=list(SITUATIONAL_CLASSES)))
    return tasks


def builtin_suites() -> Dict[str, Suite]:
    """``paper`` (everything), ``retrieval``, ``classification``, ``intrinsic``, ``situational``, ``combined``."""
    tasks = _paper_tasks()
    suites = {
        "paper": Suite("paper", tasks),
        "retrieval": Suite("retrieval", [t for t in tasks if t.kind == "retrieval"]),
        "classification": Suite("classification", [t for t in tasks if t.kind == "classification"]),
    }
    for group in ("intrinsic", "situational", "combined"):
        suites[group] = Suite(group, [t for t in tasks if t.group == group])
    return suites


# ----------------------------------------------------------------------------------------------- reading rows
def _local_dataset_folder(name: str, data_dir: Optional[str]) -> Optional[Path]:
    direct = Path(name).expanduser()
    if direct.is_dir():
        return direct
    if data_dir:
        base = Path(data_dir).expanduser()
        for candidate in (base / name, base / name.split("/")[-1], base / name.replace("/", "__")):
            if candidate.is_dir():
                return candidate
    return None


def _source_input(source: DataSource, data_dir: Optional[str], name: str) -> tuple:
    """(what to give read_rows, a hint for when it cannot be read)."""
    if source.manifest:
        manifest = Path(source.manifest).expanduser()
        if not manifest.is_file():
            raise SuiteError(f"task {name!r}: manifest {manifest} not found")
        return str(manifest), ""
    folder = _local_dataset_folder(source.dataset, data_dir)
    if folder is not None:
        return str(folder), ""
    return source.dataset, ("; offline? pass --data-dir DIR holding a `save_to_disk` copy named "
                            f"{source.dataset.split('/')[-1]!r}, or a local manifest")


def _read(what: str, audio_root: Optional[str], split: str, where: str, hint: str = "",
          limit: Optional[int] = None, require_audio: bool = True) -> list:
    """The rows of one input (at most ``limit``); an input that cannot be read at all raises :class:`SuiteError`."""
    from ..data.rows import read_rows

    rows = []
    for row in read_rows(what, audio_root=audio_root, split=split, require_audio=require_audio):
        rows.append(row)
        if limit is not None and len(rows) >= limit:
            break
    if len(rows) == 1 and not rows[0].ok and rows[0].ref in (what, f"{what}[{split}]"):
        raise SuiteError(f"{where}: {rows[0].error}{hint}")
    return rows


def _columns(rows: list) -> List[str]:
    columns: Dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row.fields))
    return list(columns)


def _pick_caption(value: Any) -> Optional[str]:
    """A string stays; a list gives its first non-blank string; anything else (or blank) gives None."""
    if isinstance(value, str):
        return value if value.strip() else None
    if value is None:
        return None
    try:
        elements = list(value)
    except TypeError:
        return None
    for element in elements:
        if isinstance(element, str) and element.strip():
            return element
    return None


def _cell(row: Dict[str, Any], column: str) -> Any:
    """A cell's value, with missing markers (None, NaN) as None."""
    value = row.get(column)
    if isinstance(value, float) and value != value:
        return None
    return value


def _row_id(row: Dict[str, Any], index: int) -> str:
    for column in ("id", "utterance_id", "audio_id"):
        value = _cell(row, column)
        if value is not None and str(value).strip():
            return str(value)
    relative = _cell(row, "relative_audio_path")
    if isinstance(relative, str) and relative:
        source = _cell(row, "source")
        return f"{source}/{relative}" if isinstance(source, str) and source else relative
    for column in ("audio_path", "path", "file", "audio"):
        direct = _cell(row, column)
        if isinstance(direct, str) and direct:
            return direct
    return f"row-{index}"


def _label(value: Any) -> Optional[str]:
    """A gold label: a non-blank string (a number read from a CSV cell counts as its text)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        value = str(value)
    return value if isinstance(value, str) and value.strip() else None


def load_rows(task: Task, audio_root: Optional[str] = None, data_dir: Optional[str] = None,
              max_items: Optional[int] = None) -> EvalRows:
    """Read a task's rows and turn them into :class:`Item` s (paths resolved, captions picked).

    Rows that cannot be read are skipped and reported (``FILE:LINE: reason``). Raises :class:`SuiteError` when
    the input cannot be read at all, no row has the column the task needs, or no row is usable.
    """
    source = task.source
    root = source.audio_root or audio_root
    if max_items is not None and max_items <= 0:
        raise SuiteError(f"--max-items must be positive, got {max_items}")
    what, hint = _source_input(source, data_dir, task.name)
    where = f"task {task.name!r} ({source.describe()})"
    rows = _read(what, root, source.split, where, hint, limit=max_items)
    if not rows:
        raise SuiteError(f"{where}: the set is empty; nothing to evaluate")
    needed = task.caption_column if task.kind == "retrieval" else task.label_column
    columns = _columns(rows)
    if needed not in columns:
        raise SuiteError(f"{where}: no column {needed!r} (columns: {columns})")

    items: List[Item] = []
    skipped: List[Dict[str, str]] = []
    for index, row in enumerate(rows):
        item_id = _row_id(row.fields, index)
        if not row.ok:
            skipped.append({"id": item_id if row.fields else row.ref, "path": row.audio or "",
                            "reason": f"{row.ref}: {row.error}"})
            continue
        if task.kind == "retrieval":
            caption = _pick_caption(_cell(row.fields, task.caption_column))
            if caption is None:
                skipped.append({"id": item_id, "path": row.audio, "reason": f"blank or missing {task.caption_column}"})
                continue
            items.append(Item(item_id, row.audio, caption=caption))
        else:
            label = _label(_cell(row.fields, task.label_column))
            if label is None:
                skipped.append({"id": item_id, "path": row.audio, "reason": f"blank or missing {task.label_column}"})
                continue
            items.append(Item(item_id, row.audio, label=label))
    if not items:
        raise SuiteError(f"{where}: none of the {len(rows)} rows is usable (first problem: {skipped[0]['reason']})")
    return EvalRows(items=items, n_total=len(rows), skipped=skipped)


#: how many rows :func:`manifest_columns` looks at
COLUMN_SAMPLE = 10_000


def manifest_columns(path: str) -> List[str]:
    """Column names of a manifest file (the union over its first :data:`COLUMN_SAMPLE` rows); an empty manifest is an
    error."""
    rows = _read(str(Path(path).expanduser()), None, "train", str(path), limit=COLUMN_SAMPLE, require_audio=False)
    if not rows:
        raise SuiteError(f"{path}: the manifest is empty; nothing to evaluate")
    columns = _columns(rows)
    if not columns:
        raise SuiteError(f"{path}: no readable row in the first {len(rows)} (first problem: {rows[0].ref}: "
                         f"{rows[0].error})")
    return columns


# ----------------------------------------------------------------------------------------------- resolving --suite
def _task_from_spec(name: str, kind: str, spec: Any, base: Path, default_root: Optional[str] = None) -> Task:
    """A Task from one entry of a suite file (already checked against the ``evaluation-suite`` contract)."""
    if isinstance(spec, str):
        spec = {"manifest": spec}
    manifest, dataset = spec.get("manifest"), spec.get("dataset")
    if manifest and not Path(manifest).expanduser().is_absolute():
        manifest = str(base / manifest)
    audio_root = spec.get("audio_root") or default_root
    if audio_root and not Path(audio_root).expanduser().is_absolute():
        audio_root = str(base / audio_root)
    negatives = spec.get("negatives")
    if negatives and not Path(negatives).expanduser().is_absolute():
        negatives = str(base / negatives)
    group = spec.get("group") or (name if name in ("situational", "intrinsic", "combined") else None)
    return Task(name=name, kind=kind, source=DataSource(dataset, spec.get("split") or "test", manifest, audio_root),
                group=group, candidates=spec.get("candidates") if kind == "classification" else None,
                caption_column=spec.get("caption_column") or CAPTION_COLUMN,
                label_column=spec.get("label_column") or LABEL_COLUMN, negatives=negatives)


def suite_from_json(path: str) -> Suite:
    """A suite file (contract ``evaluation-suite``, :mod:`paraspeechclap.schemas.evaluation`)::

        {"name": "mine",
         "template": "A person is speaking in a {} style.",      # optional: the prompt template it was made for
         "audio_root": "audio",                                  # optional: the default audio root of its tasks
         "retrieval": {"situational": "sit.jsonl", "other": {"dataset": "org/set", "split": "test"}},
         "classification": {"pitch": {"group": "intrinsic", "candidates": ["shrill", "nasal", "deep"],
                                      "manifest": "pitch.csv"}}}

    Relative paths (manifests, audio roots) are relative to the suite file. ``retrieval``/``classification`` may
    also be lists of objects with a ``name``. Groups ``situational``/``intrinsic``/``combined`` fill the paper-style
    table. The ``suites.json`` that ``paraspeechclap synth`` writes is such a file; the classification-only form
    it wrote before (``{"template", "audio_root", "suites": {attribute: {"manifest", "candidates", "counts"}}}``)
    is version 0 of the contract and still read. A file that does not meet the contract is a :class:`SuiteError`
    naming the file, the field and the version expected.
    """
    from ..schemas import SchemaError, read

    file = Path(path).expanduser()
    try:
        data = read(file, "evaluation-suite")
    except SchemaError as err:
        raise SuiteError(str(err)) from None
    tasks: List[Task] = []
    for kind in ("retrieval", "classification"):
        block = data[kind]
        entries = block.items() if isinstance(block, dict) else [(entry["name"], entry) for entry in block]
        for name, spec in entries:
            tasks.append(_task_from_spec(str(name), kind, spec, file.parent, data["audio_root"]))
    return Suite(str(data["name"] or file.stem), tasks, template=data["template"])


def suite_from_manifest(path: str, candidates: Optional[Sequence[str]] = None,
                        caption_column: str = CAPTION_COLUMN, label_column: str = LABEL_COLUMN) -> Suite:
    """Retrieval when the manifest has captions; classification when it has gold labels.

    Without ``candidates`` the classification candidates are the sorted distinct gold labels (note: UAR and
    macro-F1 depend on the candidate set; pass the full set to compare with other runs).
    """
    columns = manifest_columns(path)
    stem = Path(path).stem
    tasks: List[Task] = []
    source = DataSource(manifest=str(Path(path).expanduser()))
    if caption_column in columns:
        tasks.append(Task(f"{stem}-retrieval", "retrieval", source, caption_column=caption_column,
                          label_column=label_column))
    if label_column in columns:
        tasks.append(Task(f"{stem}-classification", "classification", source,
                          candidates=list(candidates) if candidates else None,
                          caption_column=caption_column, label_column=label_column))
    elif candidates:
        raise SuiteError(f"{path}: --candidates given but the manifest has no {label_column!r} column")
    if not tasks:
        raise SuiteError(f"{path}: neither {caption_column!r} (retrieval) nor {label_column!r} (classification) "
                         f"among the columns {columns}")
    return Suite(stem, tasks)


def resolve_suite(spec: str, candidates: Optional[Sequence[str]] = None,
                  caption_column: str = CAPTION_COLUMN, label_column: str = LABEL_COLUMN) -> Suite:
    """``--suite``: a built-in name, a suite JSON (an object) or a manifest file.

    ``candidates`` replaces the candidate list of every classification task (a built-in or JSON suite) or
    sets it for a manifest.
    """
    builtins = builtin_suites()
    if spec in builtins:
        suite = builtins[spec]
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise SuiteError(f"--suite {spec!r}: not a built-in suite ({', '.join(builtins)}) and no such file")
        if path.suffix.lower() == ".json" and _json_is_object(path):
            suite = suite_from_json(spec)
        elif path.suffix.lower() in MANIFEST_SUFFIXES:
            return suite_from_manifest(spec, candidates, caption_column, label_column)
        else:
            raise SuiteError(f"--suite {spec!r}: unknown file type; use a suite .json or a manifest "
                             f"({', '.join(MANIFEST_SUFFIXES)})")
    n_classification = sum(task.kind == "classification" for task in suite.tasks)
    if candidates and n_classification != 1:
        raise SuiteError(f"--candidates needs a suite with exactly one classification task; {suite.name!r} has "
                         f"{n_classification}")
    for task in suite.tasks:
        if task.kind == "retrieval":
            task.caption_column = caption_column if caption_column != CAPTION_COLUMN else task.caption_column
        else:
            task.label_column = label_column if label_column != LABEL_COLUMN else task.label_column
            if candidates:
                task.candidates = list(candidates)
    return suite


def _json_is_object(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(4096).lstrip()
    return head.startswith(b"{")


__all__ = [
    "COMBINED_DATASET", "INTRINSIC_ATTRIBUTES", "INTRINSIC_DATASET", "SITUATIONAL_CLASSES", "SITUATIONAL_DATASET",
    "DataSource", "EvalRows", "Item", "Suite", "SuiteError", "Task", "builtin_suites", "load_rows",
    "resolve_suite", "suite_from_json", "suite_from_manifest",
]
