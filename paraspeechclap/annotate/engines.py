"""Engines over the same shard-level job (:mod:`.job`); none schedules anything of its own.

* ``local``: ``concurrent.futures.ProcessPoolExecutor`` with one worker process per device (GPUs) or per core group
  (CPU: torch threads split between the workers); each worker loads the model once and takes whole shards.
  One worker runs in this process. Workers die with this process, SIGKILL included (:mod:`paraspeechclap.lifetime`:
  the kernel's parent-death signal, and a parent check before every commit); the multiprocessing resource tracker
  then sees its pipe close and exits too.
* ``torchrun``: every rank (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` from the launcher) takes shards ``rank::world``
  on ``cuda:LOCAL_RANK`` (or CPU); no collectives are needed: the manifest is updated under a file lock. torchrun
  starts each rank in a session of its own, so a SIGKILLed torchrun would leave them running: a rank started by
  torchrun (``TORCHELASTIC_RUN_ID`` set) dies with it the same way. Ranks started by another launcher follow that
  launcher's rules (srun stops its tasks itself; a shell script's background jobs are left alone).
* ``ray``: the rows of the pending shards as one Ray dataset (a block per shard, built in the driver),
  ``map_batches`` on one pool of model actors (one per CPU/GPU slot) for the whole job, results streamed back to the
  driver and each shard committed as soon as its rows are in (same file names, schema, ids and manifest records as
  the other engines): a kill loses only the shards in flight. The driver loads no model: the actors send what the
  manifest needs (provenance, attribute table, width) in their batches' schema metadata. Only the driver commits, so
  nothing is committed after it dies. A local Ray instance that ``ray.init()`` starts here shares this process's
  fate: on Linux Ray starts its GCS, raylet and helpers with the parent-death signal, and its actors exit when their
  raylet does (``tests/faults`` checks that none is left 10 s after a SIGKILL). On a cluster given by ``--address``
  the actors of a dead driver's job are killed by Ray itself; the cluster keeps running, as it should.
"""
from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from .. import lifetime
from .attributes import table_for_model
from .job import Job, JobConfig, Progress, ResumeState, annotate_rows, model_dim, set_threads
from .layout import ShardPlan, shard_names

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


def _progress(job: Job, state: ResumeState, quiet: bool) -> Progress:
    return Progress(job.num_shards, len(state.done), len(job.rows), sum(len(job.shard_rows(k)) for k in state.done),
                    quiet=quiet)


def prepare(job: Job, model) -> tuple[Any, int, dict]:
    table = table_for_model(model, job.config.attributes)
    dim = model_dim(model)
    manifest = job.ensure_manifest(model.provenance(), table, dim)
    return table, dim, manifest


def run_shard(job: Job, model, table, dim: int, shard: ShardPlan, watch: lifetime.ParentWatch | None = None) -> dict:
    c = job.config
    arrow = annotate_rows(model, table, shard.rows, dim, c.embedding_dtype, c.batch_size, c.captions)
    return job.commit(shard, arrow, identity=model.identity(), alive=watch.check if watch is not None else None)


# ---------------------------------------------------------------------------------------------- local
_WORKER: dict = {}


def _init_worker(job: Job, devices, threads: int | None, parent: int) -> None:
    watch = lifetime.die_with_parent(parent)  # first: a parent killed while the model loads takes us with it
    set_threads(threads)
    device = devices.get() if devices is not None else None
    model = job.config.model.load(device=device)
    _WORKER.update(job=job, model=model, table=table_for_model(model, job.config.attributes), dim=model_dim(model),
                   watch=watch)


def _worker_shard(shard: ShardPlan) -> dict:
    w = _WORKER
    if not w.get("ready"):  # the manifest is created (or checked) by the workers: no model load in the parent
        prepare(w["job"], w["model"])
        w["ready"] = True
    return run_shard(w["job"], w["model"], w["table"], w["dim"], shard, w["watch"])


