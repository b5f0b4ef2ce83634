"""The shard-level annotation job that every engine runs: plan, manifest, one shard, commit, progress.

Shards and their files are described in :mod:`.layout` (format 2: ``data/{split}-{k}-of-{n}.parquet``, the rows of
one split each). A shard is written through :func:`paraspeechclap.fileio.atomic_path` with ``durable=True``
(temporary file beside it, fsync, rename, fsync of the folder); its completion is recorded in ``_manifest.json``
only after that, under a file lock, by whichever process wrote it, with the file's SHA-256 and size
(:class:`ShardRecord`). A shard counts as finished when the manifest records it *and* its file matches the record,
so a process killed at any moment leaves either no shard file, or a complete one that the next run rewrites (same
name: never a duplicate) or keeps; a file truncated or altered since is recomputed, and said so. Workers write
shard files holding the folder lock shared, so a resume (holding it exclusively) removes only temporaries that no
live writer holds. A folder of format 1 is resumed in format 1.
"""
from __future__ import annotations

import contextlib
import copy
import fcntl
import functools
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, TypedDict

import numpy as np

from ..modelspec import ModelSpec
from ..fileio import FileRecord, atomic_path, atomic_write_json, check_file, file_record, remove_temporaries
from .attributes import AttributeTable
from .inputs import InputRow, plan_rows, rows_digest
from .layout import (FORMAT, FORMAT_VERSION, LOCK, MANIFEST, TEMPORARIES, Carried, ShardPlan, annotation_schema,
                     carried_columns, holds_shards, name_carried, output_table, plan_shards, shard_metadata,
                     temporary_folders)
from ..schemas.core import SchemaKey

STAMP_KEY = SchemaKey().key


class ShardRecord(TypedDict, total=False):
    """One finished shard in ``_manifest.json``'s ``shards``, keyed by its file name (relative to the folder).
    Format 2 writes every key but ``rows``; format 1 wrote ``index``, ``rows`` and the counts, and ``bytes``
    without ``sha256`` (this version adds ``sha256`` to the records it writes into a format-1 folder)."""

    index: int  # the shard's number in the job
    split: str
    num_rows: int
    rows: list[int]  # format 1: [first, end) of the input rows it holds
    ok: int
    failed: int
    audio_seconds: float
    bytes: int
    sha256: str
    completed_at: str  # UTC, ISO 8601


@dataclass
class ResumeState:
    """What a run finds in its folder: finished shards, shards to recompute (name -> why), finished shards whose
    records predate checksums (checked by size only), and the leftover temporaries it removed."""

    total: int
    done: set[int]
    redo: dict[str, str] = field(default_factory=dict)
    unverified: int = 0
    removed: list[str] = field(default_factory=list)
    version: int = FORMAT_VERSION

    @property
    def pending(self) -> list[int]:
        return [k for k in range(self.total) if k not in self.done]

    def report(self) -> list[str]:
        """What the resume skips, recomputes and removes, and why (one line each); nothing for a fresh folder."""
        lines = []
        if self.done or self.redo:
            lines.append(f"resuming: {len(self.done)} of {self.total} shards done, skipped; "
                         f"{len(self.pending)} to compute")
        if self.version < FORMAT_VERSION:
            lines.append(f"this folder is in annotation format {self.version}: its remaining shards are written in "
                         f"that format (train-NNNNN.parquet, no split column or manifest fields)")
        lines += [f"recomputing {name}: {why}" for name, why in sorted(self.redo.items())]
        if self.unverified:
            lines.append(f"{self.unverified} finished shards were recorded before checksums existed: "
                         f"checked by size only")
        lines += [f"removed {name}: an unfinished write left by an earlier run" for name in self.removed]
        return lines

    def to_dict(self) -> dict:
        return {"skipped": len(self.done), "recomputed": dict(self.redo), "unverified": self.unverified,
                "removed_temporaries": list(self.removed)}


class AnnotateError(RuntimeError):
    """A job that cannot run (another model or input already in the folder, bad options)."""


@dataclass
class JobConfig:
    inputs: list[str]
    out: str
    model: ModelSpec = field(default_factory=ModelSpec)
    shard_size: int = 1000
    embedding_dtype: str = "float32"
    batch_size: int | None = None
    captions: bool = True
    attributes: str | None = None
    audio_root: str | None = None
    split: str | None = None   # None: each row's own, else its manifest's name's, else train (inputs.py)

    def __post_init__(self) -> None:
        if self.embedding_dtype not in ("float16", "float32"):
            raise AnnotateError(f"embedding dtype must be float16 or float32, got {self.embedding_dtype!r}")
        if self.shard_size < 1:
            raise AnnotateError("shard size must be >= 1")


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    from .._version import __version__

    try:
        commit = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+g{commit}" if commit else __version__


