"""The one reader of rows: audio files, globs, folders, JSONL/CSV/TSV/Parquet manifests, Hugging Face datasets
and Lhotse cut manifests -> a stream of :class:`Row` s, each with where it came from, its audio path and its columns.

Every room that reads inputs (the inference commands, evaluation, reranking, training manifests, annotation) reads
them here, so that one input means the same rows and the same audio files everywhere.

Inputs (``read_rows(inputs)``; one input or a list, read in the order given)
-----------------------------------------------------------------------------
* an audio file (or any file that is not a manifest): one row, ``ref`` and ``audio`` the path; a missing file is
  not an error here (the decoder reports it, like an unreadable one);
* a glob (``*``, ``?``, ``[``; ``**`` recursive): the matching files, sorted, each read as a file or a manifest by
  its suffix (folders among the matches are skipped); no match at all is one bad row;
* a folder: a ``datasets`` ``save_to_disk`` folder (it has ``state.json`` or ``dataset_dict.json``) is read as a
  dataset; any other folder gives its audio files (suffixes :data:`AUDIO_SUFFIXES`), recursively, sorted; a folder
  without audio files is tried as a dataset folder (``datasets.load_dataset(folder)``), else it is one bad row;
* a manifest, by suffix, optionally gzipped (``.gz``): ``.jsonl``/``.ndjson`` (one object per line), ``.json``
  (a JSON list of objects, or JSON lines), ``.csv``/``.tsv`` (a header line), ``.parquet`` (read in batches, by
  row group, through pyarrow). JSON lines and CSV/TSV are streamed line by line;
* a Lhotse cut manifest (``cuts.jsonl``, ``cuts.jsonl.gz``): any JSON-lines row that is a cut (``"type":
  "MonoCut"``, or ``recording`` + ``supervisions``) is read as one: its recording's file source is the audio
  (and the ``path`` column, as written); the other columns are ``id``, ``start``, ``duration``, ``channel``,
  ``recording_id``, ``sampling_rate``, ``text`` (the supervisions' transcripts), ``speaker``, ``language``,
  ``supervisions`` and the cut's ``custom`` fields (``start``/``duration`` say which part of the recording the
  cut is; readers that take ``Row.audio`` whole read the whole recording). Cuts are parsed by lhotse itself when
  it is installed, else from its documented JSON form;
* a Hugging Face dataset name (``owner/name``, not an existing path): ``datasets.load_dataset(name, split=split)``
  (downloaded once into the ``datasets`` cache, then read from disk; needs the hub or that cache).

Dataset ``Audio`` columns are read without decoding (``{"path", "bytes"}``); bytes never appear in ``fields``
(they are not JSON-able), so audio held only as bytes is not reachable through ``Row.audio``.

References (``Row.ref``)
-------------------------
``FILE:LINE`` for JSON lines and CSV/TSV rows (1-based line numbers as an editor shows them; a CSV row that spans
lines is named by its first line), ``FILE#i`` for Parquet and JSON-list rows (0-based row index),
``DATASET[split]#i`` for datasets, the path itself for audio files, glob matches and folder contents. A problem
with a whole input (a missing manifest, a dataset that cannot be loaded) is one bad row whose ``ref`` is the input.

Bad rows
--------
A line that is not UTF-8, not valid JSON or not a JSON object, a row that names no audio, a row whose declared
columns have the wrong type (contract ``manifest-row``, :mod:`paraspeechclap.schemas.manifest`: ``duration`` a
number, ``text_description`` a string or list of strings, ...; a row stamped with a newer version than this code
reads), or an input that cannot be opened comes as ``Row(error=...)``: never an exception, and the rows after it
keep coming. Blank lines are not rows. Callers report bad rows (with their ``ref``) and skip them. Rows that name no
audio read with ``require_audio=False`` (a reranking manifest's candidate lists) are not manifest rows: their
columns are not checked.

CSV/TSV cells are typed the same way everywhere: an empty cell is ``None``; a cell holding a JSON list or object
(or a Python list literal) is that list/object; an integer (no leading zeros) or a decimal number is a number;
anything else is the string.

The audio path rule (:func:`resolve_audio_path`, the only one)
---------------------------------------------------------------
1. A *direct* column, the first of ``path``, ``audio``, ``audio_path``, ``file`` holding a non-blank string;
2. else ``relative_audio_path``, under the row's ``source`` subfolder when ``source`` is non-blank:
   ``ROOT/source/relative_audio_path``;
3. else a Hugging Face ``audio`` column holding a mapping with a non-blank ``path``;
4. else the row names no audio (a bad row, or :class:`ValueError` from :func:`resolve_audio_path`).

An absolute path (``~`` expanded) is taken as is. A relative one is joined to ROOT, the first of: the caller's
``audio_root`` (``--audio-root``); the row's own ``audio_root`` column (itself relative to the manifest's folder
when relative); the manifest's folder (``base``). With no ROOT a relative direct path stays relative (to the
working directory) while a ``relative_audio_path`` is an error: it needs a root. Datasets have no manifest folder.
Whether the file exists is not checked here.
"""

