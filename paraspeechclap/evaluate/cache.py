"""Audio embeddings cached on disk, keyed by model identity and audio content.

Re-running an evaluation with other candidates, templates or suites re-uses every clip already embedded by
the same model. The cache is one SQLite file (``embeddings.sqlite``) in the cache folder:

* ``embeddings(model, digest, dim, vector)``: float32 vectors keyed by the model key and the BLAKE2b digest of
  the audio file's bytes (so renamed or copied files hit, edited files miss);
* ``files(path, size, mtime_ns, digest)``: a memo of file digests, so unchanged files are not re-hashed.

The model key hashes ``model.identity()`` when the model provides it, otherwise the model's class and its
``state_dict`` (names, dtypes, shapes and bytes), together with the device type and precision it runs at.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

CACHE_FORMAT = "paraspeechclap-eval-cache-v1"


def default_cache_dir() -> Path:
    """``$PARASPEECHCLAP_CACHE/embeddings``, else ``$XDG_CACHE_HOME/paraspeechclap/embeddings`` (``~/.cache``)."""
    if os.environ.get("PARASPEECHCLAP_CACHE"):
        return Path(os.environ["PARASPEECHCLAP_CACHE"]).expanduser() / "embeddings"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "paraspeechclap" / "embeddings"


def file_digest(path: str, chunk: int = 1 << 20) -> str:
    """BLAKE2b-128 hex digest of a file's bytes."""
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


