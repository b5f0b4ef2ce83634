"""What ``paraspeechclap synth`` wrote into its output folder, so that it never replaces anyone else's file.

``OUT/synth_outputs.json`` lists every file the generator (or ``--verify-only``) wrote, with its digest
(:func:`paraspeechclap.fileio.file_digest`). Before writing, a run checks each file it plans to write: one that
exists and is not listed (or has changed since it was written) belongs to someone else, and the run is refused
before anything is written. The names a run is about to write are reserved in the record first (digest None), so
the files of an interrupted run are still recognised as ours by the next one.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from .. import schemas
from ..fileio import file_digest, owns, refuse_foreign

RECORD = "synth_outputs.json"
WRITER = "paraspeechclap.synth"

__all__ = ["RECORD", "OutputExistsError", "read_record", "write_record", "claim", "finish"]


class OutputExistsError(FileExistsError):
    """The output folder holds files, at names synth would write, that synth did not write."""


def read_record(out: str | os.PathLike) -> dict[str, str | None] | None:
    """{relative path: digest or None} from ``OUT/synth_outputs.json``; None when there is none of ours."""
    from ..fileio import read_record as read_ownership_record

    return read_ownership_record(Path(out) / RECORD, WRITER, key="files")


def write_record(out: str | os.PathLike, files: dict[str, str | None], complete: bool) -> None:
    files = {k: v for k, v in sorted(files.items()) if k != RECORD}
    schemas.write(Path(out) / RECORD, {"written_by": WRITER, "complete": complete, "files": files}, "ownership-record")


def claim(out: str | os.PathLike, planned: Iterable[str]) -> dict[str, str | None]:
    """Refuse (:class:`OutputExistsError`) if a planned file is someone else's; else reserve the names.

    Returns the record now on disk: the earlier record's files that are still ours, plus the planned names.
    """
    out = Path(out)
    planned = list(planned)
    previous = read_record(out)
    refuse_foreign(out, [*planned, RECORD], previous, writer="synth", owner="synth", record_name=RECORD,
                   error=OutputExistsError)
    record = {rel: digest for rel, digest in (previous or {}).items() if rel != RECORD and owns(out, rel, previous)}
    record.update({rel: None for rel in planned})
    write_record(out, record, complete=False)
    return record


def finish(out: str | os.PathLike, record: dict[str, str | None], known: dict[str, str] | None = None) -> dict:
    """Write the final record: every listed file that exists, with its digest (``known`` ones not re-read)."""
    out = Path(out)
    known = known or {}
    final = {}
    for rel, digest in record.items():
        if rel == RECORD or not os.path.lexists(out / rel):
            continue
        final[rel] = known.get(rel) or digest or file_digest(out / rel)
    write_record(out, final, complete=True)
    return final
