"""Audio embeddings cached on disk; a cache entry is right for its key or the cache is not used at all.

Re-running an evaluation with other candidates, templates or suites re-uses every clip already embedded by
the same model with the same preprocessing. The cache is one SQLite file (``embeddings.sqlite``, WAL mode, busy
timeout) in the cache folder, with one table ``embeddings(model, digest, dim, vector)``: float32 vectors keyed by

* the **model key** (:func:`model_identity`): ``model.identity()`` (config, weights and precision), a fingerprint
  of in-place weight updates (``load_state_dict`` after ``identity()`` was first computed), the device type and
  precision, and the preprocessing settings (:func:`preprocessing_settings`: :data:`PREPROCESSING_VERSION`, the
  package version, decoder and resampler versions, sample rate, normalisation, window and overlap seconds);
* the BLAKE2b digest of the **bytes actually decoded**: each file is read once, its bytes are hashed, and on a miss
  they are decoded from those same bytes, so a file rewritten during a run is stored under its new content, never
  under the old digest. Renamed or copied files hit; edited files miss. No digest is memoised by path or mtime.

A cache file that cannot be used (not a database, read-only, locked past the busy timeout, a full disk) produces
one warning and the run continues without the on-disk layer: embeddings are computed and the results are the same.
The file is never deleted.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

CACHE_FORMAT = "paraspeechclap-eval-cache-v2"

# Bump whenever decoding, resampling, normalisation, windowing or the way clips reach the model changes in a
# way that can change an embedding. Part of every cache key.
PREPROCESSING_VERSION = 2

DEFAULT_BUSY_TIMEOUT_S = 10.0


class CacheWarning(RuntimeWarning):
    """The on-disk embedding cache could not be used; the run continues without it."""


def default_cache_dir() -> Path:
    """``$PARASPEECHCLAP_CACHE/embeddings``, else ``$XDG_CACHE_HOME/paraspeechclap/embeddings`` (``~/.cache``)."""
    if os.environ.get("PARASPEECHCLAP_CACHE"):
        return Path(os.environ["PARASPEECHCLAP_CACHE"]).expanduser() / "embeddings"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "paraspeechclap" / "embeddings"


def bytes_digest(data: bytes) -> str:
    """BLAKE2b-128 hex digest of ``data``."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def file_digest(path: str, chunk: int = 1 << 20) -> str:
    """BLAKE2b-128 hex digest of a file's bytes (equal to :func:`bytes_digest` of its content)."""
    hasher = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            hasher.update(block)
    return hasher.hexdigest()


def _state_dict_digest(model) -> str:
    import torch

    hasher = hashlib.blake2b(digest_size=16)
    state = model.state_dict()
    for name in sorted(state):
        tensor = state[name]
        hasher.update(name.encode())
        if isinstance(tensor, torch.Tensor):
            flat = tensor.detach().to("cpu").contiguous().reshape(-1)
            hasher.update(f"{flat.dtype}{tuple(tensor.shape)}".encode())
            hasher.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
        else:
            hasher.update(repr(tensor).encode())
    return hasher.hexdigest()


def _weights_fingerprint(model) -> str:
    """Names, shapes and in-place version counters of the model's tensors (cheap: no data is read).

    ``load_state_dict`` and in-place edits bump every changed tensor's version counter. The core model's
    ``identity()`` follows them itself; including the counters here keeps any model whose ``identity()`` memoises
    its hash from getting a wrong hit after its weights changed. The counters are the same for the same loading
    code path, so repeated runs still hit.
    """
    state_dict = getattr(model, "state_dict", None)
    if not callable(state_dict):
        return "-"
    try:
        state = state_dict()
    except Exception:  # not a torch module after all
        return "-"
    hasher = hashlib.blake2b(digest_size=16)
    for name in sorted(state):
        tensor = state[name]
        try:
            version = tensor._version
        except Exception:  # inference tensors and non-tensors have no version counter
            version = None
        shape = tuple(getattr(tensor, "shape", ()))
        hasher.update(f"{name}|{shape}|{getattr(tensor, 'dtype', type(tensor).__name__)}|{version};".encode())
    return hasher.hexdigest()


def _library_versions() -> Dict[str, str]:
    versions = {}
    try:
        import soundfile

        versions["libsndfile"] = str(soundfile.__libsndfile_version__)
    except Exception:
        versions["libsndfile"] = "unknown"
    try:
        from importlib.metadata import version

        versions["soxr"] = version("soxr")
    except Exception:
        versions["soxr"] = "unknown"
    return versions