def annotate_rows(model: Any, table: AttributeTable, rows: Sequence[InputRow], dim: int, dtype: str = "float32",
                  batch_size: int | None = None, captions: bool = True):
    """One Arrow table (rows in input order) for ``rows``: embeddings through :func:`inference.embed_items`, class
    probabilities, confident tags, caption, status. Bad inputs become ``status='error'`` rows."""
    import pyarrow as pa

    from ..inference import embed_items

    n = len(rows)
    good = [i for i, r in enumerate(rows) if r.error is None and r.audio]
    emb = np.zeros((n, dim), np.float32)
    duration: list[float | None] = [None] * n
    error: list[str | None] = [r.error or (None if r.audio else "no audio path") for r in rows]
    for result in embed_items(model, [rows[i].audio for i in good], batch_size=batch_size):
        i = good[result.index]
        if result.ok:
            emb[i] = result.embedding
            duration[i] = float(result.seconds) if result.seconds else None
        else:
            error[i] = result.error
    ok = np.array([e is None for e in error], dtype=bool)
    probs = table.probabilities(model, emb[ok])
    full = {a.name: np.full((n, len(a.outcomes)), np.nan, np.float32) for a in table.attributes}
    for name in full:
        full[name][ok] = probs[name]
    columns: dict[str, Any] = {
        "row": pa.array([r.row for r in rows], pa.int64()),
        "id": pa.array([r.id for r in rows], pa.string()),
        "audio": pa.array([r.audio for r in rows], pa.string()),
        "duration": pa.array(duration, pa.float64()),
        "status": pa.array(["ok" if k else "error" for k in ok], pa.string()),
        "error": pa.array(error, pa.string()),
    }
    vtype = pa.float16() if dtype == "float16" else pa.float32()
    flat = pa.array(emb.astype(np.float16 if dtype == "float16" else np.float32).ravel(), vtype)
    columns["embedding"] = pa.FixedSizeListArray.from_arrays(flat, dim, mask=pa.array(~ok))
    for a in table.attributes:
        top = np.argmax(np.nan_to_num(full[a.name], nan=-1.0), axis=1)
        columns[a.name] = pa.array([a.outcomes[t] if k else None for t, k in zip(top, ok)], pa.string())
    for attr, cls, col in table.probability_columns():
        a_index = table.by_name(attr).outcomes.index(cls)
        values = full[attr][:, a_index]
        columns[col] = pa.array(values, pa.float32(), mask=~ok)
    ok_rows = {i: pos for pos, i in enumerate(np.flatnonzero(ok))}
    tags = [table.tags(probs, ok_rows[i]) if i in ok_rows else None for i in range(n)]
    columns["tags"] = pa.array(tags, pa.list_(pa.string()))
    columns["caption"] = pa.array([table.caption(t) if (captions and t is not None) else None for t in tags], pa.string())
    return pa.table(columns, schema=annotation_schema(table, dim, dtype))


