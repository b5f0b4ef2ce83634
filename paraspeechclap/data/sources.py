"""Where rows come from: Hugging Face datasets (hub name, ``save_to_disk`` folder, streaming) or local
JSONL / CSV / Parquet manifests, and how several sources combine (interleaving or concatenation).

Map-style sources are wrapped in a small :class:`Table` (``len``, ``table[i] -> dict``,
``table.column(name) -> list`` read in bulk), so that vocabularies and tag frequencies never decode
rows one at a time. Streaming sources stay Hugging Face ``IterableDataset`` objects.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .rows import MANIFEST_SUFFIXES, _is_saved_dataset, _manifest_kind, read_rows

logger = logging.getLogger("paraspeechclap.data")

AUDIO_ROOT_KEY = "_audio_root"


class Table:
    """Indexed rows with bulk column access (the interface the datasets and samplers use)."""

    column_names: list[str]
    audio_root: str | None = None  # added to every row (as AUDIO_ROOT_KEY) unless the row names its own

    def __len__(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def _stored_row(self, i: int) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    def __getitem__(self, i: int) -> dict:
        row = dict(self._stored_row(int(i)))
        if self.audio_root is not None:
            row.setdefault(AUDIO_ROOT_KEY, self.audio_root)
        return row

    def column(self, name: str) -> list:
        return [self[i].get(name) for i in range(len(self))]


class ListTable(Table):
    def __init__(self, rows: list[dict], name: str = "rows", audio_root: str | None = None):
        self.rows = rows
        self.name = name
        self.audio_root = audio_root
        cols: dict[str, None] = {}
        for r in rows[:1000]:
            cols.update(dict.fromkeys(r))
        self.column_names = list(cols)

    def __len__(self) -> int:
        return len(self.rows)

    def _stored_row(self, i: int) -> dict:
        return self.rows[i]

    def column(self, name: str) -> list:
        return [r.get(name) for r in self.rows]


class HFTable(Table):
    """A map-style ``datasets.Dataset``."""

    def __init__(self, ds, name: str = "dataset", audio_root: str | None = None):
        self.ds = ds
        self.name = name
        self.audio_root = audio_root
        self.column_names = list(ds.column_names)

    def __len__(self) -> int:
        return len(self.ds)

    def _stored_row(self, i: int) -> dict:
        return self.ds[i]

    def column(self, name: str) -> list:
        if name not in self.column_names:
            return [None] * len(self)
        return list(self.ds[name])


class MixedTable(Table):
    """Rows of several tables addressed through an index map ``[(table, row), ...]``."""

    def __init__(self, tables: Sequence[Table], index: np.ndarray, name: str = "mixed"):
        self.tables = list(tables)
        self.index = np.asarray(index, dtype=np.int64).reshape(-1, 2)
        self.name = name
        cols: dict[str, None] = {}
        for t in self.tables:
            cols.update(dict.fromkeys(t.column_names))
        self.column_names = list(cols)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        t, r = self.index[int(i)]
        return self.tables[t][int(r)]

    def column(self, name: str) -> list:
        cols = [t.column(name) for t in self.tables]
        return [cols[t][r] for t, r in self.index.tolist()]


# --------------------------------------------------------------------------------------------- reading
def read_manifest(path: str | os.PathLike) -> list[dict]:
    """Rows of a JSONL (or JSON list), CSV/TSV or Parquet manifest (optionally gzipped), read by
    :func:`~.rows.read_rows`. For training a bad row is fatal: :class:`ValueError` naming ``FILE:LINE``."""
    p = Path(path)
    if _manifest_kind(p) is None:
        raise ValueError(f"unknown manifest format {p.suffix.lower()!r} for {p} (use {', '.join(MANIFEST_SUFFIXES)})")
    if not p.is_file():
        raise FileNotFoundError(f"manifest not found: {p}")
    rows = []
    for row in read_rows(p, require_audio=False):
        if not row.ok:
            raise ValueError(f"{row.ref}: {row.error}")
        rows.append(row.fields)
    return rows


def _parse_spec(spec: Any) -> dict:
    if isinstance(spec, (str, os.PathLike)):
        return {"path": str(spec)}
    if isinstance(spec, dict):
        if "path" not in spec:
            raise ValueError(f"a data source needs a 'path': {spec!r}")
        return dict(spec)
    raise TypeError(f"a data source is a string or a mapping, got {type(spec).__name__}")


def load_source(spec: Any, *, split: str = "train", streaming: bool = False, audio_root: str | None = None):
    """One source -> :class:`Table` (map-style) or ``datasets.IterableDataset`` (``streaming``).

    ``spec``: a manifest path (.jsonl/.json/.csv/.tsv/.parquet), a ``save_to_disk`` folder, a hub
    dataset name, or a mapping ``{path, split?, streaming?, audio_root?, name?}``.
    """
    s = _parse_spec(spec)
    path = s["path"]
    split = s.get("split", split)
    streaming = bool(s.get("streaming", streaming))
    root = s.get("audio_root", audio_root)
    p = Path(os.path.expanduser(path))
    if _manifest_kind(p) is not None:
        if not p.exists():
            raise FileNotFoundError(f"manifest not found: {p}")
        if streaming:
            logger.info("manifest %s is read into memory (streaming applies to HF datasets only)", p)
        return ListTable(read_manifest(p), name=str(p), audio_root=root)
    if p.is_dir():
        if not _is_saved_dataset(p):  # state.json or dataset_dict.json
            raise ValueError(f"{p} is a folder but not a datasets.save_to_disk folder")
        import datasets

        ds = datasets.load_from_disk(str(p))
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise KeyError(f"split {split!r} not in {p} (has {list(ds)})")
            ds = ds[split]
        if streaming:
            return ds.to_iterable_dataset()
        return HFTable(ds, name=str(p), audio_root=root)
    if p.exists():
        raise ValueError(f"{p}: not a manifest ({', '.join(MANIFEST_SUFFIXES)}) nor a dataset folder")
    import datasets

    kwargs = {}
    if s.get("name"):
        kwargs["name"] = s["name"]
    ds = datasets.load_dataset(path, split=split, streaming=streaming, **kwargs)
    if streaming:
        return ds
    return HFTable(ds, name=path, audio_root=root)


# --------------------------------------------------------------------------------------------- mixing
def interleave_indices(lengths: Sequence[int], probabilities: Sequence[float] | None = None,
                       stopping_strategy: str = "all_exhausted", seed: int = 0) -> np.ndarray:
    """Index map ``[(source, row)]`` of an interleave.

    Without probabilities: the reference's (HF ``interleave_datasets``) deterministic round robin:
    position k takes row ``k mod len_i`` of every source i, for k < max(len) (``all_exhausted``,
    smaller sources cycled) or k < min(len) (``first_exhausted``).
    With probabilities: a source is drawn for every position from a NumPy generator seeded with
    ``seed``; its rows are taken in order. ``first_exhausted`` stops when a source runs out;
    ``all_exhausted`` restarts exhausted sources and stops once every source (of non-zero
    probability) has been seen through at least once.
    """
    lengths = [int(n) for n in lengths]
    if stopping_strategy not in ("all_exhausted", "first_exhausted"):
        raise ValueError(f"stopping_strategy must be all_exhausted or first_exhausted, not {stopping_strategy!r}")
    if any(n == 0 for n in lengths):
        raise ValueError(f"cannot interleave an empty source (lengths {lengths})")
    k = len(lengths)
    if probabilities is None:
        n = max(lengths) if stopping_strategy == "all_exhausted" else min(lengths)
        pos = np.arange(n)
        out = np.empty((n * k, 2), dtype=np.int64)
        for i, L in enumerate(lengths):
            out[i::k, 0] = i
            out[i::k, 1] = pos % L
        return out
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape != (k,) or (p < 0).any() or p.sum() <= 0:
        raise ValueError(f"probabilities {list(probabilities)} do not fit {k} sources")
    p = p / p.sum()
    rng = np.random.default_rng(seed)
    ptr = [0] * k
    seen_all = [p[i] == 0 for i in range(k)]
    out: list[tuple[int, int]] = []
    while True:
        for i in rng.choice(k, size=1024, p=p):
            i = int(i)
            if ptr[i] >= lengths[i]:
                if stopping_strategy == "first_exhausted":
                    return np.asarray(out, dtype=np.int64).reshape(-1, 2)
                ptr[i] = 0
            out.append((i, ptr[i]))
            ptr[i] += 1
            if ptr[i] >= lengths[i]:
                seen_all[i] = True
                if stopping_strategy == "all_exhausted" and all(seen_all):
                    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


def combine(tables: Sequence[Table], *, mode: str = "interleave", probabilities: Sequence[float] | None = None,
            stopping_strategy: str = "all_exhausted", seed: int = 0) -> Table:
    """Several tables -> one (``interleave`` or ``concatenate``); a single table is returned as is."""
    tables = list(tables)
    if len(tables) == 1:
        return tables[0]
    lengths = [len(t) for t in tables]
    if mode in ("concatenate", "concat"):
        if probabilities is not None:
            logger.warning("data.probabilities is ignored when sources are concatenated")
        idx = np.concatenate([np.stack([np.full(n, i), np.arange(n)], 1) for i, n in enumerate(lengths)])
        return MixedTable(tables, idx, name="+".join(getattr(t, "name", "?") for t in tables))
    if mode != "interleave":
        raise ValueError(f"data.mixing must be interleave or concatenate, not {mode!r}")
    idx = interleave_indices(lengths, probabilities, stopping_strategy, seed)
    return MixedTable(tables, idx, name="+".join(getattr(t, "name", "?") for t in tables))


def split_specs(spec: Any) -> list:
    """``a+b`` (the reference's syntax), a list, or one source -> list of source specs."""
    if spec is None:
        return []
    if isinstance(spec, (list, tuple)):
        out = []
        for s in spec:
            out += split_specs(s)
        return out
    if isinstance(spec, str) and "+" in spec and not os.path.exists(spec):
        return [s for s in spec.split("+") if s]
    return [spec]


def load_sources(spec: Any, *, split: str = "train", streaming: bool = False, audio_root: str | None = None,
                 mode: str = "interleave", probabilities: Sequence[float] | None = None,
                 stopping_strategy: str = "all_exhausted", seed: int = 0):
    """Load and combine every source of ``spec``; returns a :class:`Table` or an ``IterableDataset``."""
    specs = split_specs(spec)
    if not specs:
        raise ValueError("no training data given (data.train)")
    loaded = [load_source(s, split=split, streaming=streaming, audio_root=audio_root) for s in specs]
    iterable = [not isinstance(x, Table) for x in loaded]
    if any(iterable):
        import datasets

        loaded = [x.to_iterable_dataset() if isinstance(x, HFTable) else x for x in loaded]
        if any(isinstance(x, ListTable) for x in loaded):
            loaded = [datasets.Dataset.from_list(x.rows).to_iterable_dataset() if isinstance(x, ListTable) else x
                      for x in loaded]
        if len(loaded) == 1:
            return loaded[0]
        if mode in ("concatenate", "concat"):
            return datasets.concatenate_datasets(loaded)
        return datasets.interleave_datasets(loaded, probabilities=probabilities, seed=seed,
                                            stopping_strategy=stopping_strategy)
    return combine(loaded, mode=mode, probabilities=probabilities, stopping_strategy=stopping_strategy, seed=seed)


def iter_column(table: Table, name: str) -> Iterable:
    return table.column(name)