def preprocessing_settings(model) -> Dict[str, Any]:
    """Everything besides the weights that decides how a file becomes the model's input; part of the key.

    :data:`PREPROCESSING_VERSION`, the package version, the decoder and resampler versions and block size, the
    sample rate clips are decoded at, and the model's front-end settings (``config``: sample rate, normalisation,
    window and overlap seconds; and, when the model has an inference engine, the window and overlap in samples it
    actually uses).
    """
    import paraspeechclap
    from .. import audio

    config = getattr(model, "config", None)
    engine = getattr(model, "engine", None)
    effective = {}
    for name in ("window", "overlap"):
        try:
            effective[f"engine_{name}_samples"] = int(getattr(engine, name))
        except Exception:  # no engine, or a stand-in model
            effective[f"engine_{name}_samples"] = None
    return {
        "preprocessing_version": PREPROCESSING_VERSION,
        "package_version": getattr(paraspeechclap, "__version__", "unknown"),
        "decode_sample_rate": audio.TARGET_SAMPLE_RATE,
        "decode_block_seconds": getattr(audio, "BLOCK_SECONDS", None),
        "model_sample_rate": getattr(config, "sampling_rate", None),
        "do_normalize": getattr(config, "do_normalize", None),
        "window_seconds": getattr(config, "window_seconds", None),
        "window_overlap_seconds": getattr(config, "window_overlap_seconds", None),
        **effective,
        **_library_versions(),
    }


def model_identity(model) -> str:
    """The cache key of ``model``'s audio embeddings: changes whenever they could change.

    Combines ``model.identity()`` when available (the core model hashes its config, weights and precision;
    otherwise the class and a hash of the ``state_dict``), the weights' in-place version fingerprint, the device
    type and precision, :data:`CACHE_FORMAT` and :func:`preprocessing_settings`.
    """
    if callable(getattr(model, "identity", None)):
        identity = str(model.identity())
    elif callable(getattr(model, "state_dict", None)):
        identity = f"{type(model).__module__}.{type(model).__qualname__}:{_state_dict_digest(model)}"
    else:
        raise TypeError(f"cannot identify model of type {type(model).__name__}: it has neither identity() "
                        "nor state_dict()")
    device = getattr(model, "device", None)
    device_type = getattr(device, "type", device)
    precision = getattr(model, "precision", None)
    settings = ",".join(f"{k}={v}" for k, v in sorted(preprocessing_settings(model).items()))
    raw = (f"{CACHE_FORMAT}|{identity}|weights={_weights_fingerprint(model)}|device={device_type}"
           f"|precision={precision}|{settings}")
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


