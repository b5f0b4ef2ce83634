"""Generate the labelled synthetic style corpus (ParaSpeechCaps schema) in parallel.

Pipeline per clip: plan (all random choices, in the parent, from the seed) -> synthesize (espeak-ng /
mbrola) -> label-preserving pitch/tempo jitter by resampling to 16 kHz -> measure the clean signal ->
channel augmentation -> write 16-bit WAV. The parent then verifies every tag against the
measurements, drops mismatches and writes the manifests, classification suites and corpus card.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from . import styles as S
from .augment import augment, resample_jitter
from .captions import full_caption, make_sentence, make_spoken, partial_caption
from .engines import (EngineError, build_ssml, espeak_available, mbrola_available, prepare_espeak_data,
                      synthesize, variant_name)
from .. import schemas
from ..fileio import atomic_write_bytes
from .measure import measure_clip
from .record import claim, finish

SPLITS = ("train", "validation", "test")
CALIBRATION_TEXT = "The old farmer painted the red door near the station before dinner."
CALIBRATION_P = (0, 25, 50, 75, 99)
SR = 16000

#: sentence word-count ranges by rate (flowing delivery; hesitant/punctuated get fewer words)
WORDS_BY_RATE = {"slow": (4, 7), "measured": (6, 10), "fast": (9, 14)}

_DATA_PATH: str | None = None


def _init_worker(data_path: str, parent: int | None = None) -> None:
    global _DATA_PATH
    from ..lifetime import die_with_parent

    die_with_parent(parent)  # a renderer outliving a killed synth would go on writing clips nobody records
    _DATA_PATH = data_path
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _voice_spec(engine: str, accent: str | None, timbre: str, quality: str) -> str:
    return timbre if engine == "mbrola" else f"{accent}+{variant_name(timbre, quality)}"


# --------------------------------------------------------------------------------------------------
# Calibration: espeak pitch parameter -> measured F0, per voice and range level
# --------------------------------------------------------------------------------------------------

def _calibrate_one(task: tuple) -> tuple:
    engine, timbre, range_level, p = task
    spec = _voice_spec(engine, "en-us", timbre, "normal")
    rng_ssml = None if engine == "mbrola" else S.RANGE_CALIBRATION_SSML[range_level]
    try:
        y, sr = synthesize(engine, spec, build_ssml(CALIBRATION_TEXT, rng_ssml), p, 170, _DATA_PATH)
        m = measure_clip(resample_jitter(y, sr, 1.0), SR, voice_quality=False)
    except EngineError:
        return task, None
    return task, {k: m[k] for k in ("f0_median_hz", "f0_range_st", "jitter", "hnr_db", "voiced_fraction")}


def calibrate_voices(voices: list[S.Voice], pool, progress: bool = True) -> dict:
    """{voice.name: {range_level: {"p": [...], "f0": [...], ...neutral stats}}}."""
    from tqdm import tqdm

    tasks = []
    for v in voices:
        levels = ["neutral"] if v.engine == "mbrola" else list(S.RANGE_CALIBRATION_SSML)
        tasks += [(v.engine, v.timbre, lvl, p) for lvl in levels for p in CALIBRATION_P]
    out: dict = {}
    it = pool.imap(_calibrate_one, tasks, chunksize=4)
    for (engine, timbre, lvl, p), m in tqdm(it, total=len(tasks), desc="calibrating voices",
                                            disable=not progress):
        name = timbre if engine == "mbrola" else f"espeak+{timbre}"
        d = out.setdefault(name, {}).setdefault(lvl, {"p": [], "f0": [], "range_st": [], "jitter": [],
                                                      "hnr_db": []})
        if m is None or m["f0_median_hz"] is None:
            continue
        d["p"].append(p)
        d["f0"].append(m["f0_median_hz"])
        d["range_st"].append(m["f0_range_st"])
        d["jitter"].append(m["jitter"])
        d["hnr_db"].append(m["hnr_db"])
    return out


def pitch_param_for(calib: dict, voice: str, range_level: str, target_hz: float) -> int | None:
    """espeak -p value reaching `target_hz` (log-F0 interpolation), None when out of the voice's reach."""
    d = calib.get(voice, {}).get(range_level if range_level in calib.get(voice, {}) else "neutral")
    if not d or len(d["p"]) < 2:
        return None
    f0 = np.log(np.asarray(d["f0"]))
    p = np.asarray(d["p"], dtype=float)
    order = np.argsort(f0)
    f0, p = f0[order], p[order]
    if not np.all(np.diff(p) > 0):        # calibration must be monotonic
        keep = np.concatenate([[True], np.diff(p) > 0])
        f0, p = f0[keep], p[keep]
        if len(p) < 2:
            return None
    t = math.log(target_hz)
    margin = 0.25 / 12 * math.log(2)     # a quarter semitone inside the reachable span
    if t < f0[0] - margin or t > f0[-1] + margin:
        return None
    return int(round(float(np.interp(t, f0, p))))


