#!/usr/bin/env python
"""Pitch and rate order of a model on recorded human speech of speakers it never saw in training.

    .venv/bin/python scripts/eval_real_speech.py [--model mini] [--manifest data/real-speech/manifest.jsonl]
                                                 [--out reports/mini-real-speech]

Clips: the held-out speakers of ``scripts/real_speech.py`` (run it first; it never uses Debian's
asterisk-core-sounds-en*), ``--clips`` per speaker (1.2-6 s, voiced fraction >= 0.4, spread over the list).
Each clip is made in versions that differ in one attribute:

- pitch, -500 / 0 / +500 cents at constant tempo, two ways: sox ``pitch`` (formants move with F0) and WORLD
  resynthesis (pyworld; F0 scaled, spectral envelope and so formants kept). The 0-cent version goes through the
  same processing. Without pyworld (``pip install pyworld``) the formant-kept shift is Praat PSOLA instead.
- rate: sox ``tempo -s`` 0.7 / 1.0 / 1.5 at constant pitch.

each in full band and in telephone band (300-3400 Hz band-pass). "Pitch order" is the share of pairs (two versions
of one clip) where the lower one scores higher on "deep" minus "high-pitched" (class prompts "A person is speaking
in a {} style."); "rate order" the share where the slower one scores higher on "slow" minus "fast". Target: both
>= 90 % in both bands. Also reported: the same per speaker / per shift method, and the share of clips whose
"deep" minus "high-pitched" score falls strictly monotonically over -500..+500 cents in 5 steps (``--steps``).

Writes ``real_speech.json`` and ``real_speech.md`` to ``--out``; exit code 0 when every target is met.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Iterator

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from real_speech import HELDOUT, load_16k, load_manifest  # noqa: E402

from paraspeechclap.synth.voice_shift import (have_world, praat_pitch, sox_pitch, sox_tempo,  # noqa: E402
                                              telephone_band, trim_silence, world_analyse, world_pitch)

TEMPLATE = "A person is speaking in a {} style."
PITCH_CENTS = [-500, 0, 500]
MONOTONE_CENTS = [-500, -250, 0, 250, 500]
TEMPOS = [0.7, 1.0, 1.5]
BANDS = {"full band": lambda y: y, "telephone band (300-3400 Hz)": telephone_band}
TARGET = 0.90


def pick_clips(rows: list[dict], per_speaker: int, speakers=HELDOUT) -> list[dict]:
    picked = []
    for speaker in speakers:
        mine = [r for r in rows if r["speaker"] == speaker]
        good = [r for r in mine if 1.2 <= r["duration_s"] <= 6.0 and r["voiced_fraction"] >= 0.4] or mine
        good.sort(key=lambda r: r["path"])
        if len(good) > per_speaker:
            idx = np.linspace(0, len(good) - 1, per_speaker).round().astype(int)
            good = [good[i] for i in idx]
        picked += good
    return picked


def pair_order(levels: list[float], scores: list[float]) -> tuple[int, int]:
    """(pairs ordered like the levels, pairs): higher level must have the higher score."""
    pairs = [(a, b) for a, b in itertools.combinations(range(len(levels)), 2) if levels[a] != levels[b]]
    good = sum((levels[a] - levels[b]) * (scores[a] - scores[b]) > 0 for a, b in pairs)
    return good, len(pairs)


def versions(y: np.ndarray) -> dict[str, tuple[list[float], list[np.ndarray]]]:
    """kind -> (levels, waveforms) for one clip (full band)."""
    if have_world():
        analysis = world_analyse(y)
        kept = [world_pitch(y, c, analysis) for c in MONOTONE_CENTS]
    else:  # pyworld missing: Praat PSOLA, also formant-preserving (reported under "world")
        kept = [praat_pitch(y, c if c else 1e-3) for c in MONOTONE_CENTS]
    return {
        "pitch/sox": (MONOTONE_CENTS, [sox_pitch(y, c) if c else sox_pitch(y, 1e-3) for c in MONOTONE_CENTS]),
        "pitch/world": (MONOTONE_CENTS, kept),
        "rate/sox": (TEMPOS, [sox_tempo(y, t) if t != 1.0 else sox_tempo(y, 1.0001) for t in TEMPOS]),
    }


def version_sets(clips: list[dict]) -> Iterator[tuple[dict, list[np.ndarray]]]:
    """(record without a score, waveforms) per clip, kind of version and band: what :func:`summarise` reads once
    each record has a ``score`` per level (also used by scripts/probe_pitch_features.py)."""
    for clip in clips:
        y = trim_silence(load_16k(Path(clip["path"])))
        for kind, (levels, waves) in versions(y).items():
            for band, filt in BANDS.items():
                yield ({"speaker": clip["speaker"], "gender": clip["gender"], "path": clip["path"], "kind": kind,
                        "band": band, "levels": list(levels)}, [filt(w) for w in waves])


def evaluate(model, clips: list[dict], batch_size: int = 16) -> dict:
    prompts = model.embed_prompts(["deep", "high-pitched", "slow", "fast"], TEMPLATE)
    records = []
    for record, waves in version_sets(clips):
        sims = model.embed_waveforms(waves, batch_size=batch_size) @ prompts.T
        # "higher level" must score higher: pitch -> high-pitched minus deep, rate -> fast minus slow
        pitch = record["kind"].startswith("pitch")
        score = sims[:, 1] - sims[:, 0] if pitch else sims[:, 3] - sims[:, 2]
        records.append({**record, "score": score.tolist()})
    return summarise(records)


def summarise(records: list[dict]) -> dict:
    def order(recs, levels_keep):
        good = total = 0
        for r in recs:
            keep = [i for i, level in enumerate(r["levels"]) if level in levels_keep]
            g, n = pair_order([r["levels"][i] for i in keep], [r["score"][i] for i in keep])
            good, total = good + g, total + n
        return (good / total if total else float("nan")), total

    def monotone(recs):
        ok = [all(b > a for a, b in zip(r["score"], r["score"][1:])) for r in recs]
        return float(np.mean(ok)) if ok else float("nan")

    bands = {}
    for band in BANDS:
        in_band = [r for r in records if r["band"] == band]
        pitch = [r for r in in_band if r["kind"].startswith("pitch")]
        rate = [r for r in in_band if r["kind"].startswith("rate")]
        entry = {"pitch_order": order(pitch, PITCH_CENTS), "rate_order": order(rate, TEMPOS),
                 "pitch_order_5_steps": order(pitch, MONOTONE_CENTS), "pitch_monotone_clips": monotone(pitch)}
        for method in ("sox", "world"):
            sub = [r for r in pitch if r["kind"] == f"pitch/{method}"]
            entry[f"pitch_order_{method}"] = order(sub, PITCH_CENTS)
            entry[f"pitch_monotone_{method}"] = monotone(sub)
        for gender in ("male", "female"):
            entry[f"pitch_order_{gender}"] = order([r for r in pitch if r["gender"] == gender], PITCH_CENTS)
            entry[f"rate_order_{gender}"] = order([r for r in rate if r["gender"] == gender], TEMPOS)
        entry["per_speaker"] = {
            s: {"pitch_order": order([r for r in pitch if r["speaker"] == s], PITCH_CENTS)[0],
                "rate_order": order([r for r in rate if r["speaker"] == s], TEMPOS)[0]}
            for s in sorted({r["speaker"] for r in in_band})}
        bands[band] = entry
    met = all(b["pitch_order"][0] >= TARGET and b["rate_order"][0] >= TARGET for b in bands.values())
    speakers = sorted({r["speaker"] for r in records})
    return {"bands": bands, "speakers": speakers, "clips": len({r["path"] for r in records}),
            "targets_met": met, "records": records}


def to_markdown(result: dict, model: str) -> str:
    pct = lambda v: f"{100 * v:.1f}"
    lines = [f"formant-kept shifts: {'WORLD (pyworld)' if have_world() else 'Praat PSOLA (pyworld not installed)'}",
             f"model `{model}`; held-out speakers: {', '.join(result['speakers'])}; {result['clips']} clips", "",
             "| band | pitch order (pairs) | sox pitch | WORLD pitch (formants kept) | male | female "
             "| monotone -500..+500 (5 steps): sox / WORLD | rate order (pairs) |",
             "|---|---|---|---|---|---|---|---|"]
    for band, b in result["bands"].items():
        lines.append(f"| {band} | {pct(b['pitch_order'][0])} ({b['pitch_order'][1]}) | {pct(b['pitch_order_sox'][0])} "
                     f"| {pct(b['pitch_order_world'][0])} | {pct(b['pitch_order_male'][0])} "
                     f"| {pct(b['pitch_order_female'][0])} "
                     f"| {pct(b['pitch_monotone_sox'])} / {pct(b['pitch_monotone_world'])} "
                     f"| {pct(b['rate_order'][0])} ({b['rate_order'][1]}) |")
    lines += ["", "| band | speaker | pitch order | rate order |", "|---|---|---|---|"]
    for band, b in result["bands"].items():
        for s, v in b["per_speaker"].items():
            lines.append(f"| {band} | {s} | {pct(v['pitch_order'])} | {pct(v['rate_order'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mini")
    parser.add_argument("--manifest", default="data/real-speech/manifest.jsonl")
    parser.add_argument("--out", default="reports/mini-real-speech")
    parser.add_argument("--clips", type=int, default=8, help="clips per held-out speaker")
    args = parser.parse_args(argv)
    from paraspeechclap import ParaSpeechCLAP

    rows = load_manifest(args.manifest, split="heldout")
    if not rows:
        raise SystemExit(f"error: no held-out clips in {args.manifest} (run scripts/real_speech.py --install)")
    clips = pick_clips(rows, args.clips)
    model = ParaSpeechCLAP.from_pretrained(args.model, device="cpu", precision="fp32")
    result = evaluate(model, clips)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = to_markdown(result, args.model)
    print(table)
    (out / "real_speech.md").write_text(table)
    (out / "real_speech.json").write_text(json.dumps({"model": args.model, **result}, indent=1) + "\n")
    return 0 if result["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
