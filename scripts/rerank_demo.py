#!/usr/bin/env python
"""Offline best-of-N demonstration: does reranking with the model pick candidates closer to the style?

For each style caption (x a few sentences), espeak-ng generates N candidates with a random pitch,
speaking rate, pitch range and voice each (seeded). The candidates are written in the ParaSpeechCaps
TTS output layout and reranked with ``paraspeechclap.rerank`` (the same code as ``paraspeechclap
rerank``). Each candidate is then measured acoustically (F0 median, speaking rate, F0 range,
voicing: ``paraspeechclap.synth.measure``) and given a *style-match score*: the mean, over the
attributes the caption asks for, of the signed z-score of that attribute (z over all candidates of
the run; + when it moves the requested way; an undefined value, e.g. the F0 of a whisper, counts 0).

Reported, averaged over prompts: the match of a random pick (the mean over candidates), of the
model's best-of-n pick for n = 1..N (computed exactly over all n-subsets; n = N is the pick over
all), and of the oracle (the best-matching candidate); the gain over random with a bootstrap 95%
interval over prompts; and the per-attribute gain in natural units. Writes a Markdown summary to
stdout, and ``demo.json``, ``curve.png`` and the layout/rerank folders under ``--out``.

    python scripts/rerank_demo.py --model mini --out runs/rerank_demo
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

# Caption -> attributes it asks for: +1 more / higher, -1 less / lower.
#   f0: F0 median (semitones re 100 Hz); rate: syllables per second of active speech;
#   range: F0 10th-90th percentile spread (semitones); voicing: voiced fraction of active time.
# Pitch requests name a gender, so that absolute F0 and a gender-relative reading of "deep" / "high"
# (ParaSpeechCaps' pitch tags are relative to the speaker's gender) point the same way.
CAPTIONS: list[tuple[str, dict[str, int]]] = [
    ("A deep male voice speaking slowly.", {"f0": -1, "rate": -1}),
    ("A high-pitched female voice talking fast.", {"f0": +1, "rate": +1}),
    ("A man speaking in a low, monotonous voice.", {"f0": -1, "range": -1}),
    ("A woman with a high, expressive, singsong voice.", {"f0": +1, "range": +1}),
    ("A whispered voice.", {"voicing": -1}),
    ("A man talks quickly in a flat, monotonous voice.", {"rate": +1, "range": -1}),
    ("A woman speaks slowly in a lively, singsong voice.", {"rate": -1, "range": +1}),
    ("A high-pitched woman speaking slowly and deliberately.", {"f0": +1, "rate": -1}),
]
FEATURES = ("f0", "rate", "range", "voicing")
UNITS = {"f0": "st", "rate": "syl/s", "range": "st", "voicing": "fraction"}
# Sentences written for this demo (not from the synthetic training corpus's word bank).
SENTENCES = [
    "Please remember to water the tomato plants before you leave for the airport.",
    "The lighthouse keeper counted seven ships passing through the narrow channel.",
    "We could hear the orchestra tuning up behind the heavy velvet curtain.",
    "Nobody expected the quiz to be that difficult on a Friday afternoon.",
]
# espeak-ng voices for candidates: held-out timbres of the synthetic corpus plus two whisper variants
# ("robert" is left out: Praat's pitch tracker halves/doubles on it at low pitch settings).
VOICES = ["en-us+m3", "en-us+m7", "en-us+Hugo", "en-us+norbert", "en-us+f4", "en-us+Andrea",
          "en-us+linda", "en-us+whisper", "en-us+whisperf"]
RANGES = ["0%", "20%", "50%", "100%", "150%", "200%", "250%"]


def sample_settings(rng: np.random.Generator) -> dict:
    """Random synthesis settings for one candidate."""
    return {
        "voice": VOICES[int(rng.integers(len(VOICES)))],
        "pitch": int(rng.integers(15, 100)),  # lower settings fall under the 55 Hz pitch floor
        "wpm": int(rng.integers(80, 321)),
        "range": RANGES[int(rng.integers(len(RANGES)))],
    }


def synthesize(text: str, settings: dict) -> tuple[np.ndarray, int]:
    """espeak-ng audio for ``text`` with ``settings`` (voice, pitch 0-99, wpm, SSML range)."""
    from paraspeechclap.synth.engines import build_ssml, synthesize as espeak, text_to_ssml

    ssml = build_ssml(text_to_ssml(text), settings["range"])
    return espeak("espeak", settings["voice"], ssml, settings["pitch"], settings["wpm"])


def measure(y: np.ndarray, sr: int, text: str) -> dict[str, float]:
    """The four style features of one clip (NaN where undefined).

    The definitions of ``paraspeechclap.synth.measure.measure_clip`` (same activity detector, Praat
    autocorrelation pitch at 10 ms, 55-600 Hz), without its jitter/HNR, which cost 10x the time.
    """
    import parselmouth

    from paraspeechclap.synth.measure import FRAME_S, activity
    from paraspeechclap.synth.styles import count_syllables

    y = np.asarray(y, dtype=np.float64)
    act = activity(y, sr)
    pitch = parselmouth.Sound(y, sampling_frequency=sr).to_pitch_ac(
        time_step=FRAME_S, pitch_floor=55.0, pitch_ceiling=600.0
    )
    f0 = pitch.selected_array["frequency"]
    voiced = f0 > 0
    mask = act["active_mask"]
    active = mask[np.clip(np.round(pitch.xs() / FRAME_S).astype(int), 0, len(mask) - 1)]
    voicing = float((voiced & active).sum() / active.sum()) if active.any() else 0.0
    f0_hz = f0_st = f0_range = math.nan
    if voiced.sum() >= 10:
        f0_hz = float(np.median(f0[voiced]))
        st = 12 * np.log2(f0[voiced] / f0_hz)
        f0_range = float(np.percentile(st, 90) - np.percentile(st, 10))
        f0_st = 12 * math.log2(f0_hz / 100.0)
    syllables = count_syllables(text)
    rate = syllables / act["active_s"] if act["active_s"] > 0.2 else math.nan
    return {"f0": f0_st, "rate": rate, "range": f0_range, "voicing": voicing, "f0_hz": f0_hz}


def standardise(values: np.ndarray, clip: float = 3.0) -> np.ndarray:
    """z-scores of each column over all finite entries, clipped to +-``clip`` (NaN stays NaN)."""
    mean = np.nanmean(values, axis=0)
    std = np.nanstd(values, axis=0)
    return np.clip((values - mean) / np.where(std > 0, std, 1.0), -clip, clip)


def match_scores(z: np.ndarray, targets: list[dict[str, int]], prompt_of: np.ndarray) -> np.ndarray:
    """Style match of each candidate: mean signed z over its prompt's requested features (NaN -> 0)."""
    out = np.zeros(len(z))
    for k in range(len(z)):
        target = targets[prompt_of[k]]
        vals = [sign * z[k, FEATURES.index(f)] for f, sign in target.items()]
        out[k] = float(np.mean([0.0 if not math.isfinite(v) else v for v in vals]))
    return out


