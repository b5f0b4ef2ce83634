"""ANN index over an annotation folder, and search by text, by example clip, with SQL filters (DuckDB).

Layout: ``INDEX/`` (default ``ANNOTATIONS/_index``) holds ``index.json`` (backend, dim, the annotation folder, the
model identity, and every shard it holds with its row range) and the backend's file (``vectors.usearch`` or
``vectors.faiss``). Keys are the ``row`` column of the annotation shards, so a hit is a Parquet row. The folder is
replaced as a whole (:func:`paraspeechclap.fileio.atomic_dir`), so an interrupted build leaves the old index.
``build`` on an existing index adds only the shards completed since (incremental; rows are never removed).

Filters (``where``) run in DuckDB over the indexed shards, after :func:`.filters.validate_where` accepted them (one
expression over the annotation columns, pure functions only), on a connection that may read only those shards and
cannot change its settings. When few rows pass (``<= exact_limit``), their embeddings are read and searched
exactly; otherwise the ANN search over-fetches and keeps rows that pass, widening until ``top`` are found or the
whole index was scanned. Queries are embedded only by the model whose embeddings the index holds
(:meth:`Index.check_model`).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..fileio import atomic_dir, check_file
from .filters import validate_where

INDEX_META = "index.json"
FORMAT = "paraspeechclap-index"
BACKENDS = ("usearch", "faiss")
DEFAULT_BACKEND = "faiss"  # chosen by measurement: see README "Annotating and searching a corpus"
DISPLAY = ["row", "id", "audio", "duration", "tags", "caption"]


class IndexError_(RuntimeError):
    """An index or annotation folder that cannot be used."""


class ModelMismatch(IndexError_):
    """A query model other than the one whose embeddings the index holds."""


def model_mismatch(meta: dict, provenance: dict, dim: int) -> str | None:
    """Why an index (its ``meta``) cannot be searched with a model (its provenance and embedding width), or None."""
    held = meta.get("model") or {}
    held_dim = meta.get("dim")
    same_identity = held.get("identity") == provenance.get("identity")
    same_dim = held_dim is None or int(held_dim) == int(dim)
    if same_identity and same_dim:
        return None
    message = (f"the index holds embeddings of model {held.get('model')!r} (identity {held.get('identity')}, "
               f"dimension {held_dim}, precision {held.get('precision')}); the model given is "
               f"{provenance.get('model')!r} (identity {provenance.get('identity')}, dimension {dim}, precision "
               f"{provenance.get('precision')})")
    if same_dim and held.get("precision") and held.get("precision") != provenance.get("precision"):
        message += f"; the identity includes the precision: try --precision {held.get('precision')}"
    return message


# ---------------------------------------------------------------------------------------------- backends
# usearch's first vectors go into the graph one at a time: concurrent inserts into a near-empty HNSW graph (usearch
# 2.26.6, 2 threads) left true neighbours unreachable: a 99-vector index missed one of the exact top 5 in 9 of 15
# builds, none in 15 built in one thread; a large corpus still builds on all threads after the first 1,024
SERIAL_START = 1024


class _USearch:
    file = "vectors.usearch"

    def __init__(self, dim: int, connectivity: int = 16, expansion_add: int = 128, expansion_search: int = 128,
                 dtype: str = "f32"):
        from usearch.index import Index

        self.index = Index(ndim=dim, metric="ip", dtype=dtype, connectivity=connectivity, expansion_add=expansion_add,
                           expansion_search=expansion_search)

    @classmethod
    def load(cls, path: Path, meta: dict) -> "_USearch":
        self = cls(meta["dim"], **meta.get("params", {}))
        self.index.load(str(path))
        self.index.expansion_search = meta.get("params", {}).get("expansion_search", 128)
        return self

    def add(self, keys: np.ndarray, vectors: np.ndarray, threads: int = 0) -> None:
        """Add vectors; the graph's first ``SERIAL_START`` go in one thread, the rest with ``threads`` (0: all)."""
        keys = keys.astype(np.uint64)
        serial = min(len(keys), max(0, SERIAL_START - len(self.index)))
        if serial:
            self.index.add(keys[:serial], vectors[:serial], threads=1)
        if serial < len(keys):
            self.index.add(keys[serial:], vectors[serial:], threads=threads)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self.index))
        matches = self.index.search(queries, k)
        keys = np.asarray(matches.keys).reshape(len(queries), -1).astype(np.int64)
        dist = np.asarray(matches.distances).reshape(len(queries), -1)
        counts = np.asarray(getattr(matches, "counts", [keys.shape[1]] * len(queries))).reshape(-1)
        for i, c in enumerate(counts):
            keys[i, int(c):] = -1
        return keys, 1.0 - dist  # usearch 'ip' distance is 1 - inner product

    def save(self, path: Path) -> None:
        self.index.save(str(path))

    def __len__(self) -> int:
        return len(self.index)


