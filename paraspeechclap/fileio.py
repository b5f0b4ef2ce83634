"""The one atomic writer: every file and folder the project writes goes through here.

A write goes to a temporary name in the target's own folder (so the final rename never crosses a file system),
is flushed and, where durability matters (``durable=True``: checkpoints, training state, shards), fsynced; it is
then renamed over the target and the folder entry is fsynced too. Temporary files and folders are created with
``O_EXCL`` and the ordinary modes (0666 / 0777), so permissions follow the umask like any other file (``mkstemp``
would make them private). Errors propagate: a failed fsync or a full disk raises, and the temporary is removed.

Outputs that belong together are committed together with :func:`atomic_dir` (a folder renamed into place).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import uuid
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, TypedDict

__all__ = ["atomic_path", "atomic_open", "atomic_write", "atomic_write_bytes", "atomic_write_text",
           "atomic_write_json", "atomic_dir", "fsync_file", "fsync_dir", "temporary_name",
           "file_digest", "owns", "foreign_files", "refuse_foreign", "remove_owned", "read_record", "FileRecord", "file_record",
           "check_file", "tree_records", "check_tree", "temporary_pattern", "remove_temporaries"]


def temporary_name(target: Path) -> Path:
    """A fresh hidden name beside ``target`` (``.NAME.<random>.tmp``)."""
    return target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"


def temporary_pattern(names: str) -> re.Pattern:
    """The temporaries :func:`temporary_name` makes for targets whose name matches the regex ``names``."""
    return re.compile(rf"^\.(?:{names})\.[0-9a-f]{{12}}\.tmp$")


def remove_temporaries(folder: str | os.PathLike, pattern: re.Pattern) -> list[Path]:
    """Delete the entries of ``folder`` (files or folders) whose name ``pattern`` matches: the temporaries a crash
    left behind. Only names from :func:`temporary_pattern` should be passed, so nothing else is ever touched."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.iterdir()):
        if not pattern.match(path.name):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def fsync_file(path: str | os.PathLike) -> None:
    """fsync one file; errors (EIO, ENOSPC, ...) propagate."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a folder so a rename inside it is durable. File systems that cannot fsync folders are tolerated."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as err:  # EINVAL: this file system does not support fsync on folders
        if err.errno not in (22, 95):
            raise
    finally:
        os.close(fd)


def _create_exclusive(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # mode & ~umask, as for any new file
    os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, durable: bool = False) -> Iterator[str]:
    """Yield a temporary path beside ``target`` (parent folders created); write it, and on success it replaces
    ``target`` (fsynced first when ``durable``). On error the temporary is removed and ``target`` is untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(target)
    _create_exclusive(tmp)
    try:
        yield str(tmp)
        if durable:
            fsync_file(tmp)
        os.replace(tmp, target)
        if durable:
            fsync_dir(target.parent)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike, mode: str = "w", durable: bool = False, **kwargs: Any) -> Iterator[IO]:
    """``open()`` on a temporary beside ``target``; the file replaces ``target`` when the block ends cleanly."""
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    with atomic_path(target, durable=durable) as tmp:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()


def atomic_write(target: str | os.PathLike, write: Callable[[IO], None], binary: bool = False,
                 durable: bool = False, **kwargs: Any) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``target``, then move it into place."""
    if not binary:
        kwargs.setdefault("newline", "")
    with atomic_open(target, "wb" if binary else "w", durable=durable, **kwargs) as handle:
        write(handle)
    return Path(target)


def atomic_write_bytes(target: str | os.PathLike, data: bytes, durable: bool = False) -> Path:
    return atomic_write(target, lambda handle: handle.write(data), binary=True, durable=durable)


def atomic_write_text(target: str | os.PathLike, text: str, durable: bool = False) -> Path:
    return atomic_write(target, lambda handle: handle.write(text), durable=durable)


def atomic_write_json(target: str | os.PathLike, data: Any, durable: bool = False) -> Path:
    return atomic_write_text(target, json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n",
                             durable=durable)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, durable: bool = False, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; fill it, and on success it is renamed to ``target``.

    ``target`` must not exist unless ``replace`` is true; the caller decides that the old folder is its own
    (never pass ``replace=True`` for a folder this project did not write). With ``replace`` the old folder is
    moved aside first and deleted only after the new one is in place. On error the temporary folder is removed.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not replace:
        raise FileExistsError(f"{target} exists; refusing to replace it")
    tmp = temporary_name(target)
    os.mkdir(tmp, 0o777)  # mode & ~umask
    try:
        yield tmp
        if durable:
            for path in sorted(tmp.rglob("*")):
                if path.is_file():
                    fsync_file(path)
            fsync_dir(tmp)
        if target.exists():
            old = temporary_name(target)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
        if durable:
            fsync_dir(target.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """The rows of a JSON-lines file, in order; a line that is not a JSON object is reported on stderr with its line
    number and skipped (the rest are still read); blank lines are skipped."""
    with open(path) as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if not isinstance(row, dict):
                print(f"warning: {path}:{line_no}: not a JSON object, skipped", file=sys.stderr)
                continue
            yield row


# ------------------------------------------------------------------------------------------------------------------
# Ownership records: a command may replace or delete only files it wrote itself.
#
# A command keeps, in a record of its own (e.g. rerank's selection.json), {relative path: digest} for every file it
# wrote. Before writing into a folder that already exists it asks :func:`foreign_files` which of its planned paths
# are taken by files it does not own, and refuses if there are any; it deletes only with :func:`remove_owned`.
# A digest of None reserves a name the command checked was free and is about to write (an interrupted run).
# ------------------------------------------------------------------------------------------------------------------

def file_digest(path: str | os.PathLike) -> str:
    """``sha256:<hex>`` of a file's bytes, or ``link:<target>`` for a symbolic link (not followed)."""
    if os.path.islink(path):
        return "link:" + os.readlink(path)
    return "sha256:" + file_record(path)["sha256"]


