#!/usr/bin/env python
"""The style-adherence benchmark with known answers: synthetic "TTS systems" that follow the prompt at known rates.

    flock /tmp/pscl-heavy.lock .venv/bin/python scripts/build_tts_benchmark.py --out data/tts-bench
    flock /tmp/pscl-heavy.lock .venv/bin/python scripts/build_tts_benchmark.py --out data/tts-bench --evaluate \\
        --results benchmarks/results

**Build** (with ``paraspeechclap.synth``: its voices, calibration, caption wording, sentences, renderer and label
verification): ``--prompts`` style prompts (attributes drawn as the synth corpus draws them; held-out caption wording,
held-out sentences and held-out espeak-ng voices, so none was seen in training) and five systems that render every
prompt's sentence, system ``adhNNN`` following the prompt's style for exactly NNN % of the prompts (an exact random
subset per system) and for the others rendering a *different style*: every attribute the caption names is moved to
another level (deep -> high-pitched, slow -> fast, whispered -> normal, male -> female, ...); attributes the caption
does not name are free. Every rendering is measured and checked with synth's label verification (``check_row``) for
the attributes the caption names and re-rendered with another voice when a check fails, so each clip's adherence is
known by measurement, not only by intent. Then a degraded copy of every system (``--degradations``: ``telephone``, an
8 kHz mu-law WAV (G.711-like codec); ``noise``, white noise at 10 dB SNR). Writes ``OUT/prompts.jsonl``,
``OUT/systems/<name>/clips/<id>.wav``, ``OUT/systems-<degradation>/...`` and ``OUT/benchmark.json`` (rates, which
prompts each system follows, verification counts). An existing ``OUT/benchmark.json`` is reused (nothing re-rendered).

**Evaluate** (``--evaluate``): ``paraspeechclap.ttseval.evaluate_systems`` with the ``mini`` model in fp32 on the clean
systems (robustness set: the perturbations of ``adh100``'s clips) and on each degraded set; checks that every score
ranks the systems exactly (Spearman with the known rates) with non-overlapping intervals between neighbours; times the
clean run from a cold embedding cache; writes the reports to ``OUT/reports/`` and the summary to
``--results/tts-eval-<date>-<commit>.{json,md}``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

RATES = (1.0, 0.75, 0.5, 0.25, 0.0)
DEGRADATIONS = ("telephone", "noise")
#: the synth attribute each caption attribute (the mini model's table) is rendered from, and its level names
SYNTH_ATTRIBUTE = {"gender": "gender", "pitch": "pitch", "rate": "rate", "range": "range",
                   "voice_quality": "quality", "delivery": "delivery"}
CLASS_OF_LEVEL = {"pitch": {"low": "deep", "medium": "medium-pitched", "high": "high-pitched"},
                  "quality": {"normal": "normal", "whispered": "whispered", "creaky": "vocal-fry"}}
#: a non-adherent rendering moves each named attribute to one of these levels (random among several)
FLIP = {"gender": {"male": ["female"], "female": ["male"]},
        "pitch": {"low": ["high"], "high": ["low"], "medium": ["low", "high"]},
        "rate": {"slow": ["fast"], "fast": ["slow"], "measured": ["slow", "fast"]},
        "range": {"monotonous": ["singsong"], "singsong": ["monotonous"]},
        "quality": {"whispered": ["normal"], "normal": ["creaky"], "creaky": ["normal"]},
        "delivery": {"flowing": ["hesitant", "punctuated"], "hesitant": ["flowing"], "punctuated": ["flowing"]}}
#: synth.verify.check_row's names
CHECK_NAME = {"gender": "gender", "pitch": "pitch", "rate": "rate", "range": "range", "quality": "voice_quality",
              "delivery": "delivery"}
MAX_TRIES = 5


def system_name(rate: float) -> str:
    return f"adh{int(round(rate * 100)):03d}"


def class_of(attr: str, level: str) -> str:
    return CLASS_OF_LEVEL.get(attr, {}).get(level, level)


# ---------------------------------------------------------------------------------------------- planning
def plan_prompts(n: int, rng: np.random.Generator) -> list[dict]:
    """Prompt styles, sentences and captions (held-out wording and sentences); labels are the intended classes of
    the attributes the caption names (parsed with the counterfactual table and checked against the levels)."""
    from paraspeechclap.synth import styles as S
    from paraspeechclap.synth.captions import full_caption, make_sentence
    from paraspeechclap.synth.generate import WORDS_BY_RATE, _choice
    from paraspeechclap.ttseval.counterfactual import packaged_table

    table = packaged_table()
    prompts = []
    for i in range(n):
        a = {k: _choice(rng, S.LEVEL_PROBS[k]) for k in ("gender", "pitch", "rate", "range", "quality", "delivery")}
        if a["quality"] == "creaky":
            a["range"] = "neutral"  # as the corpus: the creak's flutter makes the range unmeasurable
        lo, hi = WORDS_BY_RATE[a["rate"]]
        if a["delivery"] != "flowing":
            lo, hi = max(5, lo - 1), max(6, hi - 3)
        sentence = make_sentence(rng, (lo, hi), test_pool=True)
        caption = full_caption(a, True, rng)
        named = table.parse(caption).classes
        labels = {attr: class_of(SYNTH_ATTRIBUTE[attr], a[SYNTH_ATTRIBUTE[attr]]) for attr in named}
        for attr, cls in named.items():
            if cls != labels[attr] and labels[attr] not in table.equivalents(cls):
                raise RuntimeError(f"caption {caption!r}: names {cls} for {attr}, the style is {labels[attr]}")
        prompts.append({"id": f"{i:06d}", "caption": caption, "transcript": sentence[0].upper() + sentence[1:] + ".",
                        "labels": labels, "_attrs": a, "_sentence": sentence})
    return prompts


def rendered_style(prompt: dict, adherent: bool, rng: np.random.Generator) -> dict:
    """The levels a rendering uses: the prompt's, or with every attribute the caption names moved to another level
    (the others stay the prompt's, so adherent and non-adherent renderings differ in the named attributes only)."""
    a = dict(prompt["_attrs"])
    if adherent:
        return a
    for attr in (SYNTH_ATTRIBUTE[name] for name in prompt["labels"]):
        options = FLIP[attr][a[attr]]
        a[attr] = options[int(rng.integers(len(options)))]
    if a["quality"] == "creaky":
        a["range"] = "neutral"
    return a


def make_job(prompt: dict, style: dict, index: int, voices: list, calib: dict, rng: np.random.Generator) -> dict:
    """A job for synth's renderer (the fields ``synth.generate.plan_clips`` writes) of ``prompt``'s sentence in
    ``style``, with a held-out voice of the style's gender that reaches the drawn pitch."""
    import math
    from dataclasses import asdict

    from paraspeechclap.synth import styles as S
    from paraspeechclap.synth.augment import PROFILES
    from paraspeechclap.synth.captions import make_spoken
    from paraspeechclap.synth.engines import variant_name
    from paraspeechclap.synth.generate import pitch_param_for

    a = dict(style)
    pool = [v for v in voices if v.gender == a["gender"]]
    for _ in range(50):
        voice = pool[int(rng.integers(len(pool)))]
        lo, hi = S.PITCH_TARGET_ST[a["pitch"]]
        a["pitch_offset_st"] = round(float(rng.uniform(lo, hi)), 3)
        j = PROFILES["test"]["jitter"]
        jitter = float(2 ** rng.uniform(math.log2(1 - j), math.log2(1 + j)))
        target = S.GENDER_CENTRE_HZ[a["gender"]] * 2 ** (a["pitch_offset_st"] / 12) / jitter
        p = pitch_param_for(calib, voice.name, a["range"], target)
        if p is not None:
            break
    else:
        raise RuntimeError(f"prompt {prompt['id']}: no voice reaches the pitch of {a}")
    spoken = make_spoken(prompt["_sentence"], a["delivery"], rng)
    accent = S.ACCENTS_TEST[int(rng.integers(len(S.ACCENTS_TEST)))]
    intrinsic, situational = S.tags_for(a)
    return {"index": index, "split": "clips", "attrs": a, "voice": voice.name, "engine": voice.engine,
            "timbre": voice.timbre, "accent": accent, "held_out_voice": True,
            "espeak_voice": f"{accent}+{variant_name(voice.timbre, a['quality'])}", "espeak_pitch": p,
            "espeak_wpm": int(rng.integers(*S.RATE_WPM[a["rate"]])),
            "espeak_range": str(rng.choice(S.RANGE_SSML[a["range"]])), "jitter_factor": round(jitter, 5),
            "spoken": asdict(spoken), "intrinsic_tags": intrinsic, "situational_tags": situational,
            "text_description": [prompt["caption"]], "aug_seed": int(rng.integers(2 ** 31 - 1)), "aug_profile": "test"}


def verified(row: dict, prompt: dict) -> bool:
    """Whether synth's label verification confirms every attribute the caption names at its rendered level."""
    from paraspeechclap.synth.verify import check_row

    if "error" in row:
        return False
    checks = check_row(row)
    return all(checks[CHECK_NAME[SYNTH_ATTRIBUTE[attr]]][0] is not False for attr in prompt["labels"])


def render_systems(out: Path, prompts: list[dict], seed: int, workers: int) -> dict:
    """Render every (system, prompt); a rendering whose named attributes fail verification is redone with another
    voice and seed, up to MAX_TRIES times. Returns per system its rate, adherent ids and unverified ids."""
    import shutil
    import tempfile
    from multiprocessing import get_context

    from tqdm import tqdm

    from paraspeechclap.synth import styles as S
    from paraspeechclap.synth.engines import prepare_espeak_data
    # synth's own worker set-up and render loop (a failed clip comes back as {"error": ...}); importable in the spawned
    # workers, which a function of this script (loaded by path, e.g. by the tests) would not be
    from paraspeechclap.synth.generate import _init_worker, _render_star, calibrate_voices

    voices = [v for v in S.all_voices(False) if v.held_out]
    systems = {}
    for k, rate in enumerate(RATES):
        order = np.random.default_rng([seed, k]).permutation(len(prompts))
        systems[system_name(rate)] = {"rate": rate, "adherent": sorted(prompts[i]["id"] for i in
                                                                       order[:int(round(rate * len(prompts)))])}
    todo = [(name, i, 0) for name in systems for i in range(len(prompts))]
    scratch = Path(tempfile.mkdtemp(prefix="psc-tts-bench-"))
    try:
        data_path = str(prepare_espeak_data(scratch, [v.timbre for v in voices]))
        with get_context("spawn").Pool(max(1, workers), initializer=_init_worker, initargs=(data_path,)) as pool:
            calib = calibrate_voices(voices, pool, progress=True)
            while todo:
                tasks, keys = [], []
                for name, i, attempt in todo:
                    rng = np.random.default_rng([seed, RATES.index(systems[name]["rate"]), i, attempt])
                    style = rendered_style(prompts[i], prompts[i]["id"] in systems[name]["adherent"], rng)
                    tasks.append((make_job(prompts[i], style, i, voices, calib, rng), str(out / "systems" / name)))
                    keys.append((name, i, attempt))
                retry = []
                for (name, i, attempt), row in zip(keys, tqdm(pool.imap(_render_star, tasks, chunksize=4),
                                                              total=len(tasks), desc="rendering")):
                    if verified(row, prompts[i]):
                        continue
                    if attempt + 1 < MAX_TRIES:
                        retry.append((name, i, attempt + 1))
                    else:
                        systems[name].setdefault("unverified", []).append(prompts[i]["id"])
                todo = retry
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return systems


# ---------------------------------------------------------------------------------------------- degradations
def degrade(wave: np.ndarray, sr: int, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, int, str]:
    """``(samples, rate, soundfile subtype)`` of a degraded clip: ``telephone`` is 8 kHz mu-law (G.711-like: the
    band above 4 kHz is gone and the samples are 8-bit companded); ``noise`` adds white noise at 10 dB SNR over the
    active speech level (synth's level meter)."""
    import soxr

    from paraspeechclap.synth.augment import add_noise

    if kind == "telephone":
        return np.clip(soxr.resample(wave, sr, 8000, quality="HQ"), -1, 1).astype(np.float32), 8000, "ULAW"
    if kind == "noise":
        noisy = add_noise(wave, rng, 10.0, "white")
        return (noisy * min(1.0, 0.98 / max(1e-9, float(np.max(np.abs(noisy)))))).astype(np.float32), sr, "PCM_16"
    raise ValueError(f"unknown degradation {kind!r} (known: {', '.join(DEGRADATIONS)})")


def write_degraded(out: Path, systems: dict, kind: str, seed: int) -> None:
    """``OUT/systems-<kind>/<system>/clips/<id>.wav`` for every clip of every system."""
    import soundfile as sf

    from paraspeechclap.fileio import atomic_write

    for k, name in enumerate(systems):
        for path in sorted((out / "systems" / name / "clips").glob("*.wav")):
            wave, sr = sf.read(str(path), dtype="float32")
            y, rate, subtype = degrade(wave, sr, kind, np.random.default_rng([seed, k, int(path.stem)]))
            target = out / f"systems-{kind}" / name / "clips" / path.name
            atomic_write(target, lambda handle: sf.write(handle, y, rate, subtype=subtype, format="WAV"), binary=True)


def build(out: Path, n_prompts: int, seed: int, workers: int) -> dict:
    """Prompts, the five systems and their degraded copies; ``OUT/benchmark.json`` (written last) says what is
    there. Reused when it exists."""
    from paraspeechclap.fileio import atomic_write_json, atomic_write_text

    record = out / "benchmark.json"
    if record.is_file():
        return json.loads(record.read_text(encoding="utf-8"))
    if (out / "prompts.jsonl").exists() or (out / "systems").exists():
        raise SystemExit(f"error: {out} holds a partial build (no benchmark.json); remove it or choose another --out")
    t0 = time.time()
    prompts = plan_prompts(n_prompts, np.random.default_rng([seed, 0]))
    atomic_write_text(out / "prompts.jsonl", "".join(json.dumps({k: v for k, v in p.items() if not k.startswith("_")})
                                                     + "\n" for p in prompts))
    systems = render_systems(out, prompts, seed, workers)
    for kind in DEGRADATIONS:
        write_degraded(out, systems, kind, seed)
    doc = {"prompts": n_prompts, "seed": seed, "systems": systems, "degradations": list(DEGRADATIONS),
           "build_seconds": round(time.time() - t0, 1),
           "unverified": {name: len(s.get("unverified", [])) for name, s in systems.items()}}
    atomic_write_json(record, doc)
    return doc


# ---------------------------------------------------------------------------------------------- evaluation
SCORE_NAMES = ("cosine", "contrastive", "attribute")


def harness():
    """``benchmarks/harness.py`` (machine info, revision, result files), imported by path: scripts are no package."""
    repo = Path(__file__).resolve().parents[1]
    if str(repo / "benchmarks") not in sys.path:
        sys.path.insert(0, str(repo / "benchmarks"))
    import harness as h

    return h


def ranking_checks(doc: dict, rates: dict[str, float], view: str) -> dict:
    """Per score: Spearman of the systems' means with the known rates, exact order, marginal interval overlap between
    neighbours (by rate), and ties of the paired ranking."""
    from scipy.stats import spearmanr

    out = {}
    by_rate = sorted(rates, key=lambda s: -rates[s])
    for score in SCORE_NAMES:
        block = doc["views"][view]["scores"][score]
        means = [block["systems"][s]["mean"] for s in by_rate]
        overlaps = [block["systems"][hi]["lo"] <= block["systems"][lo]["hi"] for hi, lo in zip(by_rate, by_rate[1:])]
        out[score] = {
            "spearman": float(spearmanr([rates[s] for s in by_rate], means)[0]),
            "exact_order": all(a > b for a, b in zip(means, means[1:])),
            "neighbours_overlap": overlaps, "non_overlapping": not any(overlaps),
            "paired_ties": {s: block["ranking"][s]["tied_with"] for s in by_rate if block["ranking"][s]["tied_with"]},
            "systems": {s: block["systems"][s] for s in by_rate},
        }
    return out


def run_eval(out: Path, doc: dict, folder: str, model, cache: Path, report: str, **options) -> tuple[dict, float]:
    """One ``evaluate_systems`` over ``OUT/<folder>/<system>/clips``; its report goes to ``OUT/reports/<report>``."""
    from paraspeechclap.ttseval import evaluate_systems

    systems = {name: out / folder / name / "clips" for name in doc["systems"]}
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = evaluate_systems(out / "prompts.jsonl", systems, model, cache_dir=cache, **options)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    result.write_report(out / "reports" / report)
    result.doc["cpu_s"] = round(cpu, 2)  # all threads of this process: on 2 quiet cores about twice the wall time
    return result.doc, seconds


def evaluate(out: Path, doc: dict, results_dir: Path, timing_only: bool = False) -> int:
    """The benchmark with the mini model in fp32: clean (cold cache, timed; warm rerun; robustness) and degraded;
    ``timing_only``: the two timed runs of the clean systems only (results tagged ``timing``)."""
    import tempfile

    from paraspeechclap import ParaSpeechCLAP

    h = harness()
    rates = {name: s["rate"] for name, s in doc["systems"].items()}
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    model = ParaSpeechCLAP.from_pretrained("mini", precision="fp32")
    load_s = time.perf_counter() - t0
    result: dict = {"date": h.now(), "revision": h.git_revision(), "machine": h.machine_info(),
                    "command": h.command_line("scripts/build_tts_benchmark.py", sys.argv[1:]),
                    "prompts": doc["prompts"], "rates": rates, "unverified_renderings": doc["unverified"],
                    "build_seconds": doc.get("build_seconds"), "model_load_s": round(load_s, 2), "runs": {}}
    with tempfile.TemporaryDirectory(prefix="tts-bench-cache-") as cache:
        h.log("clean systems, cold cache")
        clean, cold_s = run_eval(out, doc, "systems", model, Path(cache), "clean")
        _, warm_s = run_eval(out, doc, "systems", model, Path(cache), "clean-warm")
        result["timing"] = {"cold_s": round(cold_s, 2), "cold_cpu_s": clean["cpu_s"], "warm_s": round(warm_s, 2),
                            "clips": len(clean["clips"]), "cold_with_model_load_s": round(cold_s + load_s, 2),
                            "load_average_before": load_before, "load_average_after": os.getloadavg()}
        result["signature"] = clean["signature"]
        result["runs"]["clean"] = {v: ranking_checks(clean, rates, v) for v in ("all", "gated")}
        result["flagged"] = {"clean": {n: s["flagged"] for n, s in clean["systems"].items()}}
        if not timing_only:
            _robustness_and_degradations(out, doc, model, Path(cache), rates, result, h)
    stem = h.result_stem("tts-eval", None, "timing" if timing_only else "")
    json_path, md_path = h.write_results(results_dir, stem, result, summary_md(result, h))
    print(summary_md(result, h))
    print(f"results: {json_path}, {md_path}; reports: {out / 'reports'}")
    return 0


def _robustness_and_degradations(out: Path, doc: dict, model, cache: Path, rates: dict, result: dict, h) -> None:
    h.log("robustness set of adh100")
    robust, robust_s = run_eval(out, doc, "systems", model, cache, "clean-robustness", robustness="adh100")
    result["timing"]["robustness_run_s"] = round(robust_s, 2)
    result["robustness"] = {k: robust["robustness"][k] for k in ("reference", "clips", "margin_sd", "overall",
                                                                 "perturbations")}
    for kind in doc["degradations"]:
        h.log(f"degraded systems: {kind}")
        degraded, _ = run_eval(out, doc, f"systems-{kind}", model, cache, kind)
        result["runs"][kind] = {v: ranking_checks(degraded, rates, v) for v in ("all", "gated")}
        result["flagged"][kind] = {n: s["flagged"] for n, s in degraded["systems"].items()}


def summary_md(result: dict, h) -> str:
    """The results as Markdown: timing, per run and score the ranking checks, the robustness shares."""
    lines = [f"# tts-eval benchmark, {result['date']} ({result['revision']})", "", h.machine_line(result["machine"]), "",
        f"Signature: `{result['signature']}`", "",
        f"{result['prompts']} prompts x {len(result['rates'])} systems ({result['timing']['clips']} clips); "
        f"unverified renderings: {result['unverified_renderings']}. Cold cache {result['timing']['cold_s']} s "
        f"({result['timing']['cold_cpu_s']} CPU-s; + model load {result['model_load_s']} s), warm "
        f"{result['timing']['warm_s']} s; load average before {h.fmt(result['timing']['load_average_before'][0])}, "
        f"after the timed runs {h.fmt(result['timing']['load_average_after'][0])}.", ""]
    rows = []
    for run, views in result["runs"].items():
        for view, checks in views.items():
            for score, c in checks.items():
                means = ", ".join(f"{s} {h.fmt(v['mean'], '.3f')} [{h.fmt(v['lo'], '.3f')}, {h.fmt(v['hi'], '.3f')}]"
                                  for s, v in c["systems"].items())
                rows.append([run, view, score, h.fmt(c["spearman"], ".3f"), h.met_cell(c["exact_order"]),
                             h.met_cell(c["non_overlapping"]), means])
    lines += h.markdown_table(["run", "view", "score", "Spearman", "exact order", "neighbours apart",
                               "mean [95% CI] by known rate"], rows) + [""]
    if "robustness" not in result:
        return "\n".join(lines) + "\n"
    rob = result["robustness"]
    rows = [[name] + [f"{100 * entry[s]['raised_share']:.1f} %" for s in SCORE_NAMES]
            + [f"{100 * entry['flagged_share']:.0f} %"] for name, entry in rob["perturbations"].items()]
    rows.append(["all"] + [f"{100 * rob['overall'][s]['raised_share']:.1f} %" for s in SCORE_NAMES] + [""])
    lines += [f"Robustness: {rob['clips']} clips of {rob['reference']}, share raised by more than "
              f"{rob['margin_sd']} SD of the score:", ""]
    lines += h.markdown_table(["perturbation", *SCORE_NAMES, "flagged by a gate"], rows)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("data/tts-bench"))
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--evaluate", action="store_true", help="run the benchmark on the built systems")
    ap.add_argument("--timing-only", action="store_true", help="with --evaluate: only the timed clean runs")
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results"), help="where the summary goes")
    args = ap.parse_args(argv)
    doc = build(args.out, args.prompts, args.seed, args.workers)
    print(f"{doc['prompts']} prompts, systems {', '.join(doc['systems'])}; unverified renderings {doc['unverified']}")
    if args.evaluate:
        return evaluate(args.out, doc, args.results, timing_only=args.timing_only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