class _Faiss:
    file = "vectors.faiss"

    def __init__(self, dim: int, connectivity: int = 32, expansion_add: int = 128, expansion_search: int = 128):
        import faiss

        self.faiss = faiss
        hnsw = faiss.IndexHNSWFlat(dim, connectivity, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = expansion_add
        hnsw.hnsw.efSearch = expansion_search
        self.index = faiss.IndexIDMap2(hnsw)
        self.expansion_search = expansion_search

    @classmethod
    def load(cls, path: Path, meta: dict) -> "_Faiss":
        import faiss

        self = cls.__new__(cls)
        self.faiss = faiss
        self.index = faiss.read_index(str(path))
        self.expansion_search = meta.get("params", {}).get("expansion_search", 128)
        faiss.downcast_index(self.index.index).hnsw.efSearch = self.expansion_search
        return self

    def add(self, keys: np.ndarray, vectors: np.ndarray, threads: int = 0) -> None:
        if len(keys):
            self.index.add_with_ids(np.ascontiguousarray(vectors, np.float32), keys.astype(np.int64))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.index.ntotal)
        hnsw = self.faiss.downcast_index(self.index.index).hnsw
        hnsw.efSearch = max(self.expansion_search, k)
        scores, keys = self.index.search(np.ascontiguousarray(queries, np.float32), k)
        return keys.astype(np.int64), scores

    def save(self, path: Path) -> None:
        self.faiss.write_index(self.index, str(path))

    def __len__(self) -> int:
        return int(self.index.ntotal)


def _backend_class(name: str):
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    return _USearch if name == "usearch" else _Faiss


# ---------------------------------------------------------------------------------------------- helpers
def _annotation_manifest(folder: Path) -> dict:
    path = folder / "_manifest.json"
    if not path.is_file():
        raise IndexError_(f"{folder} is not an annotation folder (no _manifest.json)")
    return json.loads(path.read_text(encoding="utf-8"))


def _completed_shards(folder: Path, manifest: dict) -> dict[str, dict]:
    """The shards the manifest records as finished (their files are checked by :func:`_verified`)."""
    return {name: info for name, info in sorted(manifest.get("shards", {}).items())
            if isinstance(info, dict) and info.get("completed_at")}


def _verified(folder: Path, name: str, info: dict) -> bool:
    """Whether shard ``name`` matches its manifest record (False: a record without a checksum, checked by size);
    raises naming the shard when it does not."""
    problem = check_file(folder / name, info)
    if problem:
        raise IndexError_(f"shard {folder / name} does not match its record in _manifest.json ({problem}); "
                          f"rerun the same `paraspeechclap annotate` command to recompute it, then build again")
    return bool(info.get("sha256"))


def _read_vectors(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, embeddings float32)`` of the ok rows of one shard."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["row", "status", "embedding"])
    table = table.filter(pc.equal(table.column("status"), "ok"))
    rows = table.column("row").to_numpy()
    emb = table.column("embedding").combine_chunks()
    dim = emb.type.list_size
    values = emb.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, dim)
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    return rows, values / np.maximum(norms, 1e-12)  # float16 storage: renormalise