def _record_key(rel: str) -> str | None:
    """``rel`` as a normalised relative POSIX path inside the folder, or None when it points outside."""
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or any(p in ("", ".", "..") for p in parts):
        return None
    return "/".join(parts)


def owns(folder: str | os.PathLike, rel: str, record: dict | None) -> bool:
    """Whether ``folder/rel`` is a file that ``record`` lists and that is still what was written there."""
    key = _record_key(rel)
    if not record or key is None or key not in record:
        return False
    path = Path(folder) / key
    if not os.path.lexists(path) or (path.is_dir() and not path.is_symlink()):
        return False
    expected = record[key]
    return expected is None or file_digest(path) == expected


def foreign_files(folder: str | os.PathLike, planned: Any, record: dict | None) -> list[str]:
    """The planned relative paths that already exist in ``folder`` and that ``record`` does not own."""
    return [rel for rel in planned if os.path.lexists(Path(folder) / rel) and not owns(folder, rel, record)]


def refuse_foreign(folder: str | os.PathLike, planned: Any, record: dict | None, *, writer: str, owner: str,
                   record_name: str, error: type[Exception] = FileExistsError,
                   remedy: str = "move them away or choose another --out") -> None:
    """Raise ``error`` naming the first of the planned paths that exist in ``folder`` and that ``record`` (kept in
    ``record_name`` by ``owner``) does not own: they are never replaced."""
    foreign = foreign_files(folder, planned, record)
    if foreign:
        raise error(f"{folder}: {len(foreign)} file(s) {writer} would write exist and were not written by {owner} "
                    f"(not in {record_name}, or changed since), e.g. {foreign[0]}; they are never replaced: {remedy}")


def remove_owned(folder: str | os.PathLike, rels: Any, record: dict | None) -> list[str]:
    """Delete those of ``rels`` that ``record`` owns (see :func:`owns`); others are left alone. Returns the removed."""
    removed = []
    for rel in rels:
        if owns(folder, rel, record):
            os.unlink(Path(folder) / rel)
            removed.append(rel)
    return removed


def read_record(record_file: str | os.PathLike, writer: str, key: str = "outputs") -> dict | None:
    """The ownership record that a command keeps in ``record_file`` (a JSON object with ``written_by: writer`` and
    ``key: {relative path: digest or None}``), with the record file itself listed as owned (digest None); None when
    the file is absent, a link, unreadable, or not a record of ``writer``."""
    path = Path(record_file)
    if path.is_symlink() or not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("written_by") != writer or not isinstance(doc.get(key), dict):
        return None
    record = {k: v for k, v in doc[key].items() if isinstance(k, str) and (v is None or isinstance(v, str))}
    record[path.name] = None
    return record


# ------------------------------------------------------------------------------------------------------------------
# Integrity records: what a completion record (a checkpoint's COMPLETE, an annotation shard's manifest entry) keeps
# of every file it vouches for, and the check a resume runs before trusting the file.
# ------------------------------------------------------------------------------------------------------------------

class FileRecord(TypedDict):
    """The SHA-256 (hex) and size in bytes of one file's contents."""

    sha256: str
    bytes: int


_BLOCK = 1 << 20  # streamed: a multi-GB checkpoint is hashed in constant memory


def file_record(path: str | os.PathLike) -> FileRecord:
    """The :class:`FileRecord` of a file, read in 1 MiB blocks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
            size += len(block)
    return {"sha256": digest.hexdigest(), "bytes": size}


def check_file(path: str | os.PathLike, record: dict) -> str | None:
    """None when ``path`` is a regular file that matches ``record``; otherwise what is wrong, in words. A record
    without ``sha256`` (written before digests existed) is checked by its size only."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return "missing" if not os.path.lexists(path) else "not a regular file"
    size = path.stat().st_size
    if "bytes" in record and size != int(record["bytes"]):
        return f"{size} bytes, recorded {int(record['bytes'])}"
    if record.get("sha256") and file_record(path)["sha256"] != record["sha256"]:
        return "SHA-256 differs from the record (contents altered)"
    return None


def tree_records(folder: str | os.PathLike, exclude: Iterable[str] = ()) -> dict[str, FileRecord]:
    """``{relative POSIX path: FileRecord}`` of every regular file under ``folder`` (``exclude``: relative paths
    left out, e.g. the record file itself)."""
    folder, skip = Path(folder), set(exclude)
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if rel not in skip and path.is_file() and not path.is_symlink():
            out[rel] = file_record(path)
    return out


def check_tree(folder: str | os.PathLike, records: dict[str, dict]) -> dict[str, str]:
    """``{relative path: problem}`` for each recorded file under ``folder`` that is missing or does not match its
    record (files the record does not list are not judged); empty when everything matches."""
    problems = {}
    for rel, record in sorted(records.items()):
        key = _record_key(rel)
        problem = "not a path inside the folder" if key is None else check_file(Path(folder) / key, record)
        if problem:
            problems[rel] = problem
    return problems
