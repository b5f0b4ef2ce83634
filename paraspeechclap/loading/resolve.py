"""A registry bundle -> a verified local checkpoint file.

1. List the repo's files at the revision and take the first file-name candidate it holds (the release README and
   the repos disagree on the names: ``paraspeechclap-{name}.pth.tar`` vs ``slap-{name}.pth.tar``).
2. If listing fails (offline, no network, a mirror without the tree API, ...), take the first candidate found in the
   local hub cache; failing that, if the hub did answer (with an error), ask it for each candidate in turn.
3. Download through the hub cache and, when the registry knows the SHA-256 of that file at the commit it came
   from, hash it (streamed) and refuse it on a mismatch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import hub
from .registry import Bundle
from .state import CheckpointError


@dataclass(frozen=True)
class ResolvedCheckpoint:
    path: Path
    repo_id: str
    filename: str
    revision: str | None  # as asked (None: main)
    commit: str | None  # the commit the file came from, where the cache tells
    sha256: str | None  # the verified hash, when the registry knew one


class ReleaseNotFoundError(FileNotFoundError):
    """None of a bundle's file names exists in its repo at that revision (or in the cache, when offline)."""


_HASHED: dict[tuple[str, int, int], str] = {}  # (real path, size, mtime) -> SHA-256, for this process


def _sha256(path: Path) -> str:
    """The file's SHA-256, streamed; remembered per (real path, size, mtime) so a process that loads the same
    multi-GB checkpoint again does not hash it again."""
    real = path.resolve()
    stat = real.stat()
    key = (str(real), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHED:
        _HASHED[key] = hub.sha256_file(real)
    return _HASHED[key]


def _pick_from_listing(bundle: Bundle, revision: str | None) -> tuple[str | None, Exception | None, list[str]]:
    try:
        files = hub.list_repo_files(bundle.repo_id, revision=revision)
    except Exception as err:  # offline, unreachable, repo or revision unknown, API missing on a mirror
        return None, err, []
    present = set(files)
    return next((name for name in bundle.filenames if name in present), None), None, files


def resolve_checkpoint(bundle: Bundle, revision: str | None = None) -> ResolvedCheckpoint:
    """The checkpoint file of ``bundle`` at ``revision`` (default: the bundle's, i.e. main), downloaded or cached,
    checked against the registry's SHA-256 where one applies."""
    revision = revision if revision is not None else bundle.revision
    looked_for = bundle.describe(revision)
    chosen, list_error, files = _pick_from_listing(bundle, revision)
    path: Path | None = None
    if list_error is None:
        if chosen is None:
            pth = [f for f in files if f.endswith((".pth.tar", ".pth", ".pt", ".bin", ".safetensors"))]
            raise ReleaseNotFoundError(
                f"released checkpoint {bundle.name!r} not found: looked for {looked_for}; the repo holds "
                f"{len(files)} files" + (f", checkpoint-like: {pth}" if pth else ", none of them a checkpoint")
                + ". Pass revision= for another commit, or a local .pth.tar file.")
        path = hub.fetch_file(bundle.repo_id, chosen, revision=revision)
    else:
        tried: list[str] = []
        for name in bundle.filenames:  # the cache first: works offline
            path = hub.cached_file(bundle.repo_id, name, revision=revision)
            tried.append(f"{name} (cache)")
            if path is not None:
                chosen = name
                break
        # asking for each name only helps when the hub answered the listing with an error (a mirror without the
        # listing API, say); when it could not be reached at all, each request would only wait out its retries
        if path is None and not hub.offline() and not hub.is_network_error(list_error):
            for name in bundle.filenames:
                try:
                    path = hub.download_file(bundle.repo_id, name, revision=revision)
                except Exception as err:
                    tried.append(f"{name} (hub: {type(err).__name__})")
                    if hub.is_missing_entry(err):
                        continue
                    break
                chosen = name
                break
        if path is None:
            command = hub.download_command(bundle.repo_id, bundle.filenames[:1], revision)
            if hub.is_network_error(list_error):
                raise hub.HubUnavailableError(
                    f"released checkpoint {bundle.name!r}: looked for {looked_for}; tried {', '.join(tried)}. "
                    + hub.unreachable_message(bundle.repo_id, list_error, command)) from list_error
            raise ReleaseNotFoundError(
                f"released checkpoint {bundle.name!r} not found: looked for {looked_for}; listing the repo failed "
                f"({type(list_error).__name__}: {hub.first_line(list_error)}); tried {', '.join(tried)}. "
                f"Check the repo id and revision, or fill the cache with `{command}`.") from list_error
    assert chosen is not None
    commit = hub.snapshot_commit(path)
    expected = bundle.expected_sha256(chosen, commit, revision)
    if expected is not None:
        actual = _sha256(Path(path))
        if actual != expected:
            raise CheckpointError(
                f"SHA-256 mismatch for {bundle.repo_id}/{chosen} at commit {commit or revision}: the registry "
                f"expects {expected}, the file {path} has {actual}. The download is corrupt or the file was "
                f"replaced; delete it from the hub cache and retry, or load a file you trust by path.")
    return ResolvedCheckpoint(path=Path(path), repo_id=bundle.repo_id, filename=chosen, revision=revision,
                              commit=commit, sha256=expected)