# --------------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------------

def _choice(rng: np.random.Generator, probs: dict) -> str:
    keys = list(probs)
    w = np.asarray([probs[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=w / w.sum()))]


def split_counts(n: int, fractions: tuple[float, ...]) -> dict:
    f = np.asarray(fractions, dtype=float)
    f = f / f.sum()
    counts = np.floor(f * n).astype(int)
    counts[0] += n - counts.sum()
    return dict(zip(SPLITS, counts.tolist()))


def plan_clips(n: int, seed: int, fractions: tuple[float, ...], voices: list[S.Voice], calib: dict,
               augment_audio: bool = True) -> list[dict]:
    """Every random decision for every clip, deterministic for (n, seed, fractions, voices, calib)."""
    rng = np.random.default_rng(seed)
    jobs: list[dict] = []
    counts = split_counts(n, fractions)
    idx = 0
    for split in SPLITS:
        held_out = split == "test"
        pool = [v for v in voices if v.held_out == held_out]
        accents = S.ACCENTS_TEST if held_out else S.ACCENTS_TRAIN
        for _ in range(counts[split]):
            for _attempt in range(50):
                a = {k: _choice(rng, S.LEVEL_PROBS[k]) for k in ("gender", "pitch", "rate", "range",
                                                                  "quality", "delivery")}
                cands = [v for v in pool if v.gender == a["gender"]]
                voice = cands[int(rng.integers(len(cands)))]
                if voice.engine == "mbrola":
                    if a["quality"] != "normal":
                        continue
                    a["range"] = "neutral"            # SSML range has no effect on mbrola voices
                if a["quality"] == "creaky":
                    a["range"] = "neutral"            # the creak's F0 flutter makes the range unmeasurable
                lo, hi = S.PITCH_TARGET_ST[a["pitch"]]
                a["pitch_offset_st"] = round(float(rng.uniform(lo, hi)), 3)
                jitter = 1.0
                if augment_audio:
                    from .augment import PROFILES
                    j = PROFILES[split]["jitter"]
                    jitter = float(2 ** rng.uniform(math.log2(1 - j), math.log2(1 + j)))
                target = S.GENDER_CENTRE_HZ[a["gender"]] * 2 ** (a["pitch_offset_st"] / 12) / jitter
                p = pitch_param_for(calib, voice.name, a["range"], target)
                if p is None:
                    continue
                break
            else:
                raise RuntimeError(f"could not plan clip {idx}: no voice reaches the sampled pitch")
            wmin, wmax = WORDS_BY_RATE[a["rate"]]
            if a["delivery"] != "flowing":
                wmin, wmax = max(5, wmin - 1), max(6, wmax - 3)
            sentence = make_sentence(rng, (wmin, wmax), test_pool=held_out)
            spoken = make_spoken(sentence, a["delivery"], rng)
            wpm = int(rng.integers(*S.RATE_WPM[a["rate"]]))
            range_ssml = None if voice.engine == "mbrola" else str(rng.choice(S.RANGE_SSML[a["range"]]))
            accent = None if voice.engine == "mbrola" else accents[int(rng.integers(len(accents)))]
            intrinsic, situational = S.tags_for(a)
            full = full_caption(a, held_out, rng)
            caps = [full] if held_out else [full, partial_caption(a, intrinsic + situational, False, rng)]
            jobs.append({
                "index": idx, "split": split, "attrs": a, "voice": voice.name, "engine": voice.engine,
                "timbre": voice.timbre, "accent": accent, "held_out_voice": voice.held_out,
                "espeak_voice": _voice_spec(voice.engine, accent, voice.timbre, a["quality"]),
                "espeak_pitch": p, "espeak_wpm": wpm, "espeak_range": range_ssml,
                "jitter_factor": round(jitter, 5), "spoken": asdict(spoken),
                "intrinsic_tags": intrinsic, "situational_tags": situational, "text_description": caps,
                "aug_seed": int(rng.integers(2 ** 31 - 1)),
                "aug_profile": split if augment_audio else "none",
            })
            idx += 1
    return jobs