def run_local(job: Job, state: ResumeState, workers: int | None = None, threads: int | None = None,
              quiet: bool = False) -> dict:
    gpus = cuda_devices() if job.config.model.device in (None, "cuda") else 0
    if workers is None:
        workers = gpus if gpus else min(4, cpu_cores())
    workers = max(1, int(workers))
    if threads is None and not gpus:
        threads = max(1, cpu_cores() // workers)
    device0 = "cuda:0" if gpus else job.config.model.device
    progress = _progress(job, state, quiet)
    if workers == 1:
        set_threads(threads)
        model = job.config.model.load(device=device0)
        table, dim, _ = prepare(job, model)
        for index in state.pending:
            progress.update(run_shard(job, model, table, dim, job.shards[index]))
        return progress.summary() | {"engine": "local", "workers": 1}
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    devices = None
    if gpus:  # a plain queue handed over at start (a Manager would be one more process to outlive us)
        devices = ctx.Queue()
        for k in range(workers):
            devices.put(f"cuda:{k % gpus}")
    # started from this thread, which outlives them (the parent-death signal follows the thread that forked)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(job.light(), devices, threads, os.getpid())) as pool:
        futures = [pool.submit(_worker_shard, job.shards[k]) for k in state.pending]  # each with its rows
        for future in as_completed(futures):
            progress.update(future.result())
    return progress.summary() | {"engine": "local", "workers": workers}


# ---------------------------------------------------------------------------------------------- torchrun
def run_torchrun(job: Job, state: ResumeState, threads: int | None = None, quiet: bool = False) -> dict:
    # torchrun puts each rank in a session of its own: without this a SIGKILLed torchrun leaves them running
    watch = lifetime.die_with_parent() if os.environ.get("TORCHELASTIC_RUN_ID") else None
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
    progress = _progress(job, state, quiet)
    for index in [k for k in state.pending if k % world == rank]:
        progress.update(run_shard(job, model, table, dim, job.shards[index], watch))
    return progress.summary() | {"engine": "torchrun", "rank": rank, "world": world}


# ---------------------------------------------------------------------------------------------- Ray Data
RAY_META_KEY = b"paraspeechclap.annotate"  # schema metadata of every batch a Ray actor returns


class RayAnnotator:
    """A Ray Data actor: one model, annotating batches of rows (Arrow in, Arrow out). Each batch carries, as schema
    metadata, what the driver needs for the manifest: the model's provenance, attribute table and width."""

    def __init__(self, config: JobConfig, threads: int | None, use_gpu: bool):
        import json

        set_threads(threads)
        self.config = config
        self.model = config.model.load(device="cuda" if use_gpu else config.model.device)
        self.table = table_for_model(self.model, config.attributes)
        self.dim = model_dim(self.model)
        self.meta = json.dumps({"provenance": self.model.provenance(), "table": self.table.to_dict(),
                                "source": self.table.source, "dim": self.dim}, default=str).encode()

    def __call__(self, batch):
        from .inputs import InputRow

        cols = [batch.column(name).to_pylist() for name in ("row", "id", "audio", "read_error")]
        rows = [InputRow(int(r), i, a or None, e or None) for r, i, a, e in zip(*cols)]
        c = self.config
        out = annotate_rows(self.model, self.table, rows, self.dim, c.embedding_dtype, c.batch_size, c.captions)
        return out.replace_schema_metadata({**(out.schema.metadata or {}), RAY_META_KEY: self.meta})


def _manifest_from_actor(job: Job, meta: bytes | None) -> tuple[Any, int, str]:
    """The manifest of a Ray job from an actor's batch metadata: (attribute table, width, model identity)."""
    import json

    from .attributes import AttributeTable

    if meta is None:
        raise RuntimeError("a Ray actor returned a batch without the model's metadata")
    doc = json.loads(meta)
    table = AttributeTable.from_dict(doc["table"], source=doc.get("source", ""))
    job.ensure_manifest(doc["provenance"], table, int(doc["dim"]))
    return table, int(doc["dim"]), doc["provenance"]["identity"]


def run_ray(job: Job, state: ResumeState, address: str | None = None, workers: int | None = None,
            threads: int | None = None, quiet: bool = False) -> dict:
    """One Ray dataset over the pending shards (one block per shard), ``map_batches`` on one actor pool for the whole
    job, results streamed back and each shard committed as soon as all its rows are in: actors load the model once,
    and a kill loses only the shards in flight."""
    import numpy as np
    import pyarrow as pa
    import ray

    from .layout import annotation_schema

    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0)) if job.config.model.device in (None, "cuda") else 0
    cpus = int(resources.get("CPU", 1))
    if workers is None:
        workers = gpus if gpus else max(1, min(4, cpus))
    if threads is None:
        threads = max(1, cpus // workers) if not gpus else None
    pending = state.pending
    progress = _progress(job, state, quiet)
    if not pending:  # nothing to compute: the manifest still records the model (as the other engines do)
        prepare(job, job.config.model.load(device="cpu"))
        return progress.summary() | {"engine": "ray", "workers": workers}
    blocks = [pa.table({"row": [r.row for r in rows], "id": [r.id for r in rows],
                        "audio": [r.audio or "" for r in rows], "read_error": [r.error or "" for r in rows]})
              for rows in (job.shard_rows(k) for k in pending)]
    options: dict = {"num_gpus": 1} if gpus else {"num_cpus": threads}
    # from_blocks keeps one block per shard and reads their metadata here; from_arrow would run a remote task per
    # block for it (worker processes started just for that: ~4-15 s before the first actor, measured)
    from_blocks = getattr(ray.data, "from_blocks", ray.data.from_arrow)
    ds = from_blocks(blocks).map_batches(
        RayAnnotator, fn_constructor_args=(job.config, threads, bool(gpus)), batch_size=None,
        batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=workers), **options)
    owner = np.full(job.num_rows, -1, np.int64)  # input row -> the shard it belongs to
    for k in pending:
        owner[[r.row for r in job.shard_rows(k)]] = k
    waiting: dict[int, list] = {}
    schema = identity = meta = None
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        batch_meta = (batch.schema.metadata or {}).get(RAY_META_KEY)
        if schema is None:  # the first batch: the manifest from its actor's model (no model in the driver)
            table, dim, identity = _manifest_from_actor(job, batch_meta)
            schema, meta = annotation_schema(table, dim, job.config.embedding_dtype), batch_meta
        elif batch_meta != meta:  # another actor: it must hold the same model
            _, _, other = _manifest_from_actor(job, batch_meta)
            if other != identity:
                raise RuntimeError(f"Ray actors hold different models ({identity} != {other})")
        batch = batch.cast(schema)
        shards = owner[np.asarray(batch.column("row"))]
        for k in np.unique(shards):
            k = int(k)
            waiting.setdefault(k, []).append(batch.filter(pa.array(shards == k)))
            if sum(part.num_rows for part in waiting[k]) == len(job.shard_rows(k)):
                rows = pa.concat_tables(waiting.pop(k)).sort_by("row")  # a split's rows are in input order
                progress.update(job.commit(job.shards[k], pa.Table.from_batches(rows.to_batches(), schema=schema),
                                           identity=identity))
    if waiting:
        raise RuntimeError(f"Ray returned incomplete shards {sorted(waiting)}")
    return progress.summary() | {"engine": "ray", "workers": workers}


