"""A style-adherence benchmark for expressive TTS: contrastive, per attribute, with intervals and a signature.

    from paraspeechclap.ttseval import evaluate_systems

    result = evaluate_systems("prompts.jsonl", {"sys_a": "out_a/", "sys_b": "out_b.jsonl"}, model="mini")
    print(result.summary())            # every score with its interval and rank, under the signature
    result.write_report("report/")     # report.json, CSVs, plots, index.html with audio players

Modules: :mod:`.counterfactual` (the versioned rewrite table), :mod:`.contrastive` (the contrastive score, shared with
the reward API), :mod:`.adherence` (per-attribute), :mod:`.gates`, :mod:`.robustness`, :mod:`.stats`,
:mod:`.agreement`, :mod:`.signature`, :mod:`.run` (``evaluate_systems``), :mod:`.report`; the command line is
``paraspeechclap tts-eval`` (:mod:`.cli`). Light to import: submodules load on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "evaluate_systems": "run", "Evaluation": "run",
    "contrastive_scores": "contrastive", "contrast_set": "contrastive", "ContrastiveResult": "contrastive",
    "CounterfactualTable": "counterfactual", "packaged_table": "counterfactual",
    "format_signature": "signature", "parse_signature": "signature",
    "write_report": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
