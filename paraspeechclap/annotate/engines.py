"""Engines over the same shard-level job (:mod:`.job`); none schedules anything of its own.

* ``local``: ``concurrent.futures.ProcessPoolExecutor`` with one worker process per device (GPUs) or per core group
  (CPU: torch threads split between the workers); each worker loads the model once and takes whole shards.
  One worker runs in this process.
* ``torchrun``: every rank (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` from the launcher) takes shards ``rank::world``
  on ``cuda:LOCAL_RANK`` (or CPU); no collectives are needed: the manifest is updated under a file lock.
* ``ray``: the rows of the pending shards as a Ray dataset, ``map_batches`` with one model actor per CPU/GPU slot,
  Parquet written by Ray into a staging folder, then committed shard by shard (same file names, schema, ids and
  manifest records as the other engines), in waves so that a kill loses at most the wave in flight.
"""
from __future__ import annotations

import os
import shutil
import sys
import uuid
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from .attributes import table_for_model
from .job import SHARD_GLOB, Job, JobConfig, Progress, annotate_rows, model_dim, set_threads

ENGINES = ("local", "torchrun", "ray")


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cuda_devices() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001
        return 0


def _progress(job: Job, done: set[int], quiet: bool) -> Progress:
    return Progress(job.num_shards, len(done), len(job.rows), sum(len(job.shard_rows(k)) for k in done), quiet=quiet)


def prepare(job: Job, model) -> tuple[Any, int, dict]:
    table = table_for_model(model, job.config.attributes)
    dim = model_dim(model)
    manifest = job.ensure_manifest(model.provenance(), table, dim)
    return table, dim, manifest


def run_shard(job: Job, model, table, dim: int, index: int) -> dict:
    c = job.config
    arrow = annotate_rows(model, table, job.shard_rows(index), dim, c.embedding_dtype, c.batch_size, c.captions)
    return job.commit(index, arrow, identity=model.identity())


# ---------------------------------------------------------------------------------------------- local
_WORKER: dict = {}


def _init_worker(config: JobConfig, rows, devices, threads: int | None) -> None:
    set_threads(threads)
    device = devices.get() if devices is not None else None
    model = config.model.load(device=device)
    job = Job(config, rows=rows)
    _WORKER.update(job=job, model=model, table=table_for_model(model, config.attributes), dim=model_dim(model))


def _worker_shard(index: int) -> dict:
    w = _WORKER
    if not w.get("ready"):  # the manifest is created (or checked) by the workers: no model load in the parent
        prepare(w["job"], w["model"])
        w["ready"] = True
    return run_shard(w["job"], w["model"], w["table"], w["dim"], index)


def run_local(job: Job, workers: int | None = None, threads: int | None = None, quiet: bool = False) -> dict:
    gpus = cuda_devices() if job.config.model.device in (None, "cuda") else 0
    if workers is None:
        workers = gpus if gpus else min(4, cpu_cores())
    workers = max(1, int(workers))
    if threads is None and not gpus:
        threads = max(1, cpu_cores() // workers)
    device0 = "cuda:0" if gpus else job.config.model.device
    if workers == 1:
        set_threads(threads)
        model = job.config.model.load(device=device0)
        table, dim, _ = prepare(job, model)
        pending = job.pending()
        progress = _progress(job, set(range(job.num_shards)) - set(pending), quiet)
        for index in pending:
            progress.update(run_shard(job, model, table, dim, index))
        return progress.summary() | {"engine": "local", "workers": 1}
    import multiprocessing as mp

    pending = job.pending()
    progress = _progress(job, set(range(job.num_shards)) - set(pending), quiet)
    ctx = mp.get_context("spawn")
    devices = None
    if gpus:
        devices = ctx.Manager().Queue()
        for k in range(workers):
            devices.put(f"cuda:{k % gpus}")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(job.config, job.rows, devices, threads)) as pool:
        futures = [pool.submit(_worker_shard, k) for k in pending]
        for future in as_completed(futures):
            progress.update(future.result())
    return progress.summary() | {"engine": "local", "workers": workers}