def run(config: JobConfig, engine: str = "local", workers: int | None = None, threads: int | None = None,
        address: str | None = None, quiet: bool = False) -> dict:
    """Plan the job, check what an earlier run left (:meth:`Job.resume_state`: finished shards verified, leftover
    temporaries removed, each said on stderr) and run the pending shards with ``engine``; returns a summary."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    job = Job(config)
    job.precheck()
    state = job.resume_state()
    speak = not quiet and (engine != "torchrun" or int(os.environ.get("RANK", 0)) == 0)
    if speak:
        print(f"[annotate] {len(job.rows)} rows in {job.num_shards} shards of {config.shard_size} -> {job.out}",
              file=sys.stderr, flush=True)
        for line in state.report():
            print(f"[annotate] {line}", file=sys.stderr, flush=True)
    if engine == "torchrun":
        summary = run_torchrun(job, state, threads=threads, quiet=quiet)
    elif engine == "ray":
        summary = run_ray(job, state, address=address, workers=workers, threads=threads, quiet=quiet)
    else:
        summary = run_local(job, state, workers=workers, threads=threads, quiet=quiet)
    return summary | {"resume": state.to_dict()}


def annotated_rows(out: str | Path):
    """All rows of an annotation folder's finished shards (either format), in row order (a pyarrow Table)."""
    import pyarrow.dataset as pads

    files = [str(Path(out) / name) for name in shard_names(out)]
    if not files:
        raise FileNotFoundError(f"no shards in {out}")
    return pads.dataset(files, format="parquet").to_table().sort_by("row")


def audio_paths(rows) -> list[str | None]:
    """The audio path of every row of :func:`annotated_rows` (the ``path`` of today's ``Audio`` struct, or the plain
    string of folders written before it)."""
    import pyarrow.compute as pc
    import pyarrow.types as pt

    column = rows.column("audio")
    return (pc.struct_field(column, "path") if pt.is_struct(column.type) else column).to_pylist()