from __future__ import annotations

import ast
import csv
import glob
import gzip
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from ..schemas.columns import AUDIO_ROOT, DIRECT_AUDIO_COLUMNS, RELATIVE_AUDIO_PATH, SOURCE

__all__ = ["AUDIO_SUFFIXES", "MANIFEST_SUFFIXES", "Row", "read_rows", "resolve_audio_path"]

#: suffixes of the audio files taken from folders (and that mark a missing path as a file rather than a dataset)
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".opus"})
#: manifest suffixes (each may also end in ``.gz``, except Parquet)
MANIFEST_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")
#: the direct audio columns, in order of precedence (declared by the manifest-row contract)
DIRECT_COLUMNS = DIRECT_AUDIO_COLUMNS
_GLOB_CHARS = re.compile(r"[*?\[]")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_INT = re.compile(r"^[+-]?(0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(\.[0-9]*)?[eE][+-]?[0-9]+)$")
_CUT_TYPES = {"MonoCut", "MultiCut", "MixedCut", "PaddingCut", "DataCut"}
_BATCH = 1024


@dataclass
class Row:
    """One row of an input: where it came from, its audio path and its columns, or why it is bad."""

    ref: str
    audio: str | None
    fields: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# --------------------------------------------------------------------------------------------- the path rule
def _text(value: Any) -> str | None:
    """A non-blank string, else None (NaN and non-strings count as blank)."""
    return value if isinstance(value, str) and value.strip() else None


def _has_audio_column(row: Mapping) -> bool:
    if any(_text(row.get(c)) for c in DIRECT_COLUMNS) or _text(row.get(RELATIVE_AUDIO_PATH)):
        return True
    audio = row.get("audio")
    return isinstance(audio, Mapping) and _text(audio.get("path")) is not None


def _root(row: Mapping, base: Path | str | None, audio_root: str | os.PathLike | None) -> str | None:
    if audio_root is not None and str(audio_root) != "":
        return os.path.expanduser(os.fspath(audio_root))
    own = _text(row.get(AUDIO_ROOT))
    if own:
        own = os.path.expanduser(own)
        return own if os.path.isabs(own) or base is None else os.path.join(os.fspath(base), own)
    return None if base is None else os.fspath(base)


def resolve_audio_path(row: Mapping, base: Path | None = None, audio_root: str | None = None) -> str:
    """The audio path of a row, by the one rule of this module (see the module docstring for the precedence).

    ``base``: the manifest's folder (None for datasets and plain rows); ``audio_root``: the caller's root, which
    wins over the row's own ``audio_root`` column and over ``base``. Raises :class:`ValueError` when the row names
    no audio, or names it by ``relative_audio_path`` with no root to put it under.
    """
    if not isinstance(row, Mapping):
        raise ValueError(f"a row must be an object, got {type(row).__name__}")
    direct = next((_text(row.get(c)) for c in DIRECT_COLUMNS if _text(row.get(c))), None)
    if direct is None and not _text(row.get(RELATIVE_AUDIO_PATH)):
        audio = row.get("audio")
        if isinstance(audio, Mapping):
            direct = _text(audio.get("path"))
    if direct is not None:
        direct = os.path.expanduser(direct)
        if os.path.isabs(direct):
            return direct
        root = _root(row, base, audio_root)
        return direct if root is None else os.path.join(root, direct)
    relative = _text(row.get(RELATIVE_AUDIO_PATH))
    if relative is None:
        named = ", ".join(repr(c) for c in DIRECT_COLUMNS)
        raise ValueError(f"no audio column ({named} or {RELATIVE_AUDIO_PATH!r}); columns: {sorted(map(str, row))}")
    root = _root(row, base, audio_root)
    if root is None:
        raise ValueError("'relative_audio_path' needs an audio root (give audio_root, e.g. --audio-root DIR)")
    source = _text(row.get(SOURCE))
    return os.path.join(root, source, relative) if source else os.path.join(root, relative)


