#!/usr/bin/env python
"""Recorded human speech that installs here: collect it, measure it, split it by speaker.

    .venv/bin/python scripts/real_speech.py [--install] [--out data/real-speech]

Sources (Debian packages, all recorded by people; ``--install`` apt-installs the missing ones):

- ``fillets-ng-data-cs`` / ``fillets-ng-data-nl``: the spoken dialogue of the game Fish Fillets NG in Czech and
  Dutch. Two voice actors per language: the small fish (file names ``<level>-m-*``) and the big fish
  (``<level>-v-*``); each ``dialogs_<lang>.lua`` names the speaker (font_small / font_big).
- ``asterisk-prompt-fr-armelle``: French telephony prompts by Armelle Desjardins.
- ``asterisk-prompt-es-co``: Colombian Spanish telephony prompts.
- ``asterisk-prompt-it-menardi-wav``: Italian telephony prompts (it_IT_f_Menardi).
- ``alsa-utils``: the eight channel-test phrases ("Front center", ...), one speaker.

Never used: Debian's ``asterisk-core-sounds-en*`` (reserved for the project's independent evaluation); this script
refuses any path under ``/usr/share/asterisk/sounds/en*``.

Speaker ids are ours. Each clip is checked with Praat (parselmouth): median F0, voiced fraction, duration; clips
with too little voicing or outside 0.7-8 s are dropped. A speaker's gender is *measured* (median F0 over its
clips: < 155 Hz male, > 165 Hz female) and must agree with the assignment below, else the script stops.

Split: the speakers in ``HELDOUT`` never enter training; ``scripts/eval_real_speech.py`` and
``tests/test_mini_real_speech.py`` use only them.

Writes ``<out>/manifest.jsonl`` (one row per kept clip: path, speaker, gender, language, source package,
duration_s, f0_median_hz, f0_p10_hz, f0_p90_hz, voiced_fraction, split) and ``<out>/speakers.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

FILLETS = Path("/usr/share/games/fillets-ng/sound")
ASTERISK = Path("/usr/share/asterisk/sounds")
ALSA = Path("/usr/share/sounds/alsa")
FORBIDDEN = re.compile(r"^/usr/share/asterisk/sounds/en")

#: speaker id -> (package, language, expected gender, how to find its clips)
SPEAKERS: dict[str, dict] = {
    "fillets-cs-small": {"package": "fillets-ng-data-cs", "language": "cs", "gender": "female",
                         "glob": (FILLETS, "*/cs/*-m-*.ogg")},
    "fillets-cs-big": {"package": "fillets-ng-data-cs", "language": "cs", "gender": "male",
                       "glob": (FILLETS, "*/cs/*-v-*.ogg")},
    "fillets-nl-small": {"package": "fillets-ng-data-nl", "language": "nl", "gender": "female",
                         "glob": (FILLETS, "*/nl/*-m-*.ogg")},
    "fillets-nl-big": {"package": "fillets-ng-data-nl", "language": "nl", "gender": "male",
                       "glob": (FILLETS, "*/nl/*-v-*.ogg")},
    "asterisk-fr-armelle": {"package": "asterisk-prompt-fr-armelle", "language": "fr", "gender": "female",
                            "glob": (ASTERISK / "fr", "*.gsm")},
    "asterisk-es-co": {"package": "asterisk-prompt-es-co", "language": "es", "gender": None,
                       "glob": (ASTERISK / "es", "*.gsm")},
    "asterisk-it-menardi": {"package": "asterisk-prompt-it-menardi-wav", "language": "it", "gender": "female",
                            "glob": (ASTERISK / "it_IT_f_Menardi", "*.wav")},
    "alsa-utils": {"package": "alsa-utils", "language": "en", "gender": "female",
                   "glob": (ALSA, "[A-Z]*_*.wav")},
}
#: never in training: the held-out check (eval_real_speech.py) and the tests use these.
HELDOUT = ("fillets-nl-small", "fillets-nl-big", "asterisk-fr-armelle", "alsa-utils")
#: clips kept per speaker at most (spread over the sorted list), to bound measurement and training time.
MAX_CLIPS = 260
MIN_S, MAX_S = 0.7, 8.0
MIN_VOICED = 0.25
MALE_MAX_HZ, FEMALE_MIN_HZ = 155.0, 165.0


def install(packages: list[str]) -> None:
    missing = [p for p in packages
               if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("apt-get install", " ".join(missing), flush=True)
    subprocess.run(sudo + ["apt-get", "install", "-y", "--no-install-recommends", *missing], check=True, env=env)


def speaker_files(speaker: str) -> list[Path]:
    root, pattern = SPEAKERS[speaker]["glob"]
    files = sorted(p for p in root.glob(pattern) if p.is_file() and not FORBIDDEN.match(str(p)))
    if speaker.startswith("asterisk-") and not files:
        files = sorted(root.glob("*.wav"))
    if speaker == "alsa-utils":
        files = [p for p in files if p.name != "Noise.wav"]
    if len(files) > MAX_CLIPS:
        idx = np.linspace(0, len(files) - 1, MAX_CLIPS).round().astype(int)
        files = [files[i] for i in sorted(set(idx))]
    return files


def load_16k(path: Path) -> np.ndarray:
    """Any of the formats here (ogg, gsm, wav) as 16 kHz mono float32, through sox."""
    out = subprocess.run(["sox", str(path), "-t", "raw", "-e", "float", "-b", "32", "-c", "1", "-r", "16000", "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(out, dtype=np.float32).copy()


def f0_track(y: np.ndarray, sr: int = 16000, floor: float = 60.0, ceiling: float = 500.0) -> np.ndarray:
    """Praat autocorrelation F0 per 10 ms frame; 0 where unvoiced."""
    import parselmouth

    snd = parselmouth.Sound(y.astype(np.float64), sampling_frequency=sr)
    pitch = snd.to_pitch_ac(time_step=0.01, pitch_floor=floor, pitch_ceiling=ceiling)
    return np.asarray(pitch.selected_array["frequency"], dtype=np.float64)


def measure(path: Path) -> dict:
    y = load_16k(path)
    duration = len(y) / 16000
    hop = 160
    frames = y[: len(y) // hop * hop].reshape(-1, hop)
    energy = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12) if len(frames) else np.zeros(1)
    active = energy > energy.max() - 35
    f0 = f0_track(y) if duration > 0.1 else np.zeros(1)
    voiced = f0[f0 > 0]
    n_active = max(1, int(active.sum()))
    out = {"path": str(path), "duration_s": round(duration, 3), "voiced_fraction": round(len(voiced) / n_active, 3)}
    if len(voiced) >= 5:
        out.update(f0_median_hz=round(float(np.median(voiced)), 1), f0_p10_hz=round(float(np.percentile(voiced, 10)), 1),
                   f0_p90_hz=round(float(np.percentile(voiced, 90)), 1))
    return out


def measured_gender(f0_hz: float) -> str | None:
    return "male" if f0_hz < MALE_MAX_HZ else "female" if f0_hz > FEMALE_MIN_HZ else None


def collect(out: Path, workers: int = 2) -> list[dict]:
    rows: list[dict] = []
    summary = {}
    for speaker, spec in SPEAKERS.items():
        files = speaker_files(speaker)
        if not files:
            print(f"{speaker}: no files (package {spec['package']} missing?)", file=sys.stderr)
            continue
        with ProcessPoolExecutor(workers) as pool:
            measured = list(pool.map(measure, files, chunksize=8))
        kept = [m for m in measured if MIN_S <= m["duration_s"] <= MAX_S and m["voiced_fraction"] >= MIN_VOICED
                and "f0_median_hz" in m]
        if not kept:
            continue
        f0 = float(np.median([m["f0_median_hz"] for m in kept]))
        gender = measured_gender(f0)
        if spec["gender"] and gender and gender != spec["gender"]:
            raise SystemExit(f"{speaker}: measured median F0 {f0:.0f} Hz says {gender}, assigned {spec['gender']}")
        gender = spec["gender"] or gender
        split = "heldout" if speaker in HELDOUT else "train"
        for m in kept:
            rows.append({**m, "speaker": speaker, "gender": gender, "language": spec["language"],
                         "package": spec["package"], "speaker_f0_median_hz": round(f0, 1), "split": split})
        summary[speaker] = {"package": spec["package"], "language": spec["language"], "gender": gender,
                            "split": split, "clips_found": len(files), "clips_kept": len(kept),
                            "hours": round(sum(m["duration_s"] for m in kept) / 3600, 3),
                            "f0_median_hz": round(f0, 1),
                            "voiced_fraction_median": round(float(np.median([m["voiced_fraction"] for m in kept])), 2)}
        print(f"{speaker:22s} {gender or '?':6s} {split:7s} kept {len(kept):4d}/{len(files):4d} "
              f"F0 {f0:5.0f} Hz  {summary[speaker]['hours'] * 60:5.1f} min", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "manifest.jsonl", "w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    (out / "speakers.json").write_text(json.dumps(summary, indent=2) + "\n")
    return rows


def load_manifest(path: str | Path = "data/real-speech/manifest.jsonl", split: str | None = None) -> list[dict]:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [r for r in rows if split is None or r["split"] == split]


def _augment_rows(row: dict, y: np.ndarray, rng: np.random.Generator, versions: int):
    """(file name suffix, waveform, row fields) of the labelled versions of one clip (``--augment``)."""
    from paraspeechclap.synth.real import clip_versions

    for k, (z, fields) in enumerate(clip_versions(y, row["f0_median_hz"], row["gender"], versions, rng)):
        yield str(k), z, {"source": "real", "original": row["path"], "original_f0_median_hz": row["f0_median_hz"],
                          **fields}


def _ladder_rows(row: dict, y: np.ndarray, rng: np.random.Generator, versions: int):
    """(file name suffix, waveform, row fields) of the pitch ladder of one clip (``--ladders``; its own group)."""
    from paraspeechclap.synth.real import clip_ladder

    for z, fields in clip_ladder(y, rng):
        # the loader needs a caption; stage 2 never uses it (joint: false)
        yield f"r{fields['rung']}", z, {"source": "real-ladder", "original": f"{row['path']}#ladder", **fields,
                                        "text_description": [f"A {row['gender']} voice speaking."]}


VERSION_KINDS = {"augment": (_augment_rows, 0), "ladder": (_ladder_rows, 1000)}  # kind -> (rows, job seed offset)
VERSION_JOBS = 8  # shares of the training clips written with seeds seed+offset+0..7 (what --workers 2 always ran)


def _write_versions(job: tuple) -> list[dict]:
    """Write the versions of one worker's share of the training clips; a clip that fails is reported and skipped."""
    kind, rows, out, versions, seed = job
    import soundfile as sf

    from paraspeechclap.fileio import atomic_path

    make = VERSION_KINDS[kind][0]
    rng = np.random.default_rng(seed)
    written = []
    for row in rows:
        try:
            y = load_16k(Path(row["path"]))
            stem = Path(row["path"]).with_suffix("").name
            for suffix, z, fields in make(row, y, rng, versions):
                path = (out / "audio" / row["speaker"] / f"{stem}-{suffix}.wav").resolve()
                with atomic_path(path) as tmp:
                    sf.write(tmp, z, 16000, subtype="PCM_16", format="WAV")
                written.append({"audio_path": str(path), "speaker": row["speaker"], "gender": row["gender"],
                                "language": row["language"], "duration": round(len(z) / 16000, 3), **fields})
        except Exception as err:  # noqa: BLE001 - report the clip, make the rest
            print(f"warning: {row['path']}: no {kind} versions ({err})", file=sys.stderr)
    return written