class EmbeddingCache:
    """Audio-embedding store for one model key: an in-memory layer always, a SQLite file when ``folder`` is set.

    Any SQLite or OS error on the file (corrupt, read-only, locked longer than ``busy_timeout`` seconds, disk full)
    warns once (:class:`CacheWarning`) and turns the on-disk layer off for the rest of the run; :attr:`disabled`
    says why. Vectors already computed stay in memory, so results do not depend on the cache.
    """

    FILENAME = "embeddings.sqlite"

    def __init__(self, folder: Optional[os.PathLike], model_key: str,
                 busy_timeout: float = DEFAULT_BUSY_TIMEOUT_S):
        self.model_key = model_key
        self.folder = Path(folder).expanduser() if folder else None
        self.busy_timeout = float(busy_timeout)
        self._memory: Dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._db: Optional[sqlite3.Connection] = None
        self.disabled: Optional[str] = None
        self.journal_mode: Optional[str] = None
        self.hits = 0
        self.misses = 0
        if self.folder is not None:
            self._open()

    @property
    def path(self) -> Optional[Path]:
        return self.folder / self.FILENAME if self.folder is not None else None

    def _open(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(self.path), timeout=self.busy_timeout, check_same_thread=False)
        except (sqlite3.Error, OSError) as err:
            self._disable(err)
            return
        self._db = db
        try:
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            self.journal_mode = str(db.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
            with db:
                db.execute("CREATE TABLE IF NOT EXISTS embeddings (model TEXT, digest TEXT, dim INTEGER, "
                           "vector BLOB, PRIMARY KEY (model, digest))")
            db.execute("SELECT 1 FROM embeddings LIMIT 1").fetchall()
        except (sqlite3.Error, OSError) as err:
            self._disable(err)

    def _disable(self, err: BaseException) -> None:
        """Stop using the file for the rest of the run; warn the first time only. The file is left as it is."""
        self.close()
        if self.disabled is None:
            self.disabled = f"{type(err).__name__}: {err}"
            warnings.warn(f"embedding cache {self.path} cannot be used ({self.disabled}); continuing without it "
                          "(embeddings are computed, results are unaffected). If the file is corrupt, delete it "
                          "or pass another --cache-dir.", CacheWarning, stacklevel=3)

    # -- vectors
    def get(self, digest: str) -> Optional[np.ndarray]:
        """The vector stored for ``digest`` (memory, then file), counting a hit or a miss."""
        vector = self._memory.get(digest)
        if vector is None and self._db is not None:
            try:
                with self._lock:
                    row = self._db.execute("SELECT dim, vector FROM embeddings WHERE model = ? AND digest = ?",
                                           (self.model_key, digest)).fetchone()
            except (sqlite3.Error, OSError) as err:
                self._disable(err)
                row = None
            if row is not None:
                found = np.frombuffer(row[1], dtype=np.float32)
                if found.size == row[0] and found.size and np.all(np.isfinite(found)):
                    vector = self._memory[digest] = found
        if vector is None:
            self.misses += 1
        else:
            self.hits += 1
        return vector

    def lookup(self, digest: str) -> Optional[np.ndarray]:
        """A vector already fetched or stored in this session (no hit counting, no file access)."""
        return self._memory.get(digest)

    def put_many(self, vectors: Dict[str, np.ndarray]) -> None:
        rows = []
        for digest, vector in vectors.items():
            vector = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
            self._memory[digest] = vector
            rows.append((self.model_key, digest, int(vector.size), vector.tobytes()))
        if self._db is not None and rows:
            try:
                with self._lock, self._db:
                    self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)", rows)
            except (sqlite3.Error, OSError) as err:
                self._disable(err)

    def close(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None

    def __enter__(self) -> "EmbeddingCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


class AudioEmbedder:
    """Embeds audio files through the model with the cache; bad files are reported, not fatal.

    Each file is read once: its bytes are hashed (the cache key) and, on a miss, decoded from those same bytes
    with :func:`paraspeechclap.audio.load_audio` (so a broken or too-short file names itself). Decoded clips are
    gathered in chunks and passed to the project's one bulk loop
    (:func:`paraspeechclap.inference.embed_items`); a failed batch is retried one clip at a time so only the bad ones
    are dropped.
    """

    def __init__(self, model, cache: EmbeddingCache, batch_size: int = 8, chunk_items: int = 256,
                 chunk_seconds: float = 1200.0, progress: bool = True):
        self.model = model
        self.cache = cache
        self.batch_size = batch_size
        self.chunk_items = max(1, chunk_items)
        self.chunk_samples = int(chunk_seconds * 16000)
        self.progress = progress
        self.n_embedded = 0  # clips run through the model in this session (cache misses that succeeded)

    def embed(self, paths: Sequence[str], desc: str = "audio") -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
        """Embed ``paths``; returns ``(vectors by path, reasons by path for the files that failed)``."""
        from tqdm.auto import tqdm

        from ..audio import TARGET_SAMPLE_RATE, load_audio

        failures: Dict[str, str] = {}
        digest_of: Dict[str, str] = {}
        pending: Dict[str, str] = {}  # digest -> the path decoded for it (a copy of the same bytes waits for it)
        chunk: List[Tuple[str, str, np.ndarray]] = []
        samples = 0
        unique = list(dict.fromkeys(paths))
        bar = tqdm(total=len(unique), desc=f"embedding {desc}", unit="clip", disable=not self.progress)
        for path in unique:
            bar.update(1)
            if not os.path.exists(path):
                failures[path] = "file not found"
                continue
            if os.path.isdir(path):
                failures[path] = "is a directory, not an audio file"
                continue
            try:
                data = _read_bytes(path)
            except OSError as err:
                failures[path] = f"unreadable ({err.strerror or err})"
                continue
            digest = digest_of[path] = bytes_digest(data)
            if digest in pending or self.cache.get(digest) is not None:
                continue
            try:
                wave = load_audio(data, TARGET_SAMPLE_RATE, name=path)  # the very bytes that were hashed
                if callable(getattr(self.model, "check_length", None)):
                    self.model.check_length(wave, path)  # too short for the encoder: report, do not embed
            except Exception as err:  # AudioError and anything a decoder may raise
                failures[path] = str(getattr(err, "problem", None) or err)
                pending[digest] = path
                continue
            pending[digest] = path
            chunk.append((path, digest, wave))
            samples += wave.size
            if len(chunk) >= self.chunk_items or samples >= self.chunk_samples:
                self._flush(chunk, failures)
                chunk, samples = [], 0
        if chunk:
            self._flush(chunk, failures)
        bar.close()

        vectors: Dict[str, np.ndarray] = {}
        for path, digest in digest_of.items():
            vector = self.cache.lookup(digest)
            if vector is not None:
                vectors[path] = vector
            elif path not in failures:  # the same bytes failed under another path
                twin = pending.get(digest)
                failures[path] = failures.get(twin, "could not be embedded")
        return vectors, failures

    def _flush(self, chunk: List[Tuple[str, str, np.ndarray]], failures: Dict[str, str]) -> None:
        """Embed decoded clips through the project's one bulk loop (a failed batch is retried one clip at a time, so
        only the bad clips are dropped) and store the good ones."""
        from ..audio import TARGET_SAMPLE_RATE
        from ..inference import embed_items

        done: Dict[str, np.ndarray] = {}
        items = [(wave, TARGET_SAMPLE_RATE) for _, _, wave in chunk]
        for result in embed_items(self.model, items, batch_size=self.batch_size):
            path, digest, _ = chunk[result.index]
            if result.ok:
                done[digest] = result.embedding
            else:
                failures[path] = f"embedding failed ({result.error})"
        if done:
            self.cache.put_many(done)
            self.n_embedded += len(done)
