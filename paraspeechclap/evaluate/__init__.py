"""Evaluation: the paper's retrieval and zero-shot classification protocols, suites, cache and reports.

Light to import; submodules load on first use::

    from paraspeechclap.evaluate import metrics            # pure numpy / scikit-learn
    from paraspeechclap.evaluate import resolve_suite, prepare_suite, run_suite, write_report
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "resolve_suite": "suites", "builtin_suites": "suites", "load_rows": "suites", "Suite": "suites",
    "Task": "suites", "DataSource": "suites", "SuiteError": "suites",
    "prepare_suite": "runner", "run_suite": "runner", "SuiteOutcome": "runner", "TaskOutcome": "runner",
    "write_report": "report", "headline": "report", "read_metrics": "report",
    "evaluate_retrieval": "retrieval", "evaluate_classification": "classification",
    "candidate_embeddings": "classification", "DEFAULT_TEMPLATE": "classification",
    "EmbeddingCache": "cache", "AudioEmbedder": "cache", "model_identity": "cache",
}
_SUBMODULES = {"metrics", "retrieval", "classification", "suites", "cache", "report", "runner", "cli"}

__all__ = sorted(_EXPORTS) + sorted(_SUBMODULES)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
