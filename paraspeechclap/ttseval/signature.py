"""The benchmark signature: one line that pins every number of a report, printed with each score (as sacreBLEU
prints ``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.0.0``) and stored in ``report.json``.

``ttseval:1|model:mini@723b134bec0bdf7b|prec:fp32|pre:2|cf:v1@64a7d830|attr:mini@1c2d3e4f|tmpl:5e6f7a8b|gates:v1@...|
metric:1|set:200@9a8b7c6d|boot:1000|seed:0|ci:95|version:0.1.0``

* ``model``: the model's name and weights identity (``model.identity()``: a hash of its config, every weight and
  its precision);
* ``prec``: the precision the towers ran in; ``pre``: the audio preprocessing version (that of the embedding cache);
* ``cf``: the counterfactual table's version and content hash; ``attr``: the attribute table (family and content
  hash) the per-attribute scores classify with; ``tmpl``: hash of its classification template;
* ``gates``: the quality-gate table's version and content hash; ``metric``: :data:`METRIC_VERSION` (the definitions
  of the three scores, the views and the robustness margin);
* ``set``: the number of prompts and a hash of their ids, captions, transcripts and labels;
* ``boot``, ``seed``, ``ci``: bootstrap replicates, resampling seed and interval level; ``version``: the package.

Same inputs and the same signature give the same numbers (fp32; the tolerance is in docs/tts-eval.md); a different
model, table, template, gate, metric, prompt set or resampling gives a different signature.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

__all__ = ["SIGNATURE_NAME", "SIGNATURE_VERSION", "METRIC_VERSION", "short_hash", "format_signature",
           "parse_signature", "build_fields"]

SIGNATURE_NAME = "ttseval"
SIGNATURE_VERSION = "1"
#: bump when a score's definition, a view's rule or the robustness margin changes
METRIC_VERSION = "1"
ORDER = ("model", "prec", "pre", "cf", "attr", "tmpl", "gates", "metric", "set", "boot", "seed", "ci", "version")


def short_hash(value: Any, n: int = 8) -> str:
    """The first ``n`` hex digits of the SHA-256 of ``value`` (a string, or any JSON-able value in canonical form)."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False,
                                                            separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def format_signature(fields: Mapping[str, Any]) -> str:
    """``ttseval:1|key:value|...`` in the fixed key order; every key of :data:`ORDER` is required."""
    missing = [k for k in ORDER if fields.get(k) in (None, "")]
    if missing:
        raise ValueError(f"signature fields missing: {missing}")
    for k in ORDER:
        if any(ch in str(fields[k]) for ch in "|:"):
            raise ValueError(f"signature field {k}={fields[k]!r} may not contain '|' or ':'")
    return f"{SIGNATURE_NAME}:{SIGNATURE_VERSION}|" + "|".join(f"{k}:{fields[k]}" for k in ORDER)


def parse_signature(text: str) -> dict[str, str]:
    """The fields of a signature string (raises ValueError naming what is wrong)."""
    head, _, rest = text.strip().partition("|")
    if head != f"{SIGNATURE_NAME}:{SIGNATURE_VERSION}":
        raise ValueError(f"not a {SIGNATURE_NAME}:{SIGNATURE_VERSION} signature: {text!r:.80}")
    fields = {}
    for part in rest.split("|"):
        key, sep, value = part.partition(":")
        if not sep or key not in ORDER:
            raise ValueError(f"signature field {part!r} is not one of {ORDER}")
        fields[key] = value
    if tuple(fields) != ORDER:
        raise ValueError(f"signature fields {tuple(fields)} are not {ORDER}")
    return fields


def build_fields(model: Any, cf_table: Any, attr_table: Any, gates: Any, prompt_set: str, n_boot: int, seed: int,
                 level: float) -> dict[str, str]:
    """The signature fields of an evaluation (see the module docstring for each)."""
    from .. import __version__
    from ..evaluate.cache import PREPROCESSING_VERSION

    provenance = model.provenance() if callable(getattr(model, "provenance", None)) else {}
    name = str(provenance.get("model") or getattr(model, "name", None) or type(model).__name__)
    identity = model.identity() if callable(getattr(model, "identity", None)) else "unknown"
    return {
        "model": f"{name.replace('|', '_').replace(':', '_')}@{identity}",
        "prec": str(getattr(model, "precision", None) or provenance.get("precision") or "unknown"),
        "pre": str(PREPROCESSING_VERSION),
        "cf": cf_table.identity(),
        "attr": f"{attr_table.family}@{short_hash(attr_table.to_dict())}",
        "tmpl": short_hash(attr_table.template),
        "gates": gates.identity(),
        "metric": METRIC_VERSION,
        "set": prompt_set,
        "boot": str(int(n_boot)),
        "seed": str(int(seed)),
        "ci": f"{100 * level:g}",
        "version": __version__,
    }