def model_identity(model) -> str:
    """A string that changes whenever the model's audio embeddings could change.

    Uses ``model.identity()`` when available (the core model hashes its config and weights); otherwise hashes
    the class and ``state_dict``. Device type and precision are part of the key (GPU bf16 and CPU fp32
    embeddings differ slightly).
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
    raw = f"{CACHE_FORMAT}|{identity}|device={device_type}|precision={precision}"
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


class EmbeddingCache:
    """Audio-embedding store for one model key; an in-memory layer always, a SQLite file when ``folder`` is set."""

    def __init__(self, folder: Optional[os.PathLike], model_key: str):
        self.model_key = model_key
        self.folder = Path(folder).expanduser() if folder else None
        self._memory: Dict[str, np.ndarray] = {}
        self._digests: Dict[tuple, str] = {}
        self._lock = threading.Lock()
        self._db: Optional[sqlite3.Connection] = None
        self.hits = 0
        self.misses = 0
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.folder / "embeddings.sqlite"), timeout=60, check_same_thread=False)
            with self._db:
                self._db.execute("CREATE TABLE IF NOT EXISTS embeddings (model TEXT, digest TEXT, dim INTEGER, "
                                 "vector BLOB, PRIMARY KEY (model, digest))")
                self._db.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, "
                                 "mtime_ns INTEGER, digest TEXT)")

    # -- file digests
    def digest(self, path: str) -> str:
        """Content digest of ``path`` (memoised by path, size and modification time). Raises OSError."""
        stat = os.stat(path)
        resolved = str(Path(path).resolve())
        memo_key = (resolved, stat.st_size, stat.st_mtime_ns)
        if memo_key in self._digests:
            return self._digests[memo_key]
        if self._db is not None:
            row = self._db.execute("SELECT size, mtime_ns, digest FROM files WHERE path = ?", (resolved,)).fetchone()
            if row is not None and row[0] == stat.st_size and row[1] == stat.st_mtime_ns:
                self._digests[memo_key] = row[2]
                return row[2]
        digest = self._digests[memo_key] = file_digest(path)
        if self._db is not None:
            with self._lock, self._db:
                self._db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                                 (resolved, stat.st_size, stat.st_mtime_ns, digest))
        return digest

    # -- vectors
    def get_many(self, digests: Iterable[str]) -> Dict[str, np.ndarray]:
        """The cached vectors among ``digests`` (counts hits and misses)."""
        wanted = list(dict.fromkeys(digests))
        found = {d: self._memory[d] for d in wanted if d in self._memory}
        rest = [d for d in wanted if d not in found]
        if self._db is not None and rest:
            for start in range(0, len(rest), 500):
                part = rest[start:start + 500]
                marks = ",".join("?" * len(part))
                query = f"SELECT digest, dim, vector FROM embeddings WHERE model = ? AND digest IN ({marks})"
                for digest, dim, blob in self._db.execute(query, [self.model_key, *part]):
                    vector = np.frombuffer(blob, dtype=np.float32)
                    if vector.size == dim:
                        found[digest] = self._memory[digest] = vector
        self.hits += len(found)
        self.misses += len(wanted) - len(found)
        return found

    def lookup(self, digest: str) -> Optional[np.ndarray]:
        """A vector already fetched or stored in this session (no hit counting)."""
        return self._memory.get(digest)

    def put_many(self, vectors: Dict[str, np.ndarray]) -> None:
        rows = []
        for digest, vector in vectors.items():
            vector = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
            self._memory[digest] = vector
            rows.append((self.model_key, digest, int(vector.size), vector.tobytes()))
        if self._db is not None and rows:
            with self._lock, self._db:
                self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)", rows)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> "EmbeddingCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AudioEmbedder:
    """Embeds audio files through ``model.embed_audio`` with the cache; bad files are reported, not fatal.

    Files not in the cache are decoded with :func:`paraspeechclap.audio.load_audio` one by one (so a broken
    or too-short file names itself), sorted by size (a proxy for duration, longest first) and passed in chunks
    to ``model.embed_waveforms(waves, batch_size=...)`` (or, for models with only the core contract,
    ``model.embed_audio([(wave, 16000), ...], batch_size=...)``), which batch them by length. If a chunk
    fails, its items are retried one at a time so only the bad ones are dropped.
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
        failures: Dict[str, str] = {}
        digest_of: Dict[str, str] = {}
        for path in dict.fromkeys(paths):
            if not os.path.exists(path):
                failures[path] = "file not found"
                continue
            if os.path.isdir(path):
                failures[path] = "is a directory, not an audio file"
                continue
            try:
                digest_of[path] = self.cache.digest(path)
            except OSError as err:
                failures[path] = f"unreadable ({err.strerror or err})"
        cached = self.cache.get_many(digest_of.values())
        todo: Dict[str, str] = {}
        for path, digest in digest_of.items():
            if digest not in cached and digest not in todo.values():
                todo[path] = digest
        if todo:
            self._embed_missing(todo, failures, desc)
        vectors: Dict[str, np.ndarray] = {}
        for path, digest in digest_of.items():
            vector = self.cache.lookup(digest)
            if vector is not None:
                vectors[path] = vector
            elif path not in failures:  # the same content failed under another path
                twin = next((p for p, d in todo.items() if d == digest and p in failures), None)
                failures[path] = failures[twin] if twin else "could not be embedded"
        return vectors, failures

    def _embed_missing(self, todo: Dict[str, str], failures: Dict[str, str], desc: str) -> None:
        from tqdm.auto import tqdm

        from ..audio import TARGET_SAMPLE_RATE, load_audio

        order = sorted(todo, key=lambda p: os.path.getsize(p), reverse=True)
        bar = tqdm(total=len(order), desc=f"embedding {desc}", unit="clip", disable=not self.progress)
        chunk: List[Tuple[str, np.ndarray]] = []
        samples = 0
        for path in order:
            try:
                wave = load_audio(path, TARGET_SAMPLE_RATE)
                if callable(getattr(self.model, "check_length", None)):
                    self.model.check_length(wave, path)  # too short for the encoder: report, do not embed
            except Exception as err:  # AudioError and anything a decoder may raise
                failures[path] = str(getattr(err, "problem", None) or err)
                bar.update(1)
                continue
            chunk.append((path, wave))
            samples += wave.size
            if len(chunk) >= self.chunk_items or samples >= self.chunk_samples:
                self._flush(chunk, todo, failures, bar)
                chunk, samples = [], 0
        if chunk:
            self._flush(chunk, todo, failures, bar)
        bar.close()

    def _flush(self, chunk: List[Tuple[str, np.ndarray]], todo: Dict[str, str], failures: Dict[str, str], bar) -> None:
        try:
            embeddings = self._call([wave for _, wave in chunk])
            self.cache.put_many({todo[path]: embeddings[i] for i, (path, _) in enumerate(chunk)})
            self.n_embedded += len(chunk)
        except Exception as chunk_error:
            for path, wave in chunk:  # isolate the bad item(s)
                try:
                    embedding = self._call([wave]) if len(chunk) > 1 else None
                    if embedding is None:
                        raise chunk_error
                    self.cache.put_many({todo[path]: embedding[0]})
                    self.n_embedded += 1
                except Exception as err:
                    problem = getattr(err, "problem", None) or err
                    failures[path] = f"embedding failed ({type(err).__name__}: {problem})"
        bar.update(len(chunk))

    def _call(self, waves: List[np.ndarray]) -> np.ndarray:
        from ..audio import TARGET_SAMPLE_RATE

        if callable(getattr(self.model, "embed_waveforms", None)):  # decoded already: skip a second decode
            out = self.model.embed_waveforms(waves, batch_size=self.batch_size)
        else:
            out = self.model.embed_audio([(w, TARGET_SAMPLE_RATE) for w in waves], batch_size=self.batch_size)
        out = np.asarray(out, dtype=np.float32)
        if out.ndim != 2 or out.shape[0] != len(waves):
            raise RuntimeError(f"the model returned embeddings of shape {out.shape} for {len(waves)} clips")
        if not np.all(np.isfinite(out)):
            raise RuntimeError("the model returned NaN or Inf embeddings")
        return out
