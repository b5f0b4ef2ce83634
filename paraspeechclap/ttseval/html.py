"""``index.html`` of a report: static HTML (no script, no network), audio players, per-system tables with intervals,
and a per-prompt drill-down (one ``<details>`` per prompt, anchored ``#prompt-<id>``)."""
from __future__ import annotations

import html
from typing import Callable
from urllib.parse import quote

from .summary import SCORES, VIEWS

__all__ = ["render_html"]

_CSS = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1300px}table{border-collapse:collapse;"
        "margin:.5em 0 1em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;vertical-align:top}"
        "th{background:#f3f3f3}td.l,th.l{text-align:left}code{word-break:break-all}img{max-width:100%}"
        "details{border:1px solid #ddd;margin:.3em 0;padding:.2em .6em}summary{cursor:pointer}"
        ".bad{color:#a00}.ok{color:#070}audio{height:2em;width:16em}")


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _num(x, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _ci(c: dict, digits: int = 3) -> str:
    if c.get("mean") is None:
        return "–"
    if c.get("lo") is None:
        return _num(c["mean"], digits)
    return f"{_num(c['mean'], digits)} [{_num(c['lo'], digits)}, {_num(c['hi'], digits)}]"


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    head = "".join(f"<th class='{'l' if i < left else ''}'>{_e(h)}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td class='{'l' if i < left else ''}'>{c}</td>" for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _view(doc: dict, name: str) -> list[str]:
    view = doc["views"][name]
    out = [f"<h2 id='view-{name}'>View “{name}”: {_e(VIEWS[name])}</h2>",
           f"<p>{view['n_prompts']} prompts every system has a clip for"
           + (f"; {len(view['excluded_prompts'])} left out (listed in report.json)" if view["excluded_prompts"] else "")
           + ".</p>"]
    for score, what in SCORES.items():
        block = view["scores"][score]
        rows = [[_e(s), str(r["rank"] or "–"), _ci(block["systems"][s]), str(block["systems"][s]["n"]),
                 _e(", ".join(r["tied_with"]) or "–")] for s, r in block["ranking"].items()]
        out += [f"<h3>{_e(score)}</h3><p>{_e(what)}</p>",
                _table(["system", "rank", "mean [95% CI]", "prompts", "tied with"], rows)]
        pairs = [[_e(p["a"]), _e(p["b"]), _ci(p["diff"]), _num(p["p_value"], 4), _num(p["win_rate"]),
                  "yes" if p["significant"] else "no"] for p in block["pairs"]]
        out.append("<details><summary>pairwise comparisons</summary>"
                   + _table(["A", "B", "A − B [CI]", "p (approx. randomisation)", "A's win rate", "interval excludes 0"],
                            pairs, left=2) + "</details>")
    if view["attributes"]:
        systems = list(next(iter(view["attributes"].values())))
        rows = [[_e(a)] + [f"{_ci(view['attributes'][a][s]['accuracy'])}<br>UAR {_ci(view['attributes'][a][s]['uar'])}"
                           f"<br>n={view['attributes'][a][s]['n']}" for s in systems] for a in sorted(view["attributes"])]
        out += ["<h3>per attribute: accuracy and UAR</h3>", _table(["attribute"] + systems, rows)]
    out += [f"<img src='plots/scores_{name}.png' alt='scores, view {name}'>",
            f"<img src='plots/attributes_{name}.png' alt='per-attribute accuracy, view {name}'>"]
    return out


def _robustness(rob: dict) -> list[str]:
    rows = []
    for name, entry in {**rob["perturbations"], "all perturbations": {"description": "", **rob["overall"]}}.items():
        cells = [_e(name), _e(entry.get("description", ""))]
        for score in SCORES:
            r = entry[score]
            cells.append("–" if not r.get("n") else f"{100 * r['raised_share']:.1f} % "
                         f"(any rise {100 * r['raised_any_share']:.0f} %)<br>change {_ci(r['mean_change'])}")
        rows.append(cells)
    return [f"<h2 id='robustness'>Robustness: {rob['clips']} correct renderings of {_e(rob['reference'])}, perturbed</h2>",
            f"<p>Share of perturbed clips whose score rose by more than {rob['margin_sd']} standard deviations of "
            "that score over the unperturbed clips (in brackets: any rise at all), and the mean change.</p>",
            _table(["perturbation", "what"] + list(SCORES), rows, left=2),
            "<img src='plots/robustness.png' alt='robustness'>"]


def _mark(attribute: dict) -> str:
    return "ok" if attribute["intended"] == attribute["predicted"] else "bad"


def _drilldown(doc: dict, audio_url: Callable[[str], str | None]) -> list[str]:
    prompts = {item["id"]: item for item in doc["prompts"]["items"]}
    by_prompt: dict = {}
    for rec in doc["clips"]:
        by_prompt.setdefault(rec["prompt"], []).append(rec)
    out = ["<h2 id='prompts'>Prompts</h2>"]
    for pid, recs in by_prompt.items():
        first = recs[0]
        summary = " · ".join(f"{_e(r['system'])} {_num(r['contrastive'], 2)}" for r in recs)
        rows = []
        for r in recs:
            url = audio_url(r["path"]) if r["path"] else None
            player = f"<audio controls preload='none' src='{_e(quote(url))}'></audio>" if url else _e(r["status"])
            attrs = "<br>".join(f"{_e(a)}: {_e(v['intended'])} → <span class='{_mark(v)}'>{_e(v['predicted'])}</span>"
                                for a, v in r["attributes"].items())
            rows.append([_e(r["system"]), player, _num(r["cosine"]), _num(r["contrastive"]), attrs or "–",
                         _e(", ".join(r["flags"]) or "–"), _e(r["status"])])
        cfs = "".join(f"<li>{_e(c['attribute'])}: {_e(c['from'])} → {_e(c['to'])}: “{_e(c['caption'])}”</li>"
                      for c in first["counterfactuals"])
        out.append(f"<details id='prompt-{_e(pid)}'><summary><b>{_e(pid)}</b>: {_e(prompts[pid]['caption'])} "
                   f"<small>(contrastive: {summary})</small></summary>"
                   f"<p>Transcript: {_e(prompts[pid]['transcript'] or '–')}</p><p>Counterfactuals:</p><ul>{cfs}</ul>"
                   + _table(["system", "audio", "cosine", "contrastive", "attributes (intended → predicted)", "flags",
                             "status"], rows) + "</details>")
    return out


def render_html(doc: dict, audio_url: Callable[[str], str | None], plots: bool = True) -> str:
    """The page; ``audio_url(path)`` gives the (relative) URL of a clip, or None when the report has no audio."""
    title = "ParaSpeechCLAP style-adherence benchmark"
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{_CSS}</style></head>"
           f"<body><h1>{title}</h1><p>Signature: <code>{_e(doc['signature'])}</code></p>",
           "<p><a href='report.json'>report.json</a> · <a href='clips.csv'>clips.csv</a> · "
           "<a href='systems.csv'>systems.csv</a> · <a href='attributes.csv'>attributes.csv</a> · "
           "<a href='pairs.csv'>pairs.csv</a> · <a href='#prompts'>per-prompt drill-down</a></p>"]
    rows = [[_e(n), str(s["clips"]), str(s["scored"]), str(s["missing"]), str(s["unreadable"]), str(s["flagged"]),
             _e(", ".join(f"{g} {c}" for g, c in s["flags"].items()) or "–")] for n, s in doc["systems"].items()]
    out += ["<h2>Systems</h2>", _table(["system", "clips", "scored", "missing", "unreadable", "flagged", "by gate"], rows)]
    for name in VIEWS:
        out += _view(doc, name)
    if plots:
        out += ["<img src='plots/contrastive_distribution.png' alt='contrastive per clip'>",
                "<img src='plots/wins_contrastive.png' alt='win rates'>"]
    if doc.get("robustness"):
        out += _robustness(doc["robustness"])
    if doc.get("agreement"):
        out += ["<h2>Agreement with people</h2>", f"<pre>{_e(_agreement_text(doc['agreement']))}</pre>"]
    problems = [[_e(p["severity"]), _e(p["kind"]), _e(p["system"]), _e(p["prompt"]), _e(p["where"]), _e(p["message"])]
                for p in doc["problems"]]
    header = ["severity", "kind", "system", "prompt", "where", "message"]
    out += [f"<h2>Problems ({len(problems)})</h2>", _table(header, problems, left=6) if problems else "<p>None.</p>"]
    out += _drilldown(doc, audio_url)
    out.append("</body></html>")
    page = "\n".join(out)
    return page if plots else page.replace("<img ", "<img hidden ")


def _agreement_text(agr: dict) -> str:
    lines = [f"{agr['preferences']} preferences, {agr['ratings']} ratings ({agr['file']})"]
    for score, entry in agr["scores"].items():
        parts = []
        if entry.get("pairwise", {}).get("n"):
            parts.append(f"pairwise accuracy {_ci(entry['pairwise']['pairwise_accuracy'])}")
        for level in ("clip_level", "system_level"):
            e = entry.get(level) or {}
            if "spearman" in e:
                parts.append(f"{level}: Spearman {_ci(e['spearman'])}, Kendall {_ci(e['kendall'])} (n={e['n']})")
        lines.append(f"{score}: " + "; ".join(parts))
    return "\n".join(lines)
