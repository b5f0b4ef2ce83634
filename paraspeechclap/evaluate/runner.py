"""Running a suite: read and validate every task first, then embed (with the cache) and score.

``prepare_suite`` reads all rows and checks everything that can be checked without a model (readable tables,
non-empty sets, gold labels inside the candidates, audio present at all) and raises one :class:`SuiteError`
listing every problem, so a bad invocation fails in seconds. ``run_suite`` then embeds the audio (cached,
bad files reported and skipped), scores each task and returns a :class:`SuiteOutcome`; a task that cannot be
scored is marked failed with its reason while the other tasks still run.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .cache import DEFAULT_BUSY_TIMEOUT_S, AudioEmbedder, EmbeddingCache, model_identity
from .cache import preprocessing_settings
from .classification import DEFAULT_TEMPLATE, ClassificationResult, candidate_embeddings, check_templates
from .classification import evaluate_classification
from .metrics import check_labels
from .retrieval import RetrievalResult, evaluate_retrieval
from .suites import EvalRows, Suite, SuiteError, Task, load_rows


@dataclass
class PreparedTask:
    task: Task
    rows: EvalRows
    candidates: Optional[List[str]] = None  # classification only, in the order given
    inferred_candidates: bool = False


@dataclass
class TaskOutcome:
    task: Task
    status: str  # "ok" | "failed"
    n_total: int
    n_scored: int
    skipped: List[Dict[str, str]] = field(default_factory=list)
    error: Optional[str] = None
    candidates: Optional[List[str]] = None
    inferred_candidates: bool = False
    retrieval: Optional[RetrievalResult] = None
    classification: Optional[ClassificationResult] = None

    @property
    def metrics(self) -> Dict[str, float]:
        result = self.retrieval or self.classification
        return dict(result.metrics) if result is not None else {}


@dataclass
class SuiteOutcome:
    suite: str
    tasks: List[TaskOutcome]
    settings: Dict[str, Any]
    model: Dict[str, Any]
    cache: Dict[str, Any]
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return all(t.status == "ok" for t in self.tasks)

    @property
    def complete(self) -> bool:
        """Every task ran and every item was scored."""
        return self.ok and all(t.n_scored == t.n_total for t in self.tasks)


def prepare_suite(suite: Suite, audio_root: Optional[str] = None, data_dir: Optional[str] = None,
                  max_items: Optional[int] = None) -> List[PreparedTask]:
    """Read and validate every task; raise one :class:`SuiteError` naming every problem found."""
    prepared: List[PreparedTask] = []
    problems: List[str] = []
    for task in suite.tasks:
        try:
            rows = load_rows(task, audio_root=audio_root, data_dir=data_dir, max_items=max_items)
            item = PreparedTask(task, rows)
            if task.kind == "classification":
                gold = [i.label for i in rows.items]
                if task.candidates:
                    item.candidates = list(task.candidates)
                else:
                    item.candidates, item.inferred_candidates = sorted(set(gold)), True
                check_labels(gold, item.candidates, what=f"gold labels ({task.label_column})")
            present = sum(os.path.isfile(i.path) for i in rows.items)
            if present == 0:
                raise SuiteError(f"none of the {len(rows.items)} audio files exists (first: {rows.items[0].path}); "
                                 "check --audio-root")
            prepared.append(item)
        except (SuiteError, ValueError) as err:
            problems.append(f"task {task.name!r}: {err}" if not str(err).startswith("task ") else str(err))
    if problems:
        raise SuiteError("cannot evaluate:\n  - " + "\n  - ".join(problems))
    return prepared


class _TextEmbedder:
    """``model.embed_text`` with a per-run memo (captions and prompts repeat across tasks)."""

    def __init__(self, model):
        self.model = model
        self.memo: Dict[str, np.ndarray] = {}

    def __call__(self, texts: List[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if missing:
            vectors = np.asarray(self.model.embed_text(missing), dtype=np.float32)
            if vectors.ndim != 2 or vectors.shape[0] != len(missing):
                raise RuntimeError(f"embed_text returned shape {vectors.shape} for {len(missing)} texts")
            self.memo.update(zip(missing, vectors))
        return np.stack([self.memo[t] for t in texts])


def run_suite(model, prepared: Sequence[PreparedTask], suite_name: str, *,
              templates: Optional[Sequence[str]] = None, batch_size: int = 8,
              cache_dir: Optional[str] = None, progress: bool = True,
              cache_busy_timeout: float = DEFAULT_BUSY_TIMEOUT_S,
              settings: Optional[Dict[str, Any]] = None, model_info: Optional[Dict[str, Any]] = None) -> SuiteOutcome:
    """Embed and score every prepared task with ``model`` (the core API: ``embed_audio``/``embed_text``).

    ``templates`` default to the model's own prompt template (``model.config.prompt_template``; for the released
    checkpoints the reference's ``"A person is speaking in a {} style."``), else that reference template.

    ``cache_dir`` holds the on-disk embedding cache (None: memory only, for this run). A cache file that cannot be
    used (corrupt, read-only, locked longer than ``cache_busy_timeout`` seconds) warns once and is ignored.
    """
    if not templates:
        templates = [getattr(getattr(model, "config", None), "prompt_template", None) or DEFAULT_TEMPLATE]
    templates = check_templates(templates)
    started = time.perf_counter()
    key = model_identity(model)
    cache = EmbeddingCache(cache_dir, key, busy_timeout=cache_busy_timeout)
    embedder = AudioEmbedder(model, cache, batch_size=batch_size, progress=progress)
    embed_text = _TextEmbedder(model)
    outcomes: List[TaskOutcome] = []
    try:
        for item in prepared:
            outcomes.append(_run_task(item, embedder, embed_text, templates))
    finally:
        cache.close()
    info = {"identity": key, **(model_info or {})}  # identity: the cache key (weights, precision, preprocessing)
    if callable(getattr(model, "identity", None)):
        info.setdefault("weights_identity", str(model.identity()))
    if callable(getattr(model, "provenance", None)):
        info.setdefault("provenance", model.provenance())  # model identity, precision, device that produced it
    return SuiteOutcome(
        suite=suite_name,
        tasks=outcomes,
        settings={"templates": list(templates), "batch_size": batch_size, **(settings or {})},
        model=info,
        cache={"folder": str(cache.folder) if cache.folder else None, "hits": cache.hits, "misses": cache.misses,
               "embedded": embedder.n_embedded, "disabled": cache.disabled, "journal_mode": cache.journal_mode,
               "preprocessing": preprocessing_settings(model)},
        elapsed_s=time.perf_counter() - started,
    )


def _run_task(item: PreparedTask, embedder: AudioEmbedder, embed_text: _TextEmbedder,
              templates: Sequence[str]) -> TaskOutcome:
    task, rows = item.task, item.rows
    outcome = TaskOutcome(task=task, status="failed", n_total=rows.n_total, n_scored=0, skipped=list(rows.skipped),
                          candidates=item.candidates, inferred_candidates=item.inferred_candidates)
    try:
        vectors, failures = embedder.embed([i.path for i in rows.items], desc=task.name)
        scored = [i for i in rows.items if i.path in vectors]
        outcome.skipped += [{"id": i.id, "path": i.path, "reason": failures.get(i.path, "not embedded")}
                            for i in rows.items if i.path not in vectors]
        if not scored:
            raise SuiteError(f"no audio could be scored ({len(outcome.skipped)} of {rows.n_total} items skipped; "
                             f"first: {outcome.skipped[0]['path']}: {outcome.skipped[0]['reason']})")
        audio = np.stack([vectors[i.path] for i in scored])
        ids, paths = [i.id for i in scored], [i.path for i in scored]
        if task.kind == "retrieval":
            outcome.retrieval = evaluate_retrieval(audio, [i.caption for i in scored], embed_text, ids, paths)
        else:
            classes = candidate_embeddings(embed_text, item.candidates, templates)
            outcome.classification = evaluate_classification(audio, [i.label for i in scored], item.candidates,
                                                             classes, ids, paths)
        outcome.n_scored = len(scored)
        outcome.status = "ok"
    except Exception as err:  # one task failing must not lose the others; the reason goes into the report
        outcome.error = f"{type(err).__name__}: {err}" if not isinstance(err, SuiteError) else str(err)
    return outcome