def _audio_is_struct(files: Sequence[str]) -> bool:
    import pyarrow.parquet as pq
    import pyarrow.types as pt

    return bool(files) and pt.is_struct(pq.read_schema(files[0]).field("audio").type)


def _sql_list(paths: Sequence[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def resolve_index_folder(path: str | Path) -> Path:
    path = Path(path)
    if (path / INDEX_META).is_file():
        return path
    if (path / "_index" / INDEX_META).is_file():
        return path / "_index"
    raise IndexError_(f"no index at {path} (build one with `paraspeechclap index build ANNOTATIONS`)")


# ---------------------------------------------------------------------------------------------- the index
class Index:
    """An ANN index over the ``embedding`` column of an annotation folder; keys are Parquet ``row`` values."""

    def __init__(self, folder: Path, meta: dict, backend: Any):
        self.folder, self.meta, self.backend = Path(folder), meta, backend
        self._model = None
        self._con = None

    # ---------------------------------------------------------------- build / open
    @classmethod
    def build(cls, annotations: str | Path, out: str | Path | None = None, backend: str | None = None,
              connectivity: int | None = None, expansion_add: int = 128, expansion_search: int = 128,
              threads: int = 0, quiet: bool = True) -> "Index":
        """Build the index of ``annotations`` at ``out`` (default ``annotations/_index``), or extend the existing
        one with the shards completed since it was built."""
        annotations = Path(annotations).resolve()
        out = Path(out) if out is not None else annotations / "_index"
        manifest = _annotation_manifest(annotations)
        shards = _completed_shards(annotations, manifest)
        existing = None
        if (out / INDEX_META).is_file():
            existing = cls.open(out)
            if existing.meta["model"].get("identity") != manifest["model"].get("identity"):
                raise IndexError_(f"{out} indexes embeddings of another model; build into a new folder")
            if backend is not None and backend != existing.meta["backend"]:
                raise IndexError_(f"{out} is a {existing.meta['backend']} index; build into a new folder for {backend}")
        elif out.exists() and any(out.iterdir()):
            raise IndexError_(f"{out} exists and is not an index; refusing to replace it")
        if existing is not None:
            index, meta = existing.backend, existing.meta
        else:
            backend = backend or DEFAULT_BACKEND
            dim = int(manifest["embedding"]["dim"])
            params = {"connectivity": connectivity or (16 if backend == "usearch" else 32),
                      "expansion_add": expansion_add, "expansion_search": expansion_search}
            index = _backend_class(backend)(dim, **params)
            meta = {"format": FORMAT, "version": 1, "backend": backend, "dim": dim, "metric": "cosine",
                    "params": params, "annotations": str(annotations), "model": manifest["model"],
                    "attributes": manifest.get("attributes"), "shards": {}, "count": 0}
        new = [name for name in shards if name not in meta["shards"]]
        unverified = [name for name in new if not _verified(annotations, name, shards[name])]  # all, before any work
        if unverified and not quiet:
            print(f"[index] {len(unverified)} shards were recorded before checksums existed: checked by size only",
                  file=sys.stderr, flush=True)
        started = time.monotonic()
        for name in new:
            rows, vectors = _read_vectors(annotations / name)
            index.add(rows, vectors, threads=threads)
            meta["shards"][name] = {**{k: shards[name][k] for k in ("split", "num_rows", "rows") if k in shards[name]},
                                    "vectors": int(len(rows)), "completed_at": shards[name]["completed_at"]}
            if not quiet:
                print(f"[index] {name}: {len(rows)} vectors ({len(index)} in all)", file=sys.stderr, flush=True)
        meta["count"] = len(index)
        meta["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        meta["last_build_seconds"] = time.monotonic() - started
        if new or existing is None:
            with atomic_dir(out, durable=True, replace=existing is not None) as tmp:
                index.save(Path(tmp) / _backend_class(meta["backend"]).file)
                (Path(tmp) / INDEX_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return cls(out, meta, index)

    @classmethod
    def open(cls, path: str | Path) -> "Index":
        folder = resolve_index_folder(path)
        meta = json.loads((folder / INDEX_META).read_text(encoding="utf-8"))
        klass = _backend_class(meta["backend"])
        backend = klass.load(folder / klass.file, meta)
        if len(backend) != meta["count"]:
            raise IndexError_(f"{folder}: {len(backend)} vectors but index.json says {meta['count']}")
        return cls(folder, meta, backend)

    def __len__(self) -> int:
        return len(self.backend)

    @property
    def annotations(self) -> Path:
        return Path(self.meta["annotations"])

    def shard_files(self) -> list[str]:
        return [str(self.annotations / name) for name in sorted(self.meta["shards"])]

    # ---------------------------------------------------------------- model and queries
    @property
    def model(self):
        """The model recorded in the index (loaded on first use) that embeds the queries."""
        if self._model is None:
            self._model = self.load_model()
        return self._model

    def load_model(self, source: str | None = None, device: str | None = None):
        """``source`` (default: the model recorded in the index) at the recorded precision; :meth:`check_model`
        then decides whether it may embed queries for this index."""
        from ..modelspec import ModelSpec

        prov = self.meta["model"]
        return ModelSpec(source or prov.get("model", "mini"), device=device,
                         precision=prov.get("precision", "auto")).load()

    def check_model(self, model: Any) -> None:
        """Refuse (:class:`ModelMismatch`, naming both identities and dimensions) a model other than the one whose
        embeddings the index holds: its vectors would be compared with another model's."""
        problem = model_mismatch(self.meta, model.provenance(), int(model.config.embedding_dim))
        if problem is not None:
            raise ModelMismatch(f"{self.folder}: {problem}. Search with the model that annotated the folder, or "
                                f"annotate and index it again with this one")

    def query_vector(self, text: str | None = None, like: str | Path | Any = None, model: Any = None) -> np.ndarray:
        """The query embedding (the text's, the example clip's, or the normalised sum of both) by the index's own
        model (:meth:`check_model`)."""
        model = model or self.model
        self.check_model(model)
        parts = []
        if text:
            parts.append(np.asarray(model.embed_text([text]), np.float32)[0])
        if like is not None:
            parts.append(np.asarray(model.embed_audio([like]), np.float32)[0])
        if not parts:
            raise ValueError("give a text, an example clip (like=...), or both")
        q = np.sum(parts, axis=0)
        return (q / np.linalg.norm(q)).astype(np.float32)

    # ---------------------------------------------------------------- filters
    @property
    def sql(self):
        if self._con is None:
            import duckdb

            files = self.shard_files()
            con = duckdb.connect()
            con.execute("SET threads TO 2").fetchall()
            try:  # defence in depth: this connection reads the shards and nothing else, and stays so
                con.execute(f"SET allowed_paths = {_sql_list(files)}").fetchall()
                con.execute("SET enable_external_access = false").fetchall()
                con.execute("SET lock_configuration = true").fetchall()
            except duckdb.Error:  # a DuckDB without allowed_paths (< 1.1): the filter rule alone guards
                pass
            # format 2 stores audio as a datasets.Audio struct; filters and results see its path, as in format 1
            flat = " REPLACE (struct_extract(\"audio\", 'path') AS \"audio\")" if _audio_is_struct(files) else ""
            con.execute(f"CREATE VIEW clips AS SELECT *{flat} FROM read_parquet({_sql_list(files)})").fetchall()
            self._con = con
        return self._con

    @property
    def columns(self) -> list[str]:
        """The annotation columns a filter may use."""
        return [r[0] for r in self.sql.execute("DESCRIBE clips").fetchall()]

    def filter_rows(self, where: str) -> np.ndarray:
        """Rows (``row`` values) of ok clips matching the filter ``where``: one expression over the annotation
        columns (:func:`.filters.validate_where`; :class:`.filters.FilterError` names what it refuses)."""
        validate_where(where, self.columns)
        result = self.sql.execute(f"SELECT row FROM clips WHERE status = 'ok' AND ({where}\n)").fetchall()
        return np.asarray([r[0] for r in result], np.int64)

    # ---------------------------------------------------------------- search
    def search_vector(self, query: np.ndarray, top: int = 20, where: str | None = None,
                      exact_limit: int = 20000) -> list[tuple[int, float]]:
        """``(row, cosine)`` of the ``top`` nearest indexed clips (passing ``where`` when given), best first."""
        query = np.asarray(query, np.float32).reshape(1, -1)
        if len(self) == 0 or top < 1:
            return []
        if where:
            allowed = self.filter_rows(where)
            if len(allowed) == 0:
                return []
            if len(allowed) <= exact_limit:
                return self._exact(query[0], allowed, top)
            allowed_set = np.sort(allowed)
            k = min(len(self), max(top * 4, int(top * len(self) / len(allowed) * 2)))
            while True:
                keys, scores = self.backend.search(query, k)
                keys, scores = keys[0], scores[0]
                keep = (keys >= 0) & np.isin(keys, allowed_set, assume_unique=False)
                if keep.sum() >= top or k >= len(self):
                    return [(int(a), float(b)) for a, b in zip(keys[keep][:top], scores[keep][:top])]
                k = min(len(self), k * 4)
        keys, scores = self.backend.search(query, top)
        return [(int(a), float(b)) for a, b in zip(keys[0], scores[0]) if a >= 0]

    def _exact(self, query: np.ndarray, allowed: np.ndarray, top: int) -> list[tuple[int, float]]:
        import pyarrow as pa

        self.sql.register("allowed_rows", pa.table({"row": pa.array(allowed, pa.int64())}))
        try:
            rel = self.sql.sql("SELECT c.row, c.embedding FROM clips c JOIN allowed_rows a USING (row)")
            table = rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()
        finally:
            self.sql.unregister("allowed_rows")
        rows = table.column("row").to_numpy()
        emb = table.column("embedding").combine_chunks()
        vectors = emb.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(rows), -1)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        scores = vectors @ query
        order = np.argsort(-scores, kind="stable")[:top]
        return [(int(rows[i]), float(scores[i])) for i in order]

    def rows(self, rows: Sequence[int], columns: Sequence[str] | None = None) -> dict[int, dict]:
        """Parquet rows by ``row`` value: the display columns plus every attribute's top class."""
        import pyarrow as pa

        if not len(rows):
            return {}
        attrs = list((self.meta.get("attributes") or {}).get("attributes", {}))
        cols = list(columns) if columns else DISPLAY + attrs
        self.sql.register("wanted_rows", pa.table({"row": pa.array(list(rows), pa.int64())}))
        try:
            select = ", ".join(f'c."{c}"' for c in cols)
            result = self.sql.execute(f"SELECT {select} FROM clips c JOIN wanted_rows w USING (row)").fetchall()
        finally:
            self.sql.unregister("wanted_rows")
        return {int(r[cols.index("row")]): dict(zip(cols, r)) for r in result}

    def search(self, text: str | None = None, like: Any = None, where: str | None = None, top: int = 20,
               model: Any = None, exact_limit: int = 20000) -> list[dict]:
        """Clips nearest to the text and/or example clip: dicts of ``score`` and the clip's Parquet columns."""
        hits = self.search_vector(self.query_vector(text, like, model), top=top, where=where, exact_limit=exact_limit)
        info = self.rows([r for r, _ in hits])
        return [{"rank": i + 1, "score": s, **info.get(r, {"row": r})} for i, (r, s) in enumerate(hits)]

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


def index_size_bytes(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file())


__all__ = ["Index", "IndexError_", "ModelMismatch", "model_mismatch", "BACKENDS", "DEFAULT_BACKEND", "index_size_bytes"]
