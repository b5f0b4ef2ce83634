#!/usr/bin/env python
"""Pitch sweeps of the synthetic corpus' *training* voices, as order groups for ``loss.order`` (stage 2 of `mini`).

    .venv/bin/python scripts/espeak_sweeps.py [--corpus data/synth-v1] [--out data/espeak-sweeps]

Each group is one training voice (espeak-ng, plain variant, US accent) saying one sentence from the corpus' training
word bank at espeak pitch settings 5, 20, ..., 95: the same voice, raised step by step (about 86 -> 163 Hz for a male
voice, ~11 semitones). Praat measures each clip's median F0 and ``shift_cents`` is its distance in cents from the
group's median; a clip whose F0 cannot be measured, or that is not above the previous setting's, is dropped. The
voices held out of the corpus (its test split) never appear, so ``tests/test_mini.py``'s held-out voices stay
unseen. The rows carry a plain caption and no tags: stage 2 adds only their audio (``joint: false``).

Why: on recorded speech the order loss made "deep" minus "high-pitched" fall as a voice is raised; on synthetic male
voices raised past the corpus' male range (~150 Hz) the score rose again (heard as a deep *female* voice), because
nothing told the model that a male voice raised further is higher still. Default: male voices, 4 sentences each
(sweeping female voices too, 8 sentences each, cost 2.6 points of synthetic pitch accuracy in stage 2).
Writes ``<out>/train.jsonl`` and ``<out>/audio/*.wav`` (new files only; an existing ``--out`` is refused).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import zlib
from pathlib import Path

import numpy as np

PITCHES = (5, 20, 35, 50, 65, 80, 95)


def training_voices(corpus: Path) -> list[tuple[str, str]]:
    """(variant, gender) of every plain espeak variant in the corpus' training split, sorted."""
    from paraspeechclap.fileio import read_jsonl

    voices = {}
    for row in read_jsonl(corpus / "train.jsonl"):
        name = row.get("espeak_voice") or ""
        if row.get("engine") != "espeak" or row.get("held_out_voice") or "+" not in name:
            continue
        variant = name.split("+", 1)[1]
        if not variant.startswith("psc_"):
            voices[variant] = row.get("gender")
    return sorted(voices.items())


def sweep(variant: str, sentence: str) -> list[dict]:
    """One voice and sentence at every setting of PITCHES: waveform, rate and measured median F0 per kept clip."""
    from paraspeechclap.synth.engines import EngineError, build_ssml, synthesize, text_to_ssml
    from paraspeechclap.synth.measure import measure_clip

    out, last = [], 0.0
    for p in PITCHES:
        try:
            wave, sr = synthesize("espeak", f"en-us+{variant}", build_ssml(text_to_ssml(sentence), None), p, 165)
        except EngineError as err:
            print(f"warning: {variant} p{p}: {err}", file=sys.stderr)
            continue
        f0 = measure_clip(wave, sr, voice_quality=False)["f0_median_hz"]
        if not math.isfinite(f0) or f0 <= last:
            continue
        last = f0
        out.append({"pitch_param": p, "wave": wave, "sr": sr, "f0": f0})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/synth-v1"))
    ap.add_argument("--out", type=Path, default=Path("data/espeak-sweeps"))
    ap.add_argument("--sentences", type=int, default=4, help="sentences per voice (one group each)")
    ap.add_argument("--genders", default="male", help="comma list of the voices' genders to sweep (default: male)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import soundfile as sf

    from paraspeechclap.fileio import atomic_path, atomic_write_text
    from paraspeechclap.synth.captions import make_sentence

    if args.out.exists():
        raise SystemExit(f"error: {args.out} exists; give a new --out")
    genders = set(args.genders.split(","))
    voices = [(v, g) for v, g in training_voices(args.corpus) if g in genders]
    if not voices:
        raise SystemExit(f"error: no training espeak voices in {args.corpus / 'train.jsonl'}")
    (args.out / "audio").mkdir(parents=True)
    rows = []
    for k, (variant, gender) in enumerate(voices):
        for j in range(args.sentences):  # each group's sentence depends on (seed, voice, j) only
            rng = np.random.default_rng([args.seed, zlib.crc32(variant.encode()), j])
            sentence = make_sentence(rng, (8, 14), test_pool=False)
            clips = sweep(variant, sentence)
            if len(clips) < 2:
                continue
            centre = float(np.median([c["f0"] for c in clips]))
            for c in clips:
                path = (args.out / "audio" / f"{variant}-{j:02d}-p{c['pitch_param']:02d}.wav").resolve()
                with atomic_path(path) as tmp:
                    sf.write(tmp, c["wave"], c["sr"], format="WAV")
                rows.append({"source": "espeak-sweep", "voice": f"en-us+{variant}", "gender": gender,
                             "original": f"{variant}/{j}", "pitch_param": c["pitch_param"],
                             "f0_median_hz": round(c["f0"], 1),
                             "shift_cents": round(1200 * math.log2(c["f0"] / centre), 1),
                             "duration": round(len(c["wave"]) / c["sr"], 3), "audio_path": str(path),
                             # the loader needs a caption; stage 2 never uses it (joint: false)
                             "text_description": [f"A {gender} voice reading a sentence."]})
        print(f"[{k + 1}/{len(voices)}] {variant}: {len(rows)} clips so far", file=sys.stderr, flush=True)
    atomic_write_text(args.out / "train.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    groups = len({r["original"] for r in rows})
    print(f"{len(rows)} clips in {groups} groups from {len(voices)} voices -> {args.out / 'train.jsonl'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