# ---------------------------------------------------------------------------------------------- the job
@contextlib.contextmanager
def folder_lock(out: Path, shared: bool = False):
    """The folder's lock: exclusive for the manifest and for removing temporaries, shared while writing a shard."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_manifest(out: str | Path) -> dict | None:
    path = Path(out) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Job:
    """The planned shards of one annotation folder, and the manifest that records their completion.

    ``version``: the folder's format (a format-1 folder is resumed as format 1; anything else is written as
    :data:`~.layout.FORMAT_VERSION`). The job holds every input row; :meth:`light` is the copy a worker gets (the
    rows come with each :class:`~.layout.ShardPlan` it is given)."""

    def __init__(self, config: JobConfig, rows: list[InputRow] | None = None):
        self.config = config
        self.out = Path(config.out)
        old = read_manifest(self.out)
        self.version = 1 if old is not None and int(old.get("version", 1)) < 2 else FORMAT_VERSION
        self.rows = rows if rows is not None else plan_rows(config.inputs, config.audio_root, config.split)
        self.shards = plan_shards(self.rows, config.shard_size, self.version)
        self.num_shards = len(self.shards)
        self.num_rows = len(self.rows)
        self.digest = rows_digest(self.rows, self.version)
        self._fields = [] if self.version < 2 else carried_columns(self.rows)  # types, over every row
        self.carried: list[Carried] = []
        self.manifest: dict | None = None

    def light(self) -> "Job":
        """This job without its rows (a worker is sent the rows of each shard it computes)."""
        job = copy.copy(self)
        job.rows = []
        job.shards = [s.without_rows() for s in self.shards]
        return job

    def shard_rows(self, index: int) -> list[InputRow]:
        return self.shards[index].rows

    def _name_carried(self, table: AttributeTable, dim: int) -> list[Carried]:
        # an input row's "schema" is its own file's stamp: carried as input_schema, so a shard row is not read as one
        taken = set(annotation_schema(table, dim, self.config.embedding_dtype).names) | {"split", STAMP_KEY}
        return name_carried(self._fields, taken)

    def header(self, provenance: dict, table: AttributeTable, dim: int) -> dict:
        c = self.config
        splits: dict[str, int] = {}
        for shard in self.shards:
            splits[shard.split] = splits.get(shard.split, 0) + 1
        return {"format": FORMAT, "version": self.version,
                "input": {"inputs": [str(p) for p in c.inputs], "audio_root": c.audio_root, "split": c.split,
                          "rows": self.num_rows, "digest": self.digest, "splits": splits,
                          "carried": [x.to_dict() for x in self._name_carried(table, dim)]},
                "model": provenance, "precision": provenance.get("precision"), "code_version": code_version(),
                "embedding": {"dim": dim, "dtype": c.embedding_dtype}, "captions": c.captions,
                "attributes": table.to_dict(),
                "columns": {col: [attr, cls] for attr, cls, col in table.probability_columns()},
                "shard_size": c.shard_size, "num_shards": self.num_shards, "shards": {}}

    def ensure_manifest(self, provenance: dict, table: AttributeTable, dim: int) -> dict:
        """Create the manifest, or check that the existing one is this job's (same input rows, model, options);
        the job then knows what each shard file carries (:meth:`commit`)."""
        fresh = self.header(provenance, table, dim)
        with folder_lock(self.out):
            old = read_manifest(self.out)
            if old is None:
                atomic_write_json(self.out / MANIFEST, fresh, durable=True)
                old = fresh
            for key, what in ((("input", "digest"), "input rows"), (("model", "identity"), "model"),
                              (("embedding",), "embedding options"), (("shard_size",), "shard size"),
                              (("attributes",), "attribute table")):
                a, b = old, fresh
                for k in key:
                    a, b = (a or {}).get(k), (b or {}).get(k)
                if a != b:
                    raise AnnotateError(f"{self.out} holds annotations of other {what} ({a!r} != {b!r}); "
                                        f"annotate into a new folder")
        self.manifest = old
        self.carried = self._name_carried(table, dim)
        return old

    def precheck(self) -> None:
        """Before any model is loaded: refuse a folder whose manifest holds another input, shard size or embedding
        dtype (the model and attribute table are checked by :meth:`ensure_manifest` once a model is loaded)."""
        old = read_manifest(self.out)
        if old is None:
            if holds_shards(self.out):
                raise AnnotateError(f"{self.out} holds shards but no {MANIFEST}; annotate into a new folder")
            return
        c = self.config
        for what, a, b in (("input rows", old["input"]["digest"], self.digest),
                           ("shard size", old["shard_size"], c.shard_size),
                           ("embedding options", old["embedding"]["dtype"], c.embedding_dtype)):
            if a != b:
                raise AnnotateError(f"{self.out} holds annotations of other {what} ({a!r} != {b!r}); "
                                    f"annotate into a new folder")

    def resume_state(self, clean: bool = True) -> ResumeState:
        """Which shards are finished: recorded in the manifest with a file that matches the record (streamed
        SHA-256; size only for a record without one). With ``clean``, first remove the temporaries an interrupted
        write left (under the exclusive lock: no live writer holds one then)."""
        removed = []
        if clean and self.out.is_dir():
            with folder_lock(self.out):
                for folder in temporary_folders(self.out):
                    removed += [p.relative_to(self.out).as_posix() for p in remove_temporaries(folder, TEMPORARIES)]
        manifest = read_manifest(self.out) or {}
        state = ResumeState(self.num_shards, set(), removed=removed, version=self.version)
        index_of = {s.name: s.index for s in self.shards}
        for name, info in manifest.get("shards", {}).items():
            if name not in index_of or not (isinstance(info, dict) and info.get("completed_at")):
                continue
            problem = check_file(self.out / name, info)
            if problem:
                state.redo[name] = problem
                continue
            state.done.add(index_of[name])
            state.unverified += not info.get("sha256")
        return state

    def commit(self, shard: ShardPlan, annotated, identity: str | None = None,
               alive: Callable[[str], None] | None = None) -> ShardRecord:
        """Write ``shard`` (its file made from the model's columns ``annotated`` by :func:`~.layout.output_table`)
        atomically and durably, then record its completion (with the file's SHA-256 and size) in the manifest.
        ``alive(what)`` raises when this worker must not commit (its parent is gone); it is asked before the file
        is renamed into place and again before the manifest is updated. Needs :meth:`ensure_manifest` first."""
        import pyarrow.parquet as pq

        if self.manifest is None:
            raise AnnotateError("the manifest is not known yet (call ensure_manifest first)")
        meta = shard_metadata(self.manifest["model"], shard, code_version(), self.manifest["embedding"])
        table = output_table(annotated, shard, self.carried, meta, self.version)
        with folder_lock(self.out, shared=True), atomic_path(self.out / shard.name, durable=True) as tmp:
            pq.write_table(table, tmp)
            digest: FileRecord = file_record(tmp)
            if alive is not None:
                alive(shard.name)
        info = self._record(shard, table, digest)
        with folder_lock(self.out):
            if alive is not None:
                alive(shard.name)
            manifest = read_manifest(self.out)
            if manifest is None:
                raise AnnotateError(f"{self.out / MANIFEST} disappeared")
            if identity is not None and manifest["model"].get("identity") != identity:
                raise AnnotateError("a worker's model differs from the manifest's")
            manifest["shards"][shard.name] = info
            manifest["completed_shards"] = len(manifest["shards"])
            atomic_write_json(self.out / MANIFEST, manifest, durable=True)
        return info

    def _record(self, shard: ShardPlan, table, digest: FileRecord) -> ShardRecord:
        status = table.column("status").to_pylist()
        duration = table.column("duration").to_pylist()
        info: ShardRecord = {"index": shard.index, "split": shard.split, "num_rows": table.num_rows,
                             "ok": status.count("ok"), "failed": len(status) - status.count("ok"),
                             "audio_seconds": float(sum(d or 0.0 for d in duration)), "bytes": digest["bytes"],
                             "sha256": digest["sha256"], "completed_at": _now()}
        if self.version < 2:  # format 1's contiguous slices
            start = shard.index * self.config.shard_size
            info["rows"] = [start, start + table.num_rows]
        return info


# ---------------------------------------------------------------------------------------------- progress
class Progress:
    """One line per finished shard: shards, clips, audio-hours per hour of wall time, ETA."""

    def __init__(self, total_shards: int, done_shards: int, total_rows: int, done_rows: int, stream=None,
                 quiet: bool = False):
        self.total_shards, self.done_shards = total_shards, done_shards
        self.total_rows, self.done_rows = total_rows, done_rows
        self.start_rows = done_rows
        self.audio_seconds = 0.0
        self.failed = 0
        self.started = time.monotonic()
        self.stream = stream or sys.stderr
        self.quiet = quiet

    def update(self, info: dict) -> None:
        self.done_shards += 1
        self.done_rows += info["num_rows"]
        self.audio_seconds += info.get("audio_seconds", 0.0)
        self.failed += info.get("failed", 0)
        if self.quiet:
            return
        wall = max(time.monotonic() - self.started, 1e-9)
        rate = (self.done_rows - self.start_rows) / wall
        remaining = self.total_rows - self.done_rows
        eta = remaining / rate if rate > 0 else float("inf")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta != float("inf") else "?"
        print(f"[annotate] shards {self.done_shards}/{self.total_shards}  clips {self.done_rows}/{self.total_rows} "
              f"({self.failed} failed)  {self.audio_seconds / wall:.1f} audio-h/h  {rate:.1f} clips/s  ETA {eta_text}",
              file=self.stream, flush=True)

    def summary(self) -> dict:
        wall = time.monotonic() - self.started
        return {"shards_done": self.done_shards, "shards": self.total_shards, "rows_done": self.done_rows,
                "rows": self.total_rows, "failed_this_run": self.failed, "wall_seconds": wall,
                "audio_seconds_this_run": self.audio_seconds,
                "audio_hours_per_hour": self.audio_seconds / wall if wall > 0 else 0.0}


def model_dim(model: Any) -> int:
    return int(model.config.embedding_dim)


def describe_config(config: JobConfig) -> dict:
    return asdict(config)


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(int(threads))
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