def summarise(scores: np.ndarray, quality: np.ndarray, seed: int = 0, boot: int = 2000,
              control_scores: np.ndarray | None = None) -> dict:
    """Curves and gains from model scores and style-match quality, both [prompts, N].

    ``control_scores`` [prompts, K, N]: the same model's scores of each prompt's candidates against K
    *other* prompts' captions. Picking with them measures what a caption-blind preference of the
    model (e.g. for low voices) gains by itself; ``caption_specific_gain`` is the gain beyond it.
    """
    from paraspeechclap.rerank.curve import best_of_n_curve

    curves = np.array([best_of_n_curve(s, q) for s, q in zip(scores, quality)])  # [P, N]
    oracle = quality.max(axis=1)
    random_pick = curves[:, 0]
    picked = curves[:, -1]
    gain = picked - random_pick
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(gain), size=(boot, len(gain)))
    boot_means = gain[idx].mean(axis=1)
    headroom = float(np.mean(oracle - random_pick))
    # null: a scorer that ranks candidates at random (uniform pick per prompt), same prompts
    null_picks = rng.random((boot, *quality.shape)).argmax(axis=2)
    null_gain = (np.take_along_axis(quality[None], null_picks[..., None], axis=2)[..., 0] - random_pick).mean(axis=1)
    control = {}
    if control_scores is not None:
        control_curves = np.array([
            np.mean([best_of_n_curve(c, q) for c in cs], axis=0) for cs, q in zip(control_scores, quality)
        ])
        control_gain = control_curves[:, -1] - random_pick
        specific = gain - control_gain
        boot_specific = specific[idx].mean(axis=1)
        control = {
            "control_curve": control_curves.mean(axis=0).tolist(),
            "control_gain": float(control_gain.mean()),
            "caption_specific_gain": float(specific.mean()),
            "caption_specific_gain_ci95": [float(np.percentile(boot_specific, 2.5)),
                                           float(np.percentile(boot_specific, 97.5))],
        }
    return {
        "prompts": int(len(gain)),
        "n": int(scores.shape[1]),
        "curve": curves.mean(axis=0).tolist(),
        "curve_se": (curves.std(axis=0, ddof=1) / math.sqrt(len(gain))).tolist() if len(gain) > 1 else None,
        "oracle_curve": np.array([best_of_n_curve(q, q) for q in quality]).mean(axis=0).tolist(),
        "random": float(random_pick.mean()),
        "picked": float(picked.mean()),
        "oracle": float(oracle.mean()),
        "gain": float(gain.mean()),
        "gain_ci95": [float(np.percentile(boot_means, 2.5)), float(np.percentile(boot_means, 97.5))],
        "fraction_of_oracle_gain": float(gain.mean() / headroom) if headroom > 0 else None,
        "prompts_pick_beats_random": int((gain > 0).sum()),
        "p_value_vs_random_scorer": float((1 + (null_gain >= gain.mean() - 1e-12).sum()) / (1 + boot)),
        "gain_per_prompt": gain.tolist(),
        **control,
    }