def _row(ref: str, fields: Any, base: Path | None, audio_root: str | None, require_audio: bool) -> Row:
    """A parsed record -> Row (its audio resolved), or a bad Row saying why."""
    if not isinstance(fields, dict):
        return Row(ref, None, {}, f"expected a JSON object, got {type(fields).__name__}")
    if _is_cut(fields):
        return _cut_row(ref, fields, base, audio_root)
    embedded = _embedded_name(fields)
    fields = _jsonable(fields)
    if not require_audio and not _has_audio_column(fields):
        return Row(ref, None, fields)
    from ..schemas.core import SchemaError, check  # pydantic: only once rows are read

    try:
        check(fields, "manifest-row", ref)
    except SchemaError as err:
        return Row(ref, None, fields, err.detail)
    try:
        path = resolve_audio_path(fields, base, audio_root)
    except ValueError as err:
        return Row(ref, None, fields, str(err))
    if embedded is not None and not os.path.isabs(path) and audio_root is None:
        return Row(ref, None, fields, f"the audio is stored as bytes in the data (its file name {embedded!r} is all "
                                      "that is known of a path); give the folder holding the files as audio_root")
    return Row(ref, path, fields)


def _embedded_name(record: dict) -> str | None:
    """The file name of a Hugging Face audio cell whose bytes are stored in the data (when that names the audio)."""
    audio = record.get("audio")
    if (isinstance(audio, Mapping) and audio.get("bytes") is not None and _text(audio.get("path"))
            and not any(_text(record.get(c)) for c in DIRECT_COLUMNS) and not _text(record.get(RELATIVE_AUDIO_PATH))):
        return audio["path"]
    return None


# --------------------------------------------------------------------------------------------- values
def _jsonable(value: Any) -> Any:
    """Python values a JSON encoder takes: numpy scalars/arrays unwrapped, bytes dropped (None), NaN -> None."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return None
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return _jsonable(tolist())
    isoformat = getattr(value, "isoformat", None)  # dates and times
    if callable(isoformat):
        return isoformat()
    try:
        return float(value)  # Decimal and friends
    except (TypeError, ValueError):
        return str(value)


def _cell(text: str) -> Any:
    """A CSV/TSV cell, typed (see the module docstring)."""
    s = text.strip()
    if not s:
        return None
    if (s[0], s[-1]) in (("[", "]"), ("{", "}")):
        try:
            return json.loads(s)
        except ValueError:
            try:
                value = ast.literal_eval(s)
                if isinstance(value, (list, tuple, dict)):
                    return _jsonable(value)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                pass
        return text
    if _INT.match(s):
        return int(s)
    if _FLOAT.match(s):
        return float(s)
    return text


# --------------------------------------------------------------------------------------------- kinds of input
def _manifest_kind(path: Path) -> str | None:
    """``jsonl``, ``json``, ``csv``, ``tsv`` or ``parquet`` by the suffix (under an optional ``.gz``), else None."""
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    suffix = (suffixes[-2] if len(suffixes) == 2 else "") if gz else (suffixes[-1] if suffixes else "")
    kind = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
            ".parquet": "parquet"}.get(suffix)
    return None if kind == "parquet" and gz else kind


def _is_saved_dataset(folder: Path) -> bool:
    """A ``datasets`` ``save_to_disk`` folder (a Dataset has state.json, a DatasetDict dataset_dict.json)."""
    return (folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file()


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")


def read_rows(inputs: str | os.PathLike | Sequence[str | os.PathLike], audio_root: str | None = None,
              split: str = "train", *, require_audio: bool = True) -> Iterator[Row]:
    """Rows of every input, streamed, in order (see the module docstring for the kinds of input and refs).

    ``audio_root``: the root of relative audio paths (wins over the rows' own ``audio_root`` and the manifest's
    folder). ``split``: the split of dataset inputs. ``require_audio=False`` accepts rows that name no audio
    (``Row.audio`` None, not an error), for inputs whose rows carry their audio otherwise (a reranking manifest's
    candidate lists) or for column-only reads.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    root = None if audio_root is None else os.fspath(audio_root)
    for item in inputs:
        yield from _read_input(os.fspath(item), root, split, require_audio)


def _read_input(item: str, audio_root: str | None, split: str, require_audio: bool) -> Iterator[Row]:
    path = Path(os.path.expanduser(item))
    if path.is_file():
        yield from _read_file(item, path, audio_root, require_audio)
    elif path.is_dir():
        yield from _read_folder(item, path, audio_root, split, require_audio)
    elif _GLOB_CHARS.search(item):
        matches = sorted(glob.glob(os.path.expanduser(item), recursive=True))
        files = [m for m in matches if os.path.isfile(m)]
        if not files:
            yield Row(item, None, {}, "no files match" if not matches else "only folders match (give FOLDER itself)")
        for match in files:
            yield from _read_file(match, Path(match), audio_root, require_audio)
    elif _manifest_kind(path) is not None:
        yield Row(item, None, {}, "manifest not found")
    elif _HUB_ID.match(item) and path.suffix.lower() not in AUDIO_SUFFIXES:
        yield from _read_dataset(item, None, audio_root, split, require_audio)
    else:  # an audio file that does not exist: reported by whoever decodes it, like any unreadable file
        yield Row(item, item, {"path": item})