# --------------------------------------------------------------------------------------------------
# Rendering (runs in worker processes)
# --------------------------------------------------------------------------------------------------

def render_clip(job: dict, audio_dir: str) -> dict:
    """Synthesize, jitter, measure, augment and write one clip; returns its manifest row."""
    import soundfile as sf

    sp = job["spoken"]
    row = {"index": job["index"], "split": job["split"]}
    try:
        y, sr = synthesize(job["engine"], job["espeak_voice"], build_ssml(sp["ssml_body"], job["espeak_range"]),
                           job["espeak_pitch"], job["espeak_wpm"], _DATA_PATH)
    except EngineError as exc:
        row["error"] = str(exc)
        return row
    clean = resample_jitter(y, sr, job["jitter_factor"])
    meas = measure_clip(clean, SR, syllables=sp["syllables"])
    rng = np.random.default_rng(job["aug_seed"])
    audio, aug = augment(clean, rng, job["aug_profile"])
    rel = f"{job['split']}/{job['index']:06d}.wav"
    buffer = io.BytesIO()
    sf.write(buffer, audio, SR, subtype="PCM_16", format="WAV")
    data = buffer.getvalue()
    atomic_write_bytes(Path(audio_dir) / rel, data)
    row["_digest"] = "sha256:" + hashlib.sha256(data).hexdigest()  # for the ownership record; not a column
    a = job["attrs"]
    whisper = a["quality"] == "whispered"
    row.update({
        "source": S.SOURCE, "relative_audio_path": rel,
        "text_description": job["text_description"],
        "intrinsic_tags": job["intrinsic_tags"], "situational_tags": job["situational_tags"],
        "duration": round(len(audio) / SR, 4),
        "speaker": f"{job['engine']}:{job['accent'] or '-'}:{job['timbre']}", "voice": job["voice"],
        "engine": job["engine"], "accent": job["accent"], "held_out_voice": job["held_out_voice"],
        "gender": a["gender"],
        "pitch_level": None if whisper else a["pitch"],
        "pitch_offset_st": None if whisper else a["pitch_offset_st"],
        "rate_level": a["rate"], "range_level": None if whisper else a["range"],
        "voice_quality": a["quality"], "delivery": a["delivery"],
        "espeak_voice": job["espeak_voice"], "espeak_pitch": job["espeak_pitch"],
        "espeak_wpm": job["espeak_wpm"], "espeak_range": job["espeak_range"],
        "jitter_factor": job["jitter_factor"], "sentence": sp["sentence"], "spoken_text": sp["text"],
        "syllables": sp["syllables"], "augmentation": aug,
        "measured": meas, "measured_level_dbfs_final": round(float(
            10 * np.log10(np.mean(audio.astype(np.float64) ** 2) + 1e-12)), 2),
    })
    return row


def _render_star(args: tuple) -> dict:
    job, audio_dir = args
    try:
        return render_clip(job, audio_dir)
    except Exception as exc:  # noqa: BLE001 - a bad clip is reported, the rest go on
        return {"index": job["index"], "split": job["split"], "error": f"{type(exc).__name__}: {exc}"}


# --------------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------------

def _calibration_key(voices: list[S.Voice]) -> dict:
    import subprocess
    ver = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.strip()
    return {"espeak": ver, "text": CALIBRATION_TEXT, "p": list(CALIBRATION_P),
            "ranges": S.RANGE_CALIBRATION_SSML, "voices": sorted(v.name for v in voices)}


def _cached_calibration(out: Path, voices: list[S.Voice]) -> dict | None:
    """The calibration stored in `out` by an earlier run with the same engine and voices, if any."""
    p = out / "calibration.json"
    if not p.is_file():
        return None
    try:
        doc = schemas.read(p, "synth-voice-calibration")
    except schemas.SchemaError:
        return None  # not ours, or unreadable: calibrated afresh (and never replaced unless ours: see claim)
    return doc["voices"] if doc["key"] == _calibration_key(voices) else None


def audio_rel(split: str, index: int) -> str:
    """Where clip ``index`` of ``split`` is stored, relative to the output folder."""
    return f"audio/{S.SOURCE}/{split}/{index:06d}.wav"


