"""Evaluation: the paper's retrieval and zero-shot classification protocols, suites, cache and reports.

Light to import; submodules load on first use::

    from paraspeechclap.evaluate import metrics            # pure numpy / scikit-learn
    from paraspeechclap.evaluate import resolve_suite, prepare_suite, run_suite, write_report
"""
from __future__ import annotations

from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".suites": ["resolve_suite", "builtin_suites", "load_rows", "Suite", "Task", "DataSource", "SuiteError"],
    ".runner": ["prepare_suite", "run_suite", "SuiteOutcome", "TaskOutcome"],
    ".report": ["write_report", "headline", "read_metrics"],
    ".retrieval": ["evaluate_retrieval"],
    ".classification": ["evaluate_classification", "candidate_embeddings", "DEFAULT_TEMPLATE"],
    ".cache": ["EmbeddingCache", "AudioEmbedder", "model_identity"],
}, submodules=["metrics", "retrieval", "classification", "suites", "cache", "report", "runner", "cli"])