def write_training(manifest: Path, out: Path, kind: str, workers: int, seed: int = 0, versions: int = 0) -> int:
    """Versions of every training clip -> ``out/train.jsonl`` (+ ``out/audio``): ``kind`` "augment" (``versions``
    labelled pitch/tempo/channel versions, :func:`paraspeechclap.synth.real.clip_versions`) or "ladder" (a pitch
    ladder, :func:`paraspeechclap.synth.real.clip_ladder`)."""
    from paraspeechclap.fileio import atomic_write_text

    rows = load_manifest(manifest, split="train")
    assert not any(r["speaker"] in HELDOUT for r in rows)
    offset = VERSION_KINDS[kind][1]
    # a fixed number of shares, each with its own seed: the output does not depend on --workers
    jobs = [(kind, rows[i::VERSION_JOBS], out, versions, seed + offset + i) for i in range(VERSION_JOBS)]
    written: list[dict] = []
    if workers <= 1:  # in this process: no fork (a forked child of a process with threads can deadlock)
        for part in map(_write_versions, jobs):
            written += part
    else:
        with ProcessPoolExecutor(workers) as pool:
            for part in pool.map(_write_versions, jobs):
                written += part
    atomic_write_text(out / "train.jsonl", "".join(json.dumps(r) + "\n" for r in written))
    return len(written)


