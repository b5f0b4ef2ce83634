"""What the routes share: the model, its worker, the budgets, the attribute tables and the index (checked to hold
this model's embeddings)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .admission import Budget
from .batcher import Batcher
from .config import ServeConfig
from .http import body_budget, refusal_pacer
from .metrics import Metrics
from .yielding import PromptGate

def model_table(model: Any) -> Any:
    """The table annotate uses for this model (the packaged table whose ``match`` fits its speech encoder, else the
    paper's); None when there is none."""
    from ..annotate.attributes import table_for_model

    try:
        return table_for_model(model)
    except FileNotFoundError:
        return None


def attribute_table(model: Any, table: Any = False) -> tuple[str, dict[str, list[str]]]:
    """The attributes the page draws probability bars for: the outcomes of each attribute of the model's table (its
    classes, and ``"none"`` where a probe gives them for an attribute without a single neutral class)."""
    table = model_table(model) if table is False else table
    if table is None:
        return "none", {}
    return table.family, {a.name: a.outcomes for a in table.attributes}


def corpus_roots(index: Any) -> list[Path]:
    """Folders an indexed clip's audio may be served from: the annotation folder and the corpus it was made from
    (the annotation manifest's audio root, else each input folder, or the folder of each input manifest file)."""
    annotations = Path(str(getattr(index, "annotations", "") or ""))
    roots = [annotations] if str(annotations) not in ("", ".") else []
    try:
        manifest = json.loads((annotations / "_manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    source = manifest.get("input") or {}
    if source.get("audio_root"):
        roots.append(Path(source["audio_root"]))
    else:
        for item in source.get("inputs") or []:
            path = Path(item)
            roots.append(path if path.is_dir() else path.parent)
    return [Path(os.path.realpath(root)) for root in roots if root.is_dir()]


@dataclass
class ServeState:
    model: Any
    config: ServeConfig
    index: Any = None
    metrics: Metrics = field(default_factory=Metrics)
    spec: Any = None     # the ModelSpec the model was loaded from: what a model process loads

    def __post_init__(self) -> None:
        c = self.config
        self.provenance = self.model.provenance()
        self.logit_scale = float(self.model.logit_scale)
        self.dim = int(self.model.config.embedding_dim)
        self.table = model_table(self.model)   # a probe for another model's embeddings: refused at start
        self.table_name, self.attributes = attribute_table(self.model, self.table)
        self.index_attributes, self.roots = self.attributes, []
        if self.index is not None:
            self._check_index()
        self.process = None
        if c.model_process and self.spec is not None:   # started last: nothing above may fail and leave it behind
            from .modelproc import ModelProcess, RemoteModel

            self.process = ModelProcess(self.spec)
            self.model = RemoteModel(self.model, self.process)
        self.batcher = Batcher(self.model, c.max_batch_items, c.max_wait_ms, c.max_queue_items, c.batch_size,
                               self.metrics, max_batch_seconds=c.max_batch_seconds, max_queue_cost=c.max_queue_cost,
                               express_cost=c.express_cost, timeout=c.request_timeout, bulk_nice=c.bulk_nice,
                               nice_cost=c.nice_cost)
        self.body_budget = body_budget(c)
        self.pacer = refusal_pacer(c)
        self.gate = PromptGate()   # express requests in flight: large bodies wait while there are any
        self.audio_budget = Budget("decoded-audio memory", c.max_audio_memory, "bytes")

    def _check_index(self) -> None:
        """Refuse an index of another model's embeddings; take its attribute table and the corpus' folders."""
        meta = getattr(self.index, "meta", None) or {}
        from ..index.core import model_mismatch

        problem = model_mismatch(meta, self.provenance, self.dim) if meta.get("model") else None
        if problem is not None:
            raise ValueError(problem)
        table = (meta.get("attributes") or {}).get("attributes")
        if isinstance(table, dict):
            self.index_attributes = {name: list(spec.get("classes", spec) if isinstance(spec, dict) else spec)
                                     for name, spec in table.items()}
        self.roots = corpus_roots(self.index)

    def health(self) -> dict:
        """What ``/health`` answers: status, provenance, queue, memory in use and limits (never the token)."""
        batcher, c = self.batcher, self.config
        return {"status": "ok", "model": self.provenance.get("model"), "provenance": self.provenance,
                "queue": {"in_flight": batcher.in_flight, "depth": batcher.queue_depth, "limit": c.max_queue_items,
                          "cost_in_flight": round(batcher.cost_in_flight, 3), "cost_limit": c.max_queue_cost,
                          "lanes": {lane.name: {"cost_in_flight": round(lane.cost, 3), "depth": len(lane.heap),
                                                "rate": round(lane.rate, 1)} for lane in batcher.lanes.values()}},
                "memory": {"bodies": int(self.body_budget.used), "audio": int(self.audio_budget.used)},
                "model_process": self.process.health() if self.process is not None else None,
                "index": self.index is not None, "auth": c.token is not None, "limits": c.public(),
                "attributes": self.table_name}

    def close(self) -> None:
        self.batcher.close()
        if self.process is not None:
            self.process.close()