# ---------------------------------------------------------------------------------------------- torchrun
def run_torchrun(job: Job, threads: int | None = None, quiet: bool = False) -> dict:
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", rank))
    gpus = cuda_devices() if job.config.model.device in (None, "cuda") else 0
    device = f"cuda:{local % gpus}" if gpus else job.config.model.device
    if threads is None and not gpus:
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        threads = max(1, cpu_cores() // local_world)
    set_threads(threads)
    model = job.config.model.load(device=device)
    table, dim, _ = prepare(job, model)
    mine = [k for k in job.pending() if k % world == rank]
    progress = _progress(job, set(range(job.num_shards)) - set(job.pending()), quiet)
    for index in mine:
        progress.update(run_shard(job, model, table, dim, index))
    return progress.summary() | {"engine": "torchrun", "rank": rank, "world": world}


# ---------------------------------------------------------------------------------------------- Ray Data
class RayAnnotator:
    """A Ray Data actor: one model, annotating batches of rows (Arrow in, Arrow out)."""

    def __init__(self, config: JobConfig, threads: int | None, use_gpu: bool):
        set_threads(threads)
        self.config = config
        self.model = config.model.load(device="cuda" if use_gpu else config.model.device)
        self.table = table_for_model(self.model, config.attributes)
        self.dim = model_dim(self.model)

    def __call__(self, batch):
        from .inputs import InputRow

        cols = [batch.column(name).to_pylist() for name in ("row", "id", "audio", "read_error")]
        rows = [InputRow(int(r), i, a or None, e or None) for r, i, a, e in zip(*cols)]
        c = self.config
        return annotate_rows(self.model, self.table, rows, self.dim, c.embedding_dtype, c.batch_size, c.captions)


def run_ray(job: Job, address: str | None = None, workers: int | None = None, threads: int | None = None,
            wave_shards: int | None = None, quiet: bool = False) -> dict:
    import pyarrow as pa
    import pyarrow.dataset as pads
    import ray

    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0)) if job.config.model.device in (None, "cuda") else 0
    cpus = int(resources.get("CPU", 1))
    if workers is None:
        workers = gpus if gpus else max(1, min(4, cpus))
    if threads is None:
        threads = max(1, cpus // workers) if not gpus else None
    model = job.config.model.load(device="cpu")
    table, dim, _ = prepare(job, model)
    identity_cpu = model.identity()
    del model
    pending = job.pending()
    progress = _progress(job, set(range(job.num_shards)) - set(pending), quiet)
    wave_shards = wave_shards or max(1, 4 * workers)
    schema = None
    for start in range(0, len(pending), wave_shards):
        wave = pending[start:start + wave_shards]
        items = [{"row": r.row, "id": r.id, "audio": r.audio or "", "read_error": r.error or ""}
                 for k in wave for r in job.shard_rows(k)]
        ds = ray.data.from_items(items)
        options: dict = {"num_gpus": 1} if gpus else {"num_cpus": threads}
        ds = ds.map_batches(RayAnnotator, fn_constructor_args=(job.config, threads, bool(gpus)),
                            batch_size=max(1, min(job.config.shard_size, 256)), batch_format="pyarrow",
                            compute=ray.data.ActorPoolStrategy(size=workers), **options)
        staging = job.out / f".ray-staging-{uuid.uuid4().hex[:8]}"
        try:
            ds.write_parquet(str(staging))
            staged = pads.dataset(str(staging), format="parquet").to_table()
            if schema is None:
                from .job import arrow_schema

                schema = arrow_schema(table, dim, job.config.embedding_dtype)
            staged = staged.cast(schema).sort_by("row")
            rows = staged.column("row").to_numpy()
            for k in wave:
                lo, hi = k * job.config.shard_size, min((k + 1) * job.config.shard_size, len(job.rows))
                import numpy as np

                a, b = int(np.searchsorted(rows, lo)), int(np.searchsorted(rows, hi))
                part = staged.slice(a, b - a)
                if part.num_rows != hi - lo:
                    raise RuntimeError(f"Ray returned {part.num_rows} rows for shard {k}, expected {hi - lo}")
                progress.update(job.commit(k, pa.Table.from_batches(part.to_batches(), schema=schema),
                                           identity=identity_cpu if not gpus else None))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return progress.summary() | {"engine": "ray", "workers": workers}


def run(config: JobConfig, engine: str = "local", workers: int | None = None, threads: int | None = None,
        address: str | None = None, quiet: bool = False) -> dict:
    """Plan the job and run its pending shards with ``engine``; returns a summary."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    job = Job(config)
    job.precheck()
    if not quiet:
        print(f"[annotate] {len(job.rows)} rows in {job.num_shards} shards of {config.shard_size} -> {job.out}",
              file=sys.stderr, flush=True)
    if engine == "torchrun":
        return run_torchrun(job, threads=threads, quiet=quiet)
    if engine == "ray":
        return run_ray(job, address=address, workers=workers, threads=threads, quiet=quiet)
    return run_local(job, workers=workers, threads=threads, quiet=quiet)


def annotated_rows(out: str | Path):
    """All rows of an annotation folder, in row order (a pyarrow Table)."""
    import pyarrow.dataset as pads

    files = sorted(str(p) for p in Path(out).glob(SHARD_GLOB))
    if not files:
        raise FileNotFoundError(f"no shards in {out}")
    return pads.dataset(files, format="parquet").to_table().sort_by("row")
