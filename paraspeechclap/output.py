"""One output language for every command that emits results: ``--format table|json|jsonl|csv|parquet`` and
``--out FILE``, each write atomic through :mod:`paraspeechclap.fileio`.

Provenance (model identity, precision, device, code version) travels with every machine-readable output, where
plain readers (pandas, DuckDB, ``jq``) still read the data as it is:

- ``json``: a top-level ``"provenance"`` key beside the results;
- ``parquet``: the schema metadata key ``paraspeechclap`` (as ``embed`` and ``annotate`` write it);
- ``csv`` / ``jsonl``: plain rows, and the provenance in a sidecar ``OUT.provenance.json``; written to stdout they
  have no file beside them, so the provenance goes to stderr as one ``# provenance: {...}`` line.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

FORMATS = ("table", "json", "jsonl", "csv", "parquet")
SIDECAR_SUFFIX = ".provenance.json"
METADATA_KEY = b"paraspeechclap"
_BY_SUFFIX = {".json": "json", ".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def add_arguments(parser: argparse.ArgumentParser, formats: Sequence[str] = FORMATS, aliases: Sequence[str] = (),
                  out: bool = True) -> None:
    """``--format`` (default: from ``--out``'s suffix, else table), ``--out`` and ``--overwrite`` (``out=False``:
    a command whose ``--out`` is a folder of its own prints its results on stdout); ``aliases`` (``json``, ``csv``)
    adds those flags of earlier releases as deprecated spellings of ``--format``."""
    group = parser.add_argument_group("output")
    group.add_argument("--format", choices=list(formats), default=None,
                       help=f"{' | '.join(formats)} (default: " + ("from --out's suffix, else " if out else "")
                            + "table); machine-readable formats carry the provenance (JSON: a 'provenance' key; "
                            f"Parquet: schema metadata; CSV/JSONL: a {SIDECAR_SUFFIX} sidecar beside --out, or a "
                            "'# provenance:' line on stderr)")
    if out:
        group.add_argument("--out", help="write the results to this file (atomically) instead of stdout")
        group.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    old = group.add_mutually_exclusive_group() if aliases else None  # argparse's help refuses an empty group
    for alias in aliases:
        old.add_argument(f"--{alias}", action="store_const", const=alias, dest="legacy_format",
                         help=f"deprecated: --format {alias}")


def chosen_format(args: argparse.Namespace, file_out: bool = True) -> str:
    """The format asked for: ``--format``, else a deprecated alias (with a note), else ``--out``'s suffix, else
    table. A conflict between ``--format`` and an alias is a usage error. ``file_out=False``: the command's own
    ``--out`` (a folder) is not where these results go."""
    fmt, legacy = getattr(args, "format", None), getattr(args, "legacy_format", None)
    if legacy is not None:
        if fmt is not None and fmt != legacy:
            raise ValueError(f"--{legacy} contradicts --format {fmt}")
        print(f"note: --{legacy} is deprecated; use --format {legacy}", file=sys.stderr)
        fmt = legacy
    out = getattr(args, "out", None) if file_out else None
    if fmt is None:
        fmt = _BY_SUFFIX.get(Path(out).suffix.lower(), "table") if out else "table"
    if fmt == "parquet" and not out:
        raise ValueError("--format parquet writes a file: give --out FILE.parquet")
    return fmt


def check_output(out: str | None, inputs: Sequence[str], overwrite: bool) -> None:
    """Refuse an output path that is one of the inputs, or (without ``--overwrite``) an existing file."""
    if out is None:
        return
    target = Path(out).resolve()
    for item in inputs:
        if Path(item).resolve() == target:
            raise ValueError(f"--out {out} is one of the inputs; refusing to overwrite it")
    if Path(out).exists() and not overwrite:
        raise ValueError(f"--out {out} exists; pass --overwrite to replace it")
    sidecar = sidecar_path(out)
    if sidecar.exists() and not overwrite:
        raise ValueError(f"{sidecar} (the provenance beside --out) exists; pass --overwrite to replace it")


def sidecar_path(out: str | Path) -> Path:
    return Path(str(out) + SIDECAR_SUFFIX)


def write_text(text: str, out: str | None) -> None:
    """``text`` to stdout, or atomically to ``out``."""
    if out is None:
        sys.stdout.write(text)
        return
    from .fileio import atomic_write_text

    atomic_write_text(out, text)


def emit(fmt: str, out: str | None, *, provenance: dict, document: dict, rows: list[dict],
         table: Callable[[], str]) -> None:
    """Write results in ``fmt``: ``document`` (nested; ``json`` adds ``provenance`` to it), ``rows`` (flat
    records for ``jsonl`` / ``csv`` / ``parquet``) or the human ``table``."""
    if fmt == "table":
        write_text(table(), out)
    elif fmt == "json":
        write_text(json.dumps({"provenance": provenance, **document}, indent=2, default=str) + "\n", out)
    elif fmt == "jsonl":
        write_text("".join(json.dumps(row, default=str) + "\n" for row in rows), out)
        _provenance_beside(provenance, out)
    elif fmt == "csv":
        write_text(csv_text(rows), out)
        _provenance_beside(provenance, out)
    elif fmt == "parquet":
        write_parquet(rows, out, provenance)
    else:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def csv_text(rows: list[dict]) -> str:
    """Rows as CSV, the columns in first-seen order; a list cell joined with ``;``, floats to 6 decimals."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, (list, tuple)):
        return ";".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return value


def write_parquet(rows: list[dict], out: str | Path, provenance: dict) -> None:
    """Rows as one Parquet file with the provenance in its schema metadata, written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .fileio import atomic_path

    table = pa.Table.from_pylist(rows).replace_schema_metadata({METADATA_KEY: json.dumps(provenance).encode()})
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)


def read_provenance(path: str | Path) -> dict | None:
    """The provenance of an output this module wrote (any format), ``None`` where it has none."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else None
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8")).get("provenance")
    sidecar = sidecar_path(path)
    return json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.exists() else None


def _provenance_beside(provenance: dict, out: str | None) -> None:
    if out is None:
        print("# provenance: " + json.dumps(provenance, default=str), file=sys.stderr)
        return
    from .fileio import atomic_write_json

    atomic_write_json(sidecar_path(out), provenance)
