"""Evaluation suites: which tasks to run, and reading their rows from the hub or local manifests.

A *task* is one retrieval or classification run over one table of rows in the ParaSpeechCaps schema
(``source``, ``relative_audio_path``, ``text_description``, ``classification_tag``; optionally ``id`` and
``audio_path``). A *suite* is a named list of tasks. Built-in suites reproduce the paper's protocol on
``ajd12342/paraspeechclap-eval-{intrinsic,situational,combined}``; a manifest file (JSONL/CSV/TSV/Parquet/JSON
records) or a suite JSON file defines your own.

Row rules (documented choices):

* Audio lives at ``{audio_root}/{source}/{relative_audio_path}`` (``{audio_root}/{relative_audio_path}`` when
  there is no ``source``). An ``audio_path`` column may name the file directly (absolute, or relative to the
  audio root, or to the manifest's folder when no root is given).
* A caption cell may be a string or a list of strings; evaluation takes the **first non-blank element** of a
  list (deterministic; the reference picked one at random without a seed).
* Rows with a blank caption (retrieval) or label (classification) are skipped and reported.
"""
from __future__ import annotations

import json
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

    def __post_init__(self) -> None:
        if self.kind not in ("retrieval", "classification"):
            raise SuiteError(f"task {self.name!r}: kind must be 'retrieval' or 'classification', got {self.kind!r}")
        if self.kind == "classification" and self.candidates is not None and not self.candidates:
            raise SuiteError(f"task {self.name!r}: the candidate list is empty")


@dataclass
class Suite:
    name: str
    tasks: List[Task]

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


