"""``paraspeechclap classify``: zero-shot classification, per attribute (a softmax within each attribute of a table,
as ``/v1/classify`` and ``annotate`` do: the table's probe where it has one, with its tags) and/or over one flat list
of ``--candidates``."""
from __future__ import annotations

import argparse

from .. import output
from ..modelspec import ModelSpec
from . import inputs

HELP = "zero-shot style classification of audio files (per attribute, or over --candidates)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    inputs.add_arguments(parser)
    parser.add_argument("--attributes", metavar="default|FILE", default=None,
                        help="classify within each attribute of a table (one softmax per attribute): 'default' (the "
                             "model's own table, as annotate and /v1/classify use; the default without "
                             "--candidates) or an attribute-table JSON file")
    parser.add_argument("--candidates", nargs="+", help="one flat softmax over these styles, e.g. deep shrill nasal")
    parser.add_argument("--template", action="append",
                        help="prompt template with {} (repeat to average several; default: the table's, else the "
                             "model's)")
    output.add_arguments(parser, aliases=("json", "csv"))
    ModelSpec.add_arguments(parser)


def _ranking(names, sims, probs) -> list[dict]:
    """Best first; ``names`` beyond the prompts (a probe's ``"none"``) have no similarity."""
    order = sorted(range(len(names)), key=lambda i: -probs[names[i]])
    return [{"style": names[i], "similarity": float(sims[i]) if i < len(sims) else None,
             "probability": float(probs[names[i]])} for i in order]


def classify_sets(model, audio_emb, sets: dict[str, list[str]], templates: dict[str, object],
                  table=None) -> tuple[dict[str, list], dict]:
    """(set name -> per clip its ranking (style, similarity, probability; best first), one softmax per set; the
    table's probabilities of its attributes, through :meth:`AttributeTable.probabilities`: its probes included)."""
    table_probs = table.probabilities(model, audio_emb) if table is not None else {}
    out = {}
    for name, classes in sets.items():
        sims = audio_emb @ model.embed_prompts(classes, templates[name]).T
        if name and name in table_probs:
            names = table.by_name(name).outcomes
            probs = [dict(zip(names, map(float, row))) for row in table_probs[name]]
        else:
            names, probs = classes, model.classify_embeddings(audio_emb, classes, templates[name])
        out[name] = [_ranking(names, s, p) for s, p in zip(sims, probs)]
    return out, table_probs


def _sets(args: argparse.Namespace, model) -> tuple[dict[str, list[str]], dict[str, object], object]:
    """``""`` -> the candidates, then each attribute of the table; the template each set is filled with; the table
    (its template replaced by ``--template`` when given)."""
    sets, templates, table = {}, {}, None
    if args.candidates:
        if len(set(args.candidates)) != len(args.candidates):
            raise ValueError("--candidates has duplicates")
        sets[""], templates[""] = list(args.candidates), args.template
    if args.attributes is not None or not args.candidates:
        from dataclasses import replace

        from ..annotate.attributes import table_for_model

        table = table_for_model(model, None if args.attributes in (None, "default") else args.attributes)
        table = replace(table, template=args.template) if args.template else table
        for attribute in table.attributes:
            sets[attribute.name], templates[attribute.name] = list(attribute.classes), table.template
    return sets, templates, table


def records(paths: list[str], rankings: dict[str, list], tags: list[list[str]] | None = None) -> list[dict]:
    """One record per clip: the candidates' ranking, and per attribute its ranking, prediction and (with a table's
    ``tags``) the tag it gets (None: no tag; gates and thresholds or probe as annotate applies them)."""
    recs = []
    for row, path in enumerate(paths):
        rec: dict = {"path": path}
        if "" in rankings:
            rec["prediction"], rec["ranking"] = rankings[""][row][0]["style"], rankings[""][row]
        attrs = {name: {"prediction": r[row][0]["style"], "ranking": r[row]} for name, r in rankings.items() if name}
        for name, a in attrs.items():
            if tags is not None:
                a["tag"] = next((t for t in tags[row] if t in {x["style"] for x in a["ranking"]}), None)
        if attrs:
            rec["attributes"] = attrs
        recs.append(rec)
    return recs


def flat_rows(recs: list[dict]) -> list[dict]:
    """One row per clip, set and class: path, attribute (empty for --candidates), style, rank, similarity,
    probability."""
    rows = []
    for rec in recs:
        sets = ([(None, rec["ranking"])] if "ranking" in rec else []) + \
            [(name, a["ranking"]) for name, a in rec.get("attributes", {}).items()]
        for name, ranking in sets:
            rows += [{"path": rec["path"], "attribute": name, "style": r["style"], "rank": rank,
                      "similarity": r["similarity"], "probability": r["probability"]}
                     for rank, r in enumerate(ranking, 1)]
    return rows


def table_text(recs: list[dict]) -> str:
    lines = []
    for rec in recs:
        lines.append(f"\n{rec['path']}")
        if "ranking" in rec:
            lines += [f"{'Style':<20}{'Similarity':>12}{'Probability':>12}", "-" * 44]
            lines += [f"{r['style']:<20}{r['similarity']:>12.4f}{r['probability']:>12.1%}" for r in rec["ranking"]]
            lines.append(f"Predicted style: {rec['prediction']}")
        if rec.get("attributes"):
            lines += [f"{'Attribute':<16}{'Prediction':<20}{'Probability':>12}  Runner-up", "-" * 72]
            for name, a in rec["attributes"].items():
                best, second = a["ranking"][0], a["ranking"][1] if len(a["ranking"]) > 1 else None
                runner = f"{second['style']} {second['probability']:.1%}" if second else ""
                lines.append(f"{name:<16}{best['style']:<20}{best['probability']:>12.1%}  {runner}")
    return "\n".join(lines).lstrip("\n") + "\n"


def run(args: argparse.Namespace) -> int:
    fmt = output.chosen_format(args)
    model, good, audio_emb, failed, total = inputs.start(args, [args.out])
    if not good:
        return 1
    sets, templates, table = _sets(args, model)   # a table whose probe reads other embeddings: refused there
    rankings, table_probs = classify_sets(model, audio_emb, sets, templates, table)
    tags = [table.tags(table_probs, row) for row in range(len(good))] if table is not None else None
    recs = records(good, rankings, tags)
    document = {"model": args.model, "template": args.template or model.config.prompt_template,
                "attribute_table": table.family if table is not None else None, "results": recs, "failed": failed}
    output.emit(fmt, args.out, provenance=model.provenance(), document=document, rows=flat_rows(recs),
                table=lambda: table_text(recs))
    return inputs.finish(failed, total)