def attribute_gains(features: np.ndarray, targets: list[dict[str, int]], chosen: np.ndarray) -> dict:
    """Per attribute, in its own units: requested direction x (picked value - mean over candidates).

    ``features`` is [P, N, F]; averaged over the prompts that ask for the attribute (prompts whose
    pick has no value for it, e.g. a whisper for a pitch request, are counted separately).
    """
    out = {}
    for f_idx, name in enumerate(FEATURES):
        gains, undefined = [], 0
        for p, target in enumerate(targets):
            if name not in target:
                continue
            row = features[p, :, f_idx]
            value = row[chosen[p]]
            if not math.isfinite(value) or not np.isfinite(row).any():
                undefined += 1
                continue
            gains.append(target[name] * (value - np.nanmean(row)))
        if gains or undefined:
            out[name] = {
                "unit": UNITS[name],
                "prompts": len(gains) + undefined,
                "mean_gain": float(np.mean(gains)) if gains else None,
                "pick_undefined": undefined,
            }
    return out


def plot_curve(summary: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = np.arange(1, summary["n"] + 1)
    curve = np.array(summary["curve"])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(n, curve, "o-", label="model's best-of-n pick")
    if summary["curve_se"] is not None:
        se = np.array(summary["curve_se"])
        ax.fill_between(n, curve - se, curve + se, alpha=0.2, label="+-1 s.e. over prompts")
    if "control_curve" in summary:
        ax.plot(n, summary["control_curve"], "^-.", color="tab:orange", alpha=0.8,
                label="same model, another prompt's caption")
    ax.plot(n, summary["oracle_curve"], "s--", color="grey", label="oracle (best match of n)")
    ax.axhline(summary["random"], color="k", lw=0.8, ls=":", label="random pick")
    ax.set_xlabel("n (candidates drawn)")
    ax.set_ylabel("style match (mean signed z)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def generate_layout(out: Path, prompts: list[tuple[str, str]], n: int, seed: int, workers: int) -> list:
    """Write ``out/iter_k/audios/i.wav`` and ``iter_1/input_descriptions.txt``; return settings [P][N]."""
    import soundfile as sf
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    settings = [[sample_settings(rng) for _ in range(n)] for _ in prompts]
    for k in range(1, n + 1):
        (out / f"iter_{k}" / "audios").mkdir(parents=True, exist_ok=True)
    (out / "iter_1" / "input_descriptions.txt").write_text("".join(c + "\n" for c, _ in prompts))
    (out / "iter_1" / "input_texts.txt").write_text("".join(t + "\n" for _, t in prompts))
    jobs = [(p, k) for p in range(len(prompts)) for k in range(n)]

    def work(job):
        p, k = job
        y, sr = synthesize(prompts[p][1], settings[p][k])
        sf.write(out / f"iter_{k + 1}" / "audios" / f"{p}.wav", y, sr)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(tqdm(pool.map(work, jobs), total=len(jobs), desc="espeak-ng candidates", unit="clip"))
    return settings


def load_model(args: argparse.Namespace):
    from paraspeechclap.modelspec import ModelSpec

    return ModelSpec.from_args(args).load()


def run_demo(args: argparse.Namespace, model=None) -> dict:
    """The whole demonstration; returns the JSON document (also written to ``out/demo.json``)."""
    import soundfile as sf
    from tqdm.auto import tqdm

    from paraspeechclap.rerank import read_layout, rerank_input, write_outputs

    started = time.time()
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if model is None else None
    out = Path(args.out)
    captions = CAPTIONS[: args.captions]
    prompts = [(c, SENTENCES[r % len(SENTENCES)]) for r in range(args.repeats) for c, _ in captions]
    targets = [t for _ in range(args.repeats) for _, t in captions]
    layout = out / "tts"
    if layout.exists():
        shutil.rmtree(layout)
    settings = generate_layout(layout, prompts, args.n, args.seed, args.workers)

    model = model if model is not None else load_model(args)
    data = read_layout(layout)
    if data.issues:
        raise RuntimeError("generated layout has problems: " + "; ".join(data.issues))
    results = rerank_input(model, data, batch_size=args.batch_size, show_progress=True)
    rerank_dir = out / "rerank"
    if rerank_dir.exists():
        shutil.rmtree(rerank_dir)
    write_outputs(rerank_dir, data, results, meta={"tool": "scripts/rerank_demo.py", "model": args.model})
    scores = np.array([[float(s) for s in r.scores] for r in results])  # [P, N]
    chosen = np.array([r.selection.chosen for r in results])
    # every candidate against every caption, for the caption-blind control
    audio_emb = np.asarray(model.embed_audio(
        [str(layout / f"iter_{k + 1}" / "audios" / f"{p}.wav") for p in range(len(prompts)) for k in range(args.n)],
        batch_size=args.batch_size))
    caption_list = [c for c, _ in captions]
    all_scores = (audio_emb @ np.asarray(model.embed_text(caption_list)).T).reshape(len(prompts), args.n, -1)
    own = np.array([caption_list.index(c) for c, _ in prompts])
    consistency = float(np.max(np.abs(all_scores[np.arange(len(prompts)), :, own] - scores)))
    control_scores = np.stack([
        all_scores[p][:, [c for c in range(len(caption_list)) if c != own[p]]].T for p in range(len(prompts))
    ])  # [P, C-1, N]

    P, N = len(prompts), args.n
    feats = np.full((P, N, len(FEATURES)), np.nan)
    f0_hz = np.full((P, N), np.nan)
    for p in tqdm(range(P), desc="measuring", unit="prompt"):
        for k in range(N):
            y, sr = sf.read(layout / f"iter_{k + 1}" / "audios" / f"{p}.wav", dtype="float32")
            m = measure(y, sr, prompts[p][1])
            feats[p, k] = [m[f] for f in FEATURES]
            f0_hz[p, k] = m["f0_hz"]
    z = standardise(feats.reshape(P * N, -1))
    quality = match_scores(z, targets, np.repeat(np.arange(P), N)).reshape(P, N)
    summary = summarise(scores, quality, seed=args.seed, control_scores=control_scores)
    summary["rerank_vs_direct_max_abs_diff"] = consistency
    doc = {
        "command": command,
        "model": args.model,
        "seed": args.seed,
        "n": N,
        "captions": [c for c, _ in captions],
        "repeats": args.repeats,
        "summary": summary,
        "attributes": attribute_gains(feats, targets, chosen),
        "per_caption": per_caption_table(prompts, targets, quality, scores, chosen),
        "seconds": round(time.time() - started, 1),
        "prompts": [
            {
                "caption": prompts[p][0],
                "text": prompts[p][1],
                "target": targets[p],
                "chosen": int(chosen[p]),
                "candidates": [
                    {
                        "settings": settings[p][k],
                        "score": float(scores[p, k]),
                        "match": float(quality[p, k]),
                        **{f: (None if not math.isfinite(feats[p, k, i]) else float(feats[p, k, i]))
                           for i, f in enumerate(FEATURES)},
                        "f0_hz": None if not math.isfinite(f0_hz[p, k]) else float(f0_hz[p, k]),
                    }
                    for k in range(N)
                ],
            }
            for p in range(P)
        ],
    }
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "demo.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(out / "demo.json")
    label = Path(args.model).name if Path(args.model).exists() else args.model
    plot_curve(summary, out / "curve.png", f"best-of-n with {label}: {P} prompts, espeak-ng candidates")
    return doc


def per_caption_table(prompts, targets, quality, scores, chosen) -> list[dict]:
    """Per caption (over its repeats): random, picked and oracle style match."""
    rows = []
    for caption in dict.fromkeys(c for c, _ in prompts):
        ps = [p for p in range(len(prompts)) if prompts[p][0] == caption]
        rows.append({
            "caption": caption,
            "prompts": len(ps),
            "random": float(np.mean([quality[p].mean() for p in ps])),
            "picked": float(np.mean([quality[p, chosen[p]] for p in ps])),
            "oracle": float(np.mean([quality[p].max() for p in ps])),
        })
    return rows


def markdown(doc: dict) -> str:
    s = doc["summary"]
    lines = [
        f"### Best-of-{s['n']} reranking with `{doc['model']}` on espeak-ng candidates",
        "",
        f"{s['prompts']} prompts ({len(doc['captions'])} style captions x {doc['repeats']} sentences), "
        f"{s['n']} candidates each with random pitch, rate, pitch range and voice (seed {doc['seed']}). "
        "Style match = mean signed z-score of the requested attributes (F0 median, speaking rate, "
        "F0 range, voicing), measured acoustically.",
        "",
        "| pick | style match (z) |",
        "|---|---|",
        f"| random candidate | {s['random']:+.3f} |",
        f"| model, best of {s['n']} | {s['picked']:+.3f} |",
        f"| oracle (best-matching candidate) | {s['oracle']:+.3f} |",
        "",
        f"**Gain over a random pick: {s['gain']:+.3f} z** (95% bootstrap CI {s['gain_ci95'][0]:+.3f} .. "
        f"{s['gain_ci95'][1]:+.3f}), "
        + (f"{100 * s['fraction_of_oracle_gain']:.0f}% of the oracle's gain; "
           if s["fraction_of_oracle_gain"] is not None else "")
        + f"the pick beats the random-pick average in {s['prompts_pick_beats_random']}/{s['prompts']} prompts; "
        f"a scorer ranking at random does as well with p = {s['p_value_vs_random_scorer']:.4f}.",
        *([
            "",
            f"Control: the same model ranking each prompt's candidates by *another* prompt's caption gains "
            f"{s['control_gain']:+.3f} z (a caption-blind preference); **the caption-specific gain is "
            f"{s['caption_specific_gain']:+.3f} z** (95% CI {s['caption_specific_gain_ci95'][0]:+.3f} .. "
            f"{s['caption_specific_gain_ci95'][1]:+.3f}).",
        ] if "control_gain" in s else []),
        "",
        "Best-of-n curve (expected style match of the model's pick among n random candidates, exact over subsets): "
        + ", ".join(f"n={i + 1}: {v:+.3f}" for i, v in enumerate(s["curve"])),
        "",
        "| attribute | prompts asking | gain of the pick over the candidates' mean (requested direction) |",
        "|---|---|---|",
    ]
    for name, a in doc["attributes"].items():
        gain = "-" if a["mean_gain"] is None else f"{a['mean_gain']:+.2f} {a['unit']}"
        extra = f" ({a['pick_undefined']} pick(s) without a value)" if a["pick_undefined"] else ""
        lines.append(f"| {name} | {a['prompts']} | {gain}{extra} |")
    lines += ["", "| caption | random | picked | oracle |", "|---|---|---|---|"]
    for row in doc["per_caption"]:
        lines.append(f"| {row['caption']} | {row['random']:+.2f} | {row['picked']:+.2f} | {row['oracle']:+.2f} |")
    if doc.get("command"):
        lines += ["", f"Reproduce: `python scripts/{doc['command']}`"]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/rerank_demo"), help="output folder")
    parser.add_argument("--n", type=int, default=8, help="candidates per prompt (default: 8)")
    parser.add_argument("--captions", type=int, default=len(CAPTIONS), help="use the first K captions")
    parser.add_argument("--repeats", type=int, default=3, help="sentences per caption (default: 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="parallel espeak-ng processes")
    from paraspeechclap.modelspec import ModelSpec  # --model (default mini), --device, --batch-size ...

    ModelSpec.add_arguments(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.captions <= len(CAPTIONS) or args.repeats < 1 or args.n < 2:
        parser.error(f"need 1 <= --captions <= {len(CAPTIONS)}, --repeats >= 1, --n >= 2")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print("error: espeak-ng not found (scripts/install_synth_deps.sh installs it)", file=sys.stderr)
        return 2
    doc = run_demo(args)
    print(markdown(doc))
    print(f"\nwrote {args.out / 'demo.json'} and {args.out / 'curve.png'} ({doc['seconds']} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