def _read_file(ref: str, path: Path, audio_root: str | None, require_audio: bool) -> Iterator[Row]:
    kind = _manifest_kind(path)
    if kind is None:
        yield Row(ref, ref, {"path": ref})
        return
    base = path.parent
    try:
        if kind == "parquet":
            yield from _read_parquet(ref, path, base, audio_root, require_audio)
        elif kind in ("csv", "tsv"):
            yield from _read_csv(ref, path, "\t" if kind == "tsv" else ",", base, audio_root, require_audio)
        else:
            yield from _read_json(ref, path, kind, base, audio_root, require_audio)
    except (OSError, EOFError, ValueError) as err:  # unreadable file, broken gzip/Parquet: the rest of it is lost
        yield Row(ref, None, {}, f"cannot read ({type(err).__name__}: {err})")


def _read_json(ref: str, path: Path, kind: str, base: Path, audio_root: str | None,
               require_audio: bool) -> Iterator[Row]:
    with _open_binary(path) as handle:
        if kind == "json":
            head = handle.peek(64) if hasattr(handle, "peek") else b""
            if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
                try:
                    records = json.loads(handle.read().decode("utf-8-sig"))
                except UnicodeDecodeError as err:
                    yield Row(ref, None, {}, _bad_utf8(err))
                    return
                except json.JSONDecodeError as err:
                    yield Row(f"{ref}:{err.lineno}", None, {}, f"not valid JSON ({err.msg} at column {err.colno})")
                    return
                for i, record in enumerate(records):
                    yield _row(f"{ref}#{i}", record, base, audio_root, require_audio)
                return
        for number, raw in enumerate(handle, 1):
            where = f"{ref}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield Row(where, None, {}, _bad_utf8(err))
                continue
            if number == 1 and line.startswith("\ufeff"):
                line = line[1:]
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                yield Row(where, None, {}, f"not valid JSON ({err.msg} at column {err.colno})")
                continue
            yield _row(where, record, base, audio_root, require_audio)


def _bad_utf8(err: UnicodeDecodeError) -> str:
    return f"not valid UTF-8 (byte 0x{err.object[err.start]:02x} at column {err.start + 1})"


def _read_csv(ref: str, path: Path, delimiter: str, base: Path, audio_root: str | None,
              require_audio: bool) -> Iterator[Row]:
    with _open_binary(path) as raw:
        # undecodable bytes are kept as U+FFFD and the row is reported bad, so line numbers stay right
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
        reader = csv.reader(text, delimiter=delimiter)
        header: list[str] | None = None
        while True:
            first = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                yield Row(f"{ref}:{first}", None, {}, f"not valid CSV ({err})")
                continue
            if not cells or all(not c.strip() for c in cells):
                continue
            where = f"{ref}:{first}"
            if header is None:
                header = [h.strip() for h in cells]
                continue
            if any("\ufffd" in c for c in cells):
                yield Row(where, None, {}, "not valid UTF-8")
                continue
            if len(cells) > len(header):
                yield Row(where, None, {}, f"{len(cells)} cells for {len(header)} columns")
                continue
            fields = {name: _cell(cells[i]) if i < len(cells) else None for i, name in enumerate(header)}
            yield _row(where, fields, base, audio_root, require_audio)


def _read_parquet(ref: str, path: Path, base: Path, audio_root: str | None, require_audio: bool) -> Iterator[Row]:
    import pyarrow.parquet as pq

    index = 0
    with pq.ParquetFile(path) as parquet:
        for group in range(parquet.num_row_groups):  # one row group at a time, in batches
            for batch in parquet.iter_batches(batch_size=_BATCH, row_groups=[group]):
                for record in batch.to_pylist():
                    yield _row(f"{ref}#{index}", record, base, audio_root, require_audio)
                    index += 1


def _read_folder(ref: str, folder: Path, audio_root: str | None, split: str, require_audio: bool) -> Iterator[Row]:
    if _is_saved_dataset(folder):
        yield from _read_dataset(ref, folder, audio_root, split, require_audio)
        return
    files = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if files:
        for name in files:
            yield Row(name, name, {"path": name})
        return
    found = False
    for row in _read_dataset(ref, folder, audio_root, split, require_audio, quiet=True):
        found = True
        yield row
    if not found:
        yield Row(ref, None, {}, f"no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) in this folder, "
                                 "and not a dataset folder")