def planned_files(num_clips: int, splits: tuple[float, ...]) -> list[str]:
    """Every file a generation of ``num_clips`` clips writes (calibration.json aside), relative to its folder."""
    from .verify import OUTPUT_FILES

    counts = split_counts(num_clips, splits)
    audio, index = [], 0
    for split in SPLITS:
        for _ in range(counts[split]):
            audio.append(audio_rel(split, index))
            index += 1
    return [*OUTPUT_FILES, *audio]


def generate_corpus(out: str | os.PathLike, num_clips: int = 10000, seed: int = 0, workers: int = 2,
                    splits: tuple[float, ...] = (0.8, 0.1, 0.1), augment_audio: bool = True,
                    use_mbrola: bool | None = None, progress: bool = True,
                    voice_names: list[str] | None = None, check_neutral_range: bool = True) -> dict:
    """Generate, verify and write the corpus under `out`; returns the verification summary.

    Files in `out` that synth did not write (see `paraspeechclap.synth.record`) are never replaced: if one sits
    at a name this run would write, :class:`~paraspeechclap.synth.record.OutputExistsError` is raised before
    anything is written. A `calibration.json` already there is reused when it matches, never replaced unless ours.

    voice_names restricts the voices (names as in styles: "espeak+m4", "mb-us1", ...); each split
    must keep a voice of each gender. check_neutral_range False keeps a neutral-range clip whatever its measured F0
    spread, as corpora made before that check (`paraspeechclap.synth.verify`).
    """
    from multiprocessing import get_context

    from tqdm import tqdm

    from .verify import NEUTRAL_RANGE_CHECKED, finalize_corpus

    if not espeak_available():
        raise EngineError("espeak-ng is not installed: run scripts/install_synth_deps.sh")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    audio_dir = out / "audio" / S.SOURCE
    if use_mbrola is None:
        use_mbrola = mbrola_available()
    voices = S.all_voices(use_mbrola)
    if voice_names:
        unknown = set(voice_names) - {v.name for v in voices}
        if unknown:
            raise ValueError(f"unknown or unavailable voices: {sorted(unknown)}")
        voices = [v for v in voices if v.name in set(voice_names)]
        for held in (False, True):
            for g in S.GENDERS:
                if not any(v.held_out == held and v.gender == g for v in voices):
                    raise ValueError(f"voice_names needs a {'held-out' if held else 'training'} {g} voice")
    # Never replace a file synth did not write: check every planned name, reserve them, then write.
    planned = planned_files(num_clips, splits)
    calib = _cached_calibration(out, voices)  # reading someone's calibration.json is fine; replacing it is not
    if calib is None:
        planned.append("calibration.json")
    record = claim(out, planned)
    t0 = time.time()
    scratch = Path(tempfile.mkdtemp(prefix="psc-espeak-"))
    try:
        data_path = str(prepare_espeak_data(scratch, [v.timbre for v in voices if v.engine == "espeak"]))
        ctx = get_context("spawn")  # not fork: a forked child of a process with threads (a test run, a server) can deadlock
        with ctx.Pool(max(1, workers), initializer=_init_worker,
                      initargs=(data_path, os.getpid())) as pool:
            if calib is None:
                calib = calibrate_voices(voices, pool, progress)
                schemas.write(out / "calibration.json", {"key": _calibration_key(voices), "voices": calib},
                              "synth-voice-calibration", indent=1)
            jobs = plan_clips(num_clips, seed, splits, voices, calib, augment_audio)
            rows = []
            args = [(j, str(audio_dir)) for j in jobs]
            for r in tqdm(pool.imap(_render_star, args, chunksize=8), total=len(args),
                          desc="synthesizing", disable=not progress):
                rows.append(r)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    gen_s = time.time() - t0
    settings = {"num_clips": num_clips, "seed": seed, "workers": workers, "splits": list(splits),
                "augment": augment_audio, "mbrola": use_mbrola, NEUTRAL_RANGE_CHECKED: check_neutral_range,
                "generation_seconds": round(gen_s, 1),
                "voices": [asdict(v) | {"name": v.name} for v in voices]}
    digests = {audio_rel(r["split"], r["index"]): r.pop("_digest") for r in rows if "_digest" in r}
    summary = finalize_corpus(out, rows, calib, settings, audio_digests=digests)
    finish(out, record, known=digests)
    return summary