# ----------------------------------------------------------------------------------------------- reading tables
def _read_manifest_table(path: Path):
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(path, lines=True, dtype=False)
        if suffix == ".json":
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            if not isinstance(data, list):
                raise SuiteError(f"{path}: a JSON manifest must be a list of records (a JSON object is read as a suite)")
            return pd.DataFrame.from_records(data)
        if suffix in (".csv", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except SuiteError:
        raise
    except Exception as err:
        raise SuiteError(f"{path}: cannot read manifest ({err})") from None
    raise SuiteError(f"{path}: unknown manifest type {suffix!r}; use one of {', '.join(MANIFEST_SUFFIXES)}")


def _is_save_to_disk_folder(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


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


def _read_dataset_table(source: DataSource, data_dir: Optional[str], columns: Sequence[str]):
    """Rows of a dataset split as a DataFrame, only the columns we use (no audio decoding)."""
    import datasets

    name, split = source.dataset, source.split
    folder = _local_dataset_folder(name, data_dir)
    try:
        if folder is not None and _is_save_to_disk_folder(folder):
            loaded = datasets.load_from_disk(str(folder))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise SuiteError(f"{folder}: no split {split!r}; available: {sorted(loaded.keys())}")
                ds = loaded[split]
            else:
                ds = loaded
        elif folder is not None:
            ds = datasets.load_dataset(str(folder), split=split)
        else:
            ds = datasets.load_dataset(name, split=split)
    except SuiteError:
        raise
    except Exception as err:
        hint = ("; offline? pass --data-dir DIR holding a `save_to_disk` copy named "
                f"{name.split('/')[-1]!r}, or a local manifest" if folder is None else "")
        raise SuiteError(f"cannot load dataset {name!r} split {split!r} ({type(err).__name__}: {err}){hint}") from None
    keep = [c for c in columns if c in ds.column_names]
    return ds.select_columns(keep).to_pandas()


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
    """A cell's value, with pandas' missing markers (None, NaN) as None."""
    value = row.get(column)
    if isinstance(value, float) and value != value:
        return None
    return value


def _resolve_path(row: Dict[str, Any], audio_root: Optional[str], base_dir: Optional[Path], where: str) -> str:
    direct = _cell(row, "audio_path")
    if isinstance(direct, str) and direct.strip():
        path = Path(direct).expanduser()
        if not path.is_absolute():
            root = Path(audio_root).expanduser() if audio_root else base_dir
            if root is not None:
                path = root / path
        return str(path)
    relative = _cell(row, "relative_audio_path")
    if not isinstance(relative, str) or not relative.strip():
        raise SuiteError(f"{where}: row has neither `audio_path` nor `relative_audio_path`")
    root = Path(audio_root).expanduser() if audio_root else base_dir
    if root is None:
        raise SuiteError(f"{where}: --audio-root is required (rows name audio as {{source}}/{{relative_audio_path}})")
    source = _cell(row, "source")
    if isinstance(source, str) and source.strip():
        return str(root / source / relative)
    return str(root / relative)


def _row_id(row: Dict[str, Any], index: int) -> str:
    for column in ("id", "utterance_id", "audio_id"):
        value = _cell(row, column)
        if value is not None and str(value).strip():
            return str(value)
    relative = _cell(row, "relative_audio_path")
    if isinstance(relative, str) and relative:
        source = _cell(row, "source")
        return f"{source}/{relative}" if isinstance(source, str) and source else relative
    direct = _cell(row, "audio_path")
    return str(direct) if direct is not None else f"row-{index}"


def table_columns(task: Task) -> List[str]:
    return ["id", "utterance_id", "audio_id", "source", "relative_audio_path", "audio_path",
            task.caption_column, task.label_column]


def load_rows(task: Task, audio_root: Optional[str] = None, data_dir: Optional[str] = None,
              max_items: Optional[int] = None) -> EvalRows:
    """Read a task's rows and turn them into :class:`Item` s (paths resolved, captions picked).

    Raises :class:`SuiteError` when the table cannot be read, lacks the column the task needs, or is empty.
    """
    source = task.source
    root = source.audio_root or audio_root
    if source.manifest:
        manifest = Path(source.manifest).expanduser()
        if not manifest.is_file():
            raise SuiteError(f"task {task.name!r}: manifest {manifest} not found")
        table = _read_manifest_table(manifest)
        base_dir: Optional[Path] = manifest.parent
    else:
        table = _read_dataset_table(source, data_dir, table_columns(task))
        base_dir = None
    where = f"task {task.name!r} ({source.describe()})"
    needed = task.caption_column if task.kind == "retrieval" else task.label_column
    if needed not in table.columns:
        raise SuiteError(f"{where}: no column {needed!r} (columns: {list(table.columns)})")
    if max_items is not None:
        if max_items <= 0:
            raise SuiteError(f"--max-items must be positive, got {max_items}")
        table = table.iloc[:max_items]
    if len(table) == 0:
        raise SuiteError(f"{where}: the set is empty; nothing to evaluate")

    items: List[Item] = []
    skipped: List[Dict[str, str]] = []
    for index, row in enumerate(table.to_dict(orient="records")):
        item_id = _row_id(row, index)
        path = _resolve_path(row, root, base_dir, f"{where} row {index}")
        if task.kind == "retrieval":
            caption = _pick_caption(_cell(row, task.caption_column))
            if caption is None:
                skipped.append({"id": item_id, "path": path, "reason": f"blank or missing {task.caption_column}"})
                continue
            items.append(Item(item_id, path, caption=caption))
        else:
            label = _cell(row, task.label_column)
            if not isinstance(label, str) or not label.strip():
                skipped.append({"id": item_id, "path": path, "reason": f"blank or missing {task.label_column}"})
                continue
            items.append(Item(item_id, path, label=label))
    if not items:
        raise SuiteError(f"{where}: none of the {len(table)} rows is usable (first problem: {skipped[0]['reason']})")
    return EvalRows(items=items, n_total=len(table), skipped=skipped)


def manifest_columns(path: str) -> List[str]:
    """Column names of a manifest file (reads the table); an empty manifest is an error."""
    table = _read_manifest_table(Path(path).expanduser())
    if len(table) == 0:
        raise SuiteError(f"{path}: the manifest is empty; nothing to evaluate")
    return list(table.columns)


# ----------------------------------------------------------------------------------------------- resolving --suite
def _task_from_spec(name: str, kind: str, spec: Any, base: Path) -> Task:
    if isinstance(spec, str):
        spec = {"manifest": spec}
    if not isinstance(spec, dict):
        raise SuiteError(f"suite task {name!r}: expected a manifest path or an object, got {type(spec).__name__}")
    unknown = set(spec) - {"manifest", "dataset", "split", "candidates", "group", "audio_root",
                           "caption_column", "label_column", "kind", "name"}
    if unknown:
        raise SuiteError(f"suite task {name!r}: unknown keys {sorted(unknown)}")
    manifest, dataset = spec.get("manifest"), spec.get("dataset")
    if bool(manifest) == bool(dataset):
        raise SuiteError(f"suite task {name!r}: give exactly one of `manifest` or `dataset`")
    if manifest and not Path(manifest).expanduser().is_absolute():
        manifest = str(base / manifest)
    audio_root = spec.get("audio_root")
    if audio_root and not Path(audio_root).expanduser().is_absolute():
        audio_root = str(base / audio_root)
    candidates = spec.get("candidates")
    if kind == "classification":
        if not isinstance(candidates, list) or not all(isinstance(c, str) for c in candidates) or not candidates:
            raise SuiteError(f"suite task {name!r}: classification needs a non-empty list of string `candidates`")
    group = spec.get("group") or (name if name in ("situational", "intrinsic", "combined") else None)
    return Task(name=name, kind=kind, source=DataSource(dataset, spec.get("split", "test"), manifest, audio_root),
                group=group, candidates=candidates,
                caption_column=spec.get("caption_column", CAPTION_COLUMN),
                label_column=spec.get("label_column", LABEL_COLUMN))


def suite_from_json(path: str) -> Suite:
    """A suite file::

        {"name": "mine",
         "retrieval": {"situational": "sit.jsonl", "other": {"dataset": "org/set", "split": "test"}},
         "classification": {"pitch": {"group": "intrinsic", "candidates": ["shrill", "nasal", "deep"],
                                      "manifest": "pitch.csv"}}}

    Relative paths are relative to the suite file. ``retrieval``/``classification`` may also be lists of
    objects with a ``name``. Groups ``situational``/``intrinsic``/``combined`` fill the paper-style table.
    """
    file = Path(path).expanduser()
    try:
        with open(file, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, json.JSONDecodeError) as err:
        raise SuiteError(f"{file}: cannot read suite JSON ({err})") from None
    if not isinstance(data, dict):
        raise SuiteError(f"{file}: a suite JSON must be an object")
    unknown = set(data) - {"name", "retrieval", "classification", "description"}
    if unknown:
        raise SuiteError(f"{file}: unknown keys {sorted(unknown)} (expected name, retrieval, classification)")
    tasks: List[Task] = []
    for kind in ("retrieval", "classification"):
        block = data.get(kind) or {}
        entries = block.items() if isinstance(block, dict) else [(e.get("name") if isinstance(e, dict) else None, e)
                                                                  for e in block]
        for name, spec in entries:
            if not name:
                raise SuiteError(f"{file}: every {kind} task needs a name")
            tasks.append(_task_from_spec(str(name), kind, spec, file.parent))
    return Suite(str(data.get("name") or file.stem), tasks)


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