def _read_dataset(name: str, folder: Path | None, audio_root: str | None, split: str, require_audio: bool,
                  quiet: bool = False) -> Iterator[Row]:
    """Rows of a ``save_to_disk`` folder, a dataset folder (``quiet``: nothing when it is not one) or a hub name."""
    ref = f"{name}[{split}]"
    try:
        import datasets

        if folder is not None and _is_saved_dataset(folder):
            ds = datasets.load_from_disk(str(folder))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    yield Row(ref, None, {}, f"no split {split!r}; available: {sorted(ds)}")
                    return
                ds = ds[split]
            else:
                ref = f"{name}[{ds.split or split}]"
        else:
            ds = datasets.load_dataset(str(folder) if folder is not None else name, split=split)
        for column, feature in (ds.features or {}).items():
            if isinstance(feature, datasets.Audio) and feature.decode:
                ds = ds.cast_column(column, datasets.Audio(sampling_rate=feature.sampling_rate, decode=False))
    except Exception as err:  # noqa: BLE001 - datasets raises many kinds; the input is one bad row
        if not quiet:
            yield Row(ref, None, {}, f"cannot load dataset ({type(err).__name__}: {err})")
        return
    for index, record in enumerate(ds):
        yield _row(f"{ref}#{index}", record, None, audio_root, require_audio)


# --------------------------------------------------------------------------------------------- Lhotse cuts
def _is_cut(record: dict) -> bool:
    kind = record.get("type")
    if isinstance(kind, str) and kind in _CUT_TYPES:
        return True
    return isinstance(record.get("recording"), dict) and isinstance(record.get("supervisions"), list)


def _cut_row(ref: str, record: dict, base: Path | None, audio_root: str | None) -> Row:
    try:
        fields, source = _cut_fields(record)
    except Exception as err:  # noqa: BLE001 - lhotse raises what it likes on a malformed cut
        return Row(ref, None, {}, f"not a readable Lhotse cut ({type(err).__name__}: {err})")
    if isinstance(source, str) and source.startswith("error: "):
        return Row(ref, None, fields, source[len("error: "):])
    return Row(ref, resolve_audio_path({"path": source}, base, audio_root), fields)


def _cut_fields(record: dict) -> tuple[dict, str]:
    """(columns, the recording's file source or ``"error: why"``) of one serialised cut."""
    try:
        from lhotse.serialization import deserialize_item
    except ImportError:
        deserialize_item = None
    if deserialize_item is not None:
        cut = deserialize_item(record)
        recording = getattr(cut, "recording", None)
        if recording is None:
            return {"id": getattr(cut, "id", None)}, f"error: a {type(cut).__name__} has no single recording inside"
        supervisions = [s.to_dict() for s in cut.supervisions]
        info = {"id": cut.id, "start": cut.start, "duration": cut.duration, "channel": cut.channel,
                "recording_id": recording.id, "sampling_rate": recording.sampling_rate,
                "sources": [{"type": s.type, "source": s.source} for s in recording.sources]}
        custom = dict(cut.custom or {})
    else:
        recording = record.get("recording")
        if not isinstance(recording, dict):
            return {"id": record.get("id")}, "error: the cut has no recording inside"
        supervisions = [s for s in record.get("supervisions") or [] if isinstance(s, dict)]
        info = {"id": record.get("id"), "start": record.get("start", 0.0), "duration": record.get("duration"),
                "channel": record.get("channel"), "recording_id": recording.get("id"),
                "sampling_rate": recording.get("sampling_rate"),
                "sources": [s for s in recording.get("sources") or [] if isinstance(s, dict)]}
        custom = dict(record.get("custom") or {})
    sources = info.pop("sources")
    texts = [s.get("text") for s in supervisions if isinstance(s.get("text"), str) and s.get("text")]
    first = supervisions[0] if supervisions else {}
    fields = {**info, "text": " ".join(texts) if texts else None, "speaker": first.get("speaker"),
              "language": first.get("language"), "supervisions": supervisions, **custom}
    files = [s.get("source") for s in sources if s.get("type") == "file" and _text(s.get("source"))]
    if not files:
        kinds = sorted({str(s.get("type")) for s in sources}) or ["none"]
        return _jsonable(fields), f"error: the recording has no file source (sources: {', '.join(kinds)})"
    return _jsonable({"path": files[0], **fields}), files[0]

