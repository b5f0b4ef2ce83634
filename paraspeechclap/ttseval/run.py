"""``evaluate_systems``: one benchmark run, from the prompts and the systems' clips to every number of the report."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .inputs import InputError, Problem, Prompt, SystemClips, read_prompts, read_system
from .signature import build_fields, format_signature, short_hash
from .summary import SCORES, VIEWS, summarise_view

__all__ = ["Evaluation", "evaluate_systems", "DEFAULT_BOOT", "DEFAULT_PERMUTATIONS", "DEFAULT_LEVEL"]

DEFAULT_BOOT = 1000
DEFAULT_PERMUTATIONS = 10000
DEFAULT_LEVEL = 0.95
REPORT_FORMAT = "paraspeechclap-ttseval-report"


@dataclass
class Evaluation:
    """The outcome of :func:`evaluate_systems`: ``doc`` (every number, as ``report.json`` stores it), the signature,
    the problems found, and the per-clip scores (for the report's files)."""

    doc: dict
    signature: str
    problems: list[Problem]
    scores: Any = field(repr=False, default=None)

    @property
    def failed(self) -> bool:
        """True when some item was bad (a missing or unreadable clip, a bad row, a prompt naming no attribute)."""
        return any(p.severity == "error" for p in self.problems)

    def write_report(self, out: str | os.PathLike, audio: str = "link", plots: bool = True) -> Path:
        """Write the report folder (see :mod:`paraspeechclap.ttseval.report`); returns its path."""
        from .report import write_report

        return write_report(self, out, audio=audio, plots=plots)

    def summary(self, view: str = "all") -> str:
        from .report import summary_text

        return summary_text(self, view)


def _load_model(model: Any, precision: str, device: str | None) -> Any:
    if not isinstance(model, (str, os.PathLike)):
        return model
    from ..modelspec import ModelSpec

    return ModelSpec(str(model), precision=precision, device=device).load()


def _prompts(prompts: Any, problems: list[Problem]) -> list[Prompt]:
    if isinstance(prompts, (str, os.PathLike)):
        found, bad = read_prompts(prompts)
        problems += bad
        return found
    out = [p if isinstance(p, Prompt) else Prompt(str(p["id"]), p["caption"], p.get("transcript"), p.get("labels"),
                                                  f"prompts[{i}]") for i, p in enumerate(prompts)]
    if not out:
        raise InputError("no prompts")
    return out


def _systems(systems: Any, problems: list[Problem]) -> list[SystemClips]:
    """``{name: folder or manifest}``, ``{name: {prompt id: audio path}}`` or a list of (name, source)."""
    items = list(systems.items()) if isinstance(systems, Mapping) else list(systems)
    if not items:
        raise InputError("no systems to evaluate")
    names = [str(name) for name, _ in items]
    if len(set(names)) != len(names):
        raise InputError(f"system names must differ: {names}")
    out = []
    for name, source in items:
        if isinstance(source, Mapping):
            out.append(SystemClips(str(name), "<mapping>", {str(k): str(v) for k, v in source.items()}))
        else:
            out.append(read_system(str(name), source, problems))
    return out


def prompt_set_id(prompts: Sequence[Prompt]) -> str:
    """``<n>@<hash>`` of the prompts' ids, captions, transcripts and labels, in order."""
    return f"{len(prompts)}@" + short_hash([[p.id, p.caption, p.transcript, p.labels] for p in prompts])


def evaluate_systems(prompts: Any, systems: Any, model: Any = "mini", *, precision: str = "fp32",
                     device: str | None = None, n_boot: int = DEFAULT_BOOT, seed: int = 0,
                     level: float = DEFAULT_LEVEL, n_permutations: int = DEFAULT_PERMUTATIONS,
                     cache_dir: str | os.PathLike | None = "default", batch_size: int | None = None,
                     robustness: str | None = None, human: str | os.PathLike | None = None,
                     counterfactuals: str | os.PathLike | None = None, attributes: str | os.PathLike | None = None,
                     gates: str | os.PathLike | None = None, progress: bool = False) -> Evaluation:
    """Score every system's clips against the prompts and compute every statistic of the report.

    ``prompts``: a prompts file (see :mod:`.inputs`) or a list of dicts / :class:`Prompt`. ``systems``:
    ``{name: folder or manifest}`` (or ``{name: {prompt id: audio path}}``). ``model``: a name or path for
    ``ParaSpeechCLAP.from_pretrained`` (loaded in ``precision``) or a loaded model. ``cache_dir``: the embedding cache
    (``"default"``: the evaluation room's, ``None``: memory only). ``robustness``: the name of the system whose clips
    are perturbed (its clips taken as correct renderings). ``human``: a file of preferences or ratings.
    ``counterfactuals`` / ``attributes`` / ``gates``: other tables than the packaged ones (they change the signature).
    Bad items are reported in ``Evaluation.problems`` and in the report, never dropped silently.
    """
    from ..annotate.attributes import table_for_model
    from .counterfactual import packaged_table
    from .gates import packaged_gates
    from .scoring import embedder, score_clips

    started = time.time()
    problems: list[Problem] = []
    prompt_list = _prompts(prompts, problems)
    system_list = _systems(systems, problems)
    if robustness is not None and robustness not in [s.name for s in system_list]:
        raise InputError(f"robustness system {robustness!r} is not one of the systems")
    model = _load_model(model, precision, device)
    cf_table, gate_table = packaged_table(counterfactuals), packaged_gates(gates)
    attr_table = table_for_model(model, attributes)
    if cache_dir == "default":
        from ..evaluate.cache import default_cache_dir

        cache_dir = default_cache_dir()
    cache_dir = None if cache_dir is None else str(cache_dir)
    embed = embedder(model, cache_dir, batch_size, progress)
    scores = score_clips(model, prompt_list, system_list, cf_table, attr_table, gate_table, problems, embed)
    fields = build_fields(model, cf_table, attr_table, gate_table, prompt_set_id(prompt_list), n_boot, seed, level)
    signature = format_signature(fields)
    doc = _document(model, scores, system_list, signature, fields, cf_table, attr_table, gate_table,
                    dict(n_boot=n_boot, seed=seed, level=level, n_permutations=n_permutations))
    if robustness is not None:
        from .robustness import evaluate_robustness

        doc["robustness"] = evaluate_robustness(model, scores, robustness, gate_table, embed, attr_table, seed,
                                                n_boot, level, batch_size)
    if human is not None:
        from .agreement import agreement, read_human

        prefs, ratings = read_human(human, scores.systems, problems)
        doc["agreement"] = {"file": str(human), **agreement(scores, prefs, ratings, n_boot, seed, level)}
    doc["problems"] = [p.to_dict() for p in problems]
    doc["cache"] = {"folder": cache_dir, "reused": embed.cache.hits, "embedded": embed.n_embedded,
                    "disabled": embed.cache.disabled}
    embed.cache.close()
    doc["elapsed_s"] = round(time.time() - started, 3)
    return Evaluation(doc, signature, problems, scores)


def _system_rows(scores: Any, systems: Sequence[SystemClips]) -> dict:
    out = {}
    for s, sc in enumerate(systems):
        status = scores.status[s]
        flagged = [scores.prompts[p].id for p in range(len(scores.prompts)) if scores.flags[s][p]]
        out[sc.name] = {"source": sc.source, "clips": int((status != "missing").sum()),
                        "scored": int((status == "ok").sum()), "missing": int((status == "missing").sum()),
                        "unreadable": int((status == "unreadable").sum()), "flagged": len(flagged),
                        "flags": {g: sum(g in scores.flags[s][p] for p in range(len(scores.prompts)))
                                  for g in sorted({f for row in scores.flags[s] for f in row})}}
    return out


def _document(model: Any, scores: Any, systems: Sequence[SystemClips], signature: str, fields: dict, cf_table: Any,
              attr_table: Any, gate_table: Any, settings: dict) -> dict:
    """report.json without robustness, agreement and problems (added by the caller)."""
    from .. import __version__

    views = {v: summarise_view(scores, v, settings["n_boot"], settings["seed"], settings["level"],
                               settings["n_permutations"]) for v in VIEWS}
    return {
        "format": REPORT_FORMAT, "written_by": f"paraspeechclap {__version__}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "signature": signature, "signature_fields": fields,
        "provenance": model.provenance() if callable(getattr(model, "provenance", None)) else {},
        "settings": {**settings, "logit_scale": float(scores.contrast.logit_scale)},
        "definitions": {"scores": SCORES, "views": VIEWS, "counterfactual_table": cf_table.identity(),
                        "attribute_table": attr_table.to_dict(), "gates": gate_table.to_dict()},
        "prompts": {"n": len(scores.prompts), "set": fields["set"], "items": [
            {"id": p.id, "caption": p.caption, "transcript": p.transcript, "labels": p.labels, "where": p.ref,
             "intended": scores.info.intended[i], "caption_names": scores.info.caption_classes[i],
             "notes": scores.info.notes[i]} for i, p in enumerate(scores.prompts)]},
        "systems": _system_rows(scores, systems),
        "views": views,
        "clips": _clip_records(scores),
    }


def _clip_records(scores: Any) -> list[dict]:
    """One record per (system, prompt): path, status, flags, the three scores, per-attribute predictions."""
    def num(x: float) -> float | None:
        return float(x) if np.isfinite(x) else None

    out = []
    P = len(scores.prompts)
    for s, system in enumerate(scores.systems):
        for p, prompt in enumerate(scores.prompts):
            want = scores.info.intended[p]
            out.append({
                "system": system, "prompt": prompt.id, "path": scores.paths[s][p], "status": scores.status[s, p],
                "flags": list(scores.flags[s][p]), "cosine": num(scores.cosine[s, p]),
                "contrastive": num(scores.contrastive[s, p]), "contrastive_win": num(scores.win[s, p]),
                "attribute": num(scores.attribute[s, p]),
                "attributes": {a: {"intended": c, "predicted": scores.predicted[a][s, p]} for a, c in want.items()
                               if a in scores.predicted},
                "measures": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in scores.measures[s][p].items()},
                "counterfactuals": [{**d, "cosine": num(d["cosine"])} for d in scores.contrast.details(s * P + p)],
            })
    return out