def pitch_only(src: Path, dst: Path, seed: int = 0) -> int:
    """Copy of an --augment manifest claiming only gender and pitch (no rate tags, captions on pitch/gender only)."""
    from paraspeechclap.synth import styles as S
    from paraspeechclap.synth.captions import _bare, _who

    rng = np.random.default_rng(seed)
    rows = load_manifest(src)
    for row in rows:
        row["situational_tags"] = []
        row["text_description"] = [_bare(_who(row["gender"], row["pitch"], False, rng), False, rng),
                                   S.TAG_TEMPLATE.format(S.PITCH_TAGS[row["pitch"]][0])]
    dst.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/real-speech")
    parser.add_argument("--install", action="store_true", help="apt-get install the missing packages first")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--augment", type=int, default=0, metavar="N",
                        help="also write N labelled pitch/tempo/channel versions of every training clip to "
                             "<out>/train-aug (train.jsonl + audio/) for the trainer")
    parser.add_argument("--ladders", action="store_true",
                        help="also write a pitch ladder of every training clip (rungs 200 cents apart, one method, "
                             "tempo and channel per ladder) to <out>/train-ladder for the order loss")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--remeasure", action="store_true", help="measure again even when <out>/manifest.jsonl exists")
    args = parser.parse_args(argv)
    if args.install:
        install(sorted({s["package"] for s in SPEAKERS.values()}))
    out = Path(args.out)
    if (out / "manifest.jsonl").is_file() and not args.remeasure:
        rows = load_manifest(out / "manifest.jsonl")
        print(f"{len(rows)} clips already measured in {out}/manifest.jsonl")
    else:
        rows = collect(out, args.workers)
        print(f"{len(rows)} clips -> {out}/manifest.jsonl")
    if args.augment and rows:
        (out / "train-aug").mkdir(parents=True, exist_ok=True)
        n = write_training(out / "manifest.jsonl", out / "train-aug", "augment", args.workers, args.seed, args.augment)
        print(f"{n} training versions -> {out}/train-aug/train.jsonl")
    if args.ladders and rows:
        (out / "train-ladder").mkdir(parents=True, exist_ok=True)
        n = write_training(out / "manifest.jsonl", out / "train-ladder", "ladder", args.workers, args.seed)
        print(f"{n} ladder rungs -> {out}/train-ladder/train.jsonl")
    if (out / "train-aug" / "train.jsonl").is_file():
        n = pitch_only(out / "train-aug" / "train.jsonl", out / "train-aug" / "train-pitch.jsonl", args.seed)
        print(f"{n} rows claiming gender and pitch only -> {out}/train-aug/train-pitch.jsonl")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
