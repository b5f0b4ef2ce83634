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

from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".run": ["evaluate_systems", "Evaluation"],
    ".contrastive": ["contrastive_scores", "contrast_set", "ContrastiveResult"],
    ".counterfactual": ["CounterfactualTable", "packaged_table"],
    ".signature": ["format_signature", "parse_signature"],
    ".report": ["write_report"],
})
