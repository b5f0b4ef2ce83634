"""Label verification: check every tag of a clip against its measurements; write manifests and card.

Checks (thresholds below, chosen from the measured distributions of a pilot corpus, with margins):
- pitch: F0 median in semitones from the gender centre within the level's band (PITCH_ACCEPT_ST);
- pitch range: 10-90th percentile F0 spread in semitones (monotonous low, singsong high, a neutral range between
  the two, unless the corpus was made with ``--unchecked-neutral-range``; creaky clips' range is not measurable);
- rate: articulation rate (syllables of the spoken text per active second) inside the level's band;
- voice quality: whispered = almost no voicing; creaky = high jitter (espeak flutter); normal = voiced, low jitter;
- delivery: flowing = no internal pause; hesitant / punctuated = at least two pauses;
- gender: F0 median plausible for the gender (skipped for whispers).
Clips failing any check are dropped from the manifests (kept in dropped.jsonl with the reason).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import Counter, defaultdict
from pathlib import Path

from .. import schemas
from ..fileio import file_digest, owns, remove_owned, temporary_name
from . import styles as S
from .record import RECORD, OutputExistsError, read_record, write_record

STORED = "verification_stored.json"

RANGE_MONO_MAX_ST = 2.0
RANGE_SINGSONG_MIN_ST = 3.5
#: the generation setting that says whether a neutral range was checked (corpora without it were not)
NEUTRAL_RANGE_CHECKED = "neutral_range_checked"
RATE_BANDS = {"slow": (0.0, 4.0), "measured": (4.0, 6.6), "fast": (6.6, 99.0)}   # syllables / s
WHISPER_MAX_VF = 0.12
VOICED_MIN_VF = 0.35
CREAKY_MIN_JITTER = 0.026
NORMAL_MAX_JITTER = 0.025
GENDER_F0_BOUNDS = {"male": (0.0, 185.0), "female": (125.0, 1e9)}
ATTRIBUTES = ("pitch", "range", "rate", "voice_quality", "delivery", "gender")


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def check_row(row: dict, m: dict | None = None, neutral_range: bool = True) -> dict:
    """{attribute: (ok, detail)} for the tagged attributes of a manifest row (measurements `m`,
    default the row's own `measured`). ok is None when the attribute makes no claim. ``neutral_range``: a
    neutral range must measure between the monotonous and singsong bounds (else it is either of them)."""
    m = m if m is not None else row["measured"]
    res: dict = {}
    q = row["voice_quality"]
    f0 = m.get("f0_median_hz")
    if row.get("pitch_level"):
        if not _finite(f0):
            res["pitch"] = (False, "no F0")
        else:
            st = 12 * math.log2(f0 / S.GENDER_CENTRE_HZ[row["gender"]])
            lo, hi = S.PITCH_ACCEPT_ST[row["pitch_level"]]
            res["pitch"] = (lo <= st <= hi, f"{st:+.2f} st")
    else:
        res["pitch"] = (None, "whispered")
    res["range"] = _check_range(row.get("range_level"), q, m.get("f0_range_st"), neutral_range)
    rate = m.get("rate_syl_per_s")
    lo, hi = RATE_BANDS[row["rate_level"]]
    res["rate"] = ((lo <= rate <= hi) if _finite(rate) else False, f"{rate} syl/s")
    vf, jit = m.get("voiced_fraction") or 0.0, m.get("jitter")
    if q == "whispered":
        res["voice_quality"] = (vf <= WHISPER_MAX_VF, f"voiced {vf:.2f}")
    elif q == "creaky":
        ok = vf >= 0.1 and _finite(jit) and jit >= CREAKY_MIN_JITTER
        res["voice_quality"] = (ok, f"jitter {jit}")
    else:
        ok = vf >= VOICED_MIN_VF and (not _finite(jit) or jit < NORMAL_MAX_JITTER)
        res["voice_quality"] = (ok, f"voiced {vf:.2f} jitter {jit}")
    npz = m.get("n_pauses", 0)
    if row["delivery"] == "flowing":
        res["delivery"] = (npz == 0, f"{npz} pauses")
    else:
        res["delivery"] = (npz >= 2, f"{npz} pauses")
    if q != "whispered" and _finite(f0):
        lo, hi = GENDER_F0_BOUNDS[row["gender"]]
        res["gender"] = (lo <= f0 <= hi, f"F0 {f0:.0f} Hz")
    else:
        res["gender"] = (None, "no F0")
    return res


def _check_range(level: str | None, quality: str, spread, neutral_range: bool) -> tuple[bool | None, str]:
    """(ok, detail) of a clip's range level against its measured F0 spread; None where it claims nothing checkable
    (a whisper has no range; a creak's F0 flutter makes it unmeasurable, so creaky clips use the neutral range)."""
    checked = level in ("monotonous", "singsong") or (level == "neutral" and neutral_range and quality == "normal")
    if not checked:
        return None, "not tagged"
    if not _finite(spread):
        return False, "no F0"
    ok = {"monotonous": spread <= RANGE_MONO_MAX_ST, "singsong": spread >= RANGE_SINGSONG_MIN_ST,
          "neutral": RANGE_MONO_MAX_ST < spread < RANGE_SINGSONG_MIN_ST}[level]
    return ok, f"{spread:.2f} st"


def _level_of(row: dict, attr: str):
    return {"pitch": row.get("pitch_level"), "range": row.get("range_level"), "rate": row["rate_level"],
            "voice_quality": row["voice_quality"], "delivery": row["delivery"], "gender": row["gender"]}[attr]


def summarize(rows: list[dict], checks: list[dict]) -> dict:
    """Agreement per attribute and per level: {attr: {level: {"checked", "agree"}}}."""
    per: dict = defaultdict(lambda: defaultdict(lambda: {"checked": 0, "agree": 0}))
    for row, chk in zip(rows, checks):
        for attr, (ok, _) in chk.items():
            if ok is None:
                continue
            cell = per[attr][str(_level_of(row, attr))]
            cell["checked"] += 1
            cell["agree"] += int(bool(ok))
    out = {}
    for attr in ATTRIBUTES:
        levels = {k: dict(v) for k, v in sorted(per[attr].items())}
        tot = sum(v["checked"] for v in levels.values())
        agr = sum(v["agree"] for v in levels.values())
        out[attr] = {"checked": tot, "agree": agr, "agreement": round(agr / tot, 4) if tot else None,
                     "levels": levels}
    return out


def gold_labels(row: dict) -> dict:
    """{suite attribute: the class the corpus claims for ``row``, or None where it claims none of the suite's classes
    (a whisper has no pitch, a neutral range is untagged, a creaky voice is neither normal nor whispered)}."""
    a = {"gender": row["gender"], "pitch": row.get("pitch_level"), "rate": row["rate_level"],
         "range": row.get("range_level") or "neutral", "quality": row["voice_quality"], "delivery": row["delivery"]}
    return {attr: spec["gold"](a) for attr, spec in S.SUITES.items()}


def classification_suites(rows: list[dict]) -> dict:
    """{attribute: (rows with their gold ``classification_tag``, rows that claim none of its classes)} from the
    test split's kept rows."""
    suites = {attr: ([], []) for attr in S.SUITES}
    for r in rows:
        for attr, gold in gold_labels(r).items():
            labelled, negatives = suites[attr]
            if gold is None:
                negatives.append(r)
            else:
                labelled.append(dict(r, classification_tag=gold))
    return suites


def evaluation_suite(suites_meta: dict, n_test: int) -> dict:
    """``suites.json``: an ``evaluate --suite`` file (see :func:`paraspeechclap.evaluate.suites.suite_from_json`):
    retrieval over the test split and one classification task per attribute with clips (empty ones are left out,
    and their manifests stay beside it). Paths are relative to the corpus folder; ``counts`` is for people."""
    doc = {"name": "synth", "description": "zero-shot tasks of the synthetic style corpus (test split)",
           "template": S.TAG_TEMPLATE, "audio_root": "audio", "retrieval": {}, "classification": {}}
    if n_test:
        doc["retrieval"]["test"] = {"manifest": "test.jsonl"}
    for attr, meta in suites_meta.items():
        if sum(meta["counts"].values()):
            doc["classification"][attr] = dict(meta)
    return doc


#: the files a generation writes besides the audio and calibration.json (relative to the output folder)
OUTPUT_FILES = ("train.jsonl", "validation.jsonl", "test.jsonl", "dropped.jsonl",
                *(f"test_{attr}.jsonl" for attr in S.SUITES), *(f"test_{attr}_negatives.jsonl" for attr in S.SUITES),
                "suites.json", "verification.json", "CORPUS_CARD.md")


def finalize_corpus(out: Path, rows: list[dict], calib: dict, settings: dict,
                    audio_digests: dict[str, str] | None = None) -> dict:
    """Verify rendered rows, drop mismatches, write manifests, suites, verification.json and the card.

    The audio of a dropped clip is deleted only while it is still the file this run wrote (its digest in
    ``audio_digests``, keyed by the path relative to ``out``). The other files replace those in ``out``: call this
    through :func:`~paraspeechclap.synth.generate.generate_corpus`, which first checks that they are synth's own.
    """
    from .card import write_card

    out = Path(out)
    errors = [r for r in rows if "error" in r]
    good = [r for r in rows if "error" not in r]
    checks = [check_row(r, neutral_range=settings.get(NEUTRAL_RANGE_CHECKED, False)) for r in good]
    generated_per_split = dict(Counter(r["split"] for r in rows))
    kept, dropped = {s: [] for s in ("train", "validation", "test")}, []
    for r, chk in zip(good, checks):
        r["verification"] = {k: v[0] for k, v in chk.items()}
        fails = {k: v[1] for k, v in chk.items() if v[0] is False}
        if fails:
            dropped.append(dict(r, drop_reasons=fails))
            rel = f"audio/{S.SOURCE}/{r['relative_audio_path']}"
            remove_owned(out, [rel], {rel: (audio_digests or {}).get(rel)})
        else:
            kept[r["split"]].append(r)
    # the manifests, suites, verification and card belong together: staged, then moved into place at once
    stage = temporary_name(out / ".synth")
    os.mkdir(stage, 0o777)
    try:
        for split, rs in kept.items():
            for r in rs:
                r.pop("index", None)
                r.pop("split", None)
            schemas.write_jsonl(stage / f"{split}.jsonl", rs, "synth-row")
        schemas.write_jsonl(stage / "dropped.jsonl", dropped + [dict(e) for e in errors], "synth-dropped-row")
        suites_meta = {}
        for attr, (srows, negatives) in classification_suites(kept["test"]).items():
            fname, nname = f"test_{attr}.jsonl", f"test_{attr}_negatives.jsonl"
            schemas.write_jsonl(stage / fname, srows, "synth-row")
            schemas.write_jsonl(stage / nname, negatives, "synth-row")
            suites_meta[attr] = {"candidates": S.SUITES[attr]["candidates"], "manifest": fname,
                                 "counts": dict(Counter(r["classification_tag"] for r in srows)),
                                 **({"negatives": nname} if negatives else {})}
        suites_doc = {"template": S.TAG_TEMPLATE, "audio_root": "audio", "suites": suites_meta}  # for the card
        schemas.write(stage / "suites.json", evaluation_suite(suites_meta, len(kept["test"])), "evaluation-suite")
        summary = {
            "generated": len(rows), "render_errors": len(errors), "kept": sum(len(v) for v in kept.values()),
            "dropped": len(dropped), "kept_per_split": {k: len(v) for k, v in kept.items()},
            "generated_per_split": generated_per_split,
            "drop_reasons": dict(Counter(k for d in dropped for k in d["drop_reasons"])),
            "agreement": summarize(good, checks),
            "thresholds": thresholds(), "settings": settings,
        }
        schemas.write(stage / "verification.json", summary, "synth-verification")
        write_card(out, summary, suites_doc, kept, dest=stage)
        for name in OUTPUT_FILES:
            os.replace(stage / name, out / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return summary


def thresholds() -> dict:
    return {"gender_centre_hz": S.GENDER_CENTRE_HZ, "pitch_accept_st": S.PITCH_ACCEPT_ST,
            "range_mono_max_st": RANGE_MONO_MAX_ST, "range_singsong_min_st": RANGE_SINGSONG_MIN_ST,
            "rate_bands_syl_per_s": RATE_BANDS, "whisper_max_voiced_fraction": WHISPER_MAX_VF,
            "voiced_min_fraction": VOICED_MIN_VF, "creaky_min_jitter": CREAKY_MIN_JITTER, "normal_max_jitter": NORMAL_MAX_JITTER,
            "gender_f0_bounds_hz": GENDER_F0_BOUNDS}


def verify_corpus(out: str | os.PathLike, workers: int = 2, progress: bool = True) -> dict:
    """Re-measure the stored (augmented) audio of an existing corpus and re-check every tag.

    Does not modify the manifests; writes `verification_stored.json` (refused, before any work, when a file of
    that name is there that synth did not write) and returns its content.
    Stored audio carries noise/reverb, so agreement can be a little lower than on the clean signal.
    """
    from multiprocessing import get_context

    from tqdm import tqdm

    out = Path(out)
    record = read_record(out)
    if os.path.lexists(out / STORED) and not owns(out, STORED, record):
        raise OutputExistsError(f"{out / STORED}: exists and was not written by synth (not in {RECORD}, or "
                                "changed since); it is never replaced: move it away first")
    if os.path.lexists(out / RECORD) and record is None:
        raise OutputExistsError(f"{out / RECORD}: exists and is not synth's record; it is never replaced")
    record = {k: v for k, v in (record or {}).items() if k != RECORD}
    rows, bad_rows = read_corpus_rows(out)
    if not rows:
        raise FileNotFoundError(f"{out}: no readable row in train/validation/test.jsonl"
                                + (f" ({len(bad_rows)} bad, first: {bad_rows[0]})" if bad_rows else ""))
    args = [(str(out / "audio" / r["source"] / r["relative_audio_path"]), r.get("syllables")) for r in rows]
    neutral = _generation_settings(out).get(NEUTRAL_RANGE_CHECKED, False)  # as the corpus was verified when made
    from ..lifetime import die_with_parent

    with get_context("spawn").Pool(max(1, workers), initializer=die_with_parent,  # not fork: see generate.py
                                   initargs=(os.getpid(),)) as pool:
        meas = list(tqdm(pool.imap(_measure_file, args, chunksize=8), total=len(args),
                         desc="re-measuring", disable=not progress))
    checks, ok_rows = [], []
    missing = 0
    for r, m in zip(rows, meas):
        if m is None:
            missing += 1
            continue
        checks.append(check_row(r, m, neutral_range=neutral))
        ok_rows.append(r)
    summary = {"clips": len(rows), "unreadable": missing, "bad_rows": bad_rows, "agreement": summarize(ok_rows, checks),
               "all_tags_agree": int(sum(all(v[0] is not False for v in c.values()) for c in checks)),
               "thresholds": thresholds()}
    schemas.write(out / STORED, summary, "synth-stored-verification")
    record[STORED] = file_digest(out / STORED)
    write_record(out, record, complete=True)
    return summary


def _generation_settings(out: Path) -> dict:
    """The settings the corpus in ``out`` was generated with ({} when its verification.json is missing or bad)."""
    try:
        return schemas.read(out / "verification.json", "synth-verification")["settings"]
    except (OSError, schemas.SchemaError):
        return {}


def read_corpus_rows(out: Path) -> tuple[list[dict], list[str]]:
    """The kept rows of every split (each with its ``split``), checked as ``synth-row`` s; and the bad rows, each
    ``FILE:LINE: why`` (reported and skipped)."""
    rows, bad = [], []
    for split in ("train", "validation", "test"):
        path = out / f"{split}.jsonl"
        if not path.exists():
            continue
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(dict(schemas.validate(json.loads(line), "synth-row", f"{path}:{number}"), split=split))
                except schemas.SchemaError as err:
                    bad.append(str(err))
                except ValueError as err:
                    bad.append(f"{path}:{number}: not valid JSON ({err})")
    return rows, bad


def _measure_file(args: tuple):
    return _measure_path(*args)


def _measure_path(path: str, syllables):
    import soundfile as sf

    from .measure import measure_clip
    try:
        y, sr = sf.read(path, dtype="float32", always_2d=False)
    except Exception:  # noqa: BLE001
        return None
    if y.ndim > 1:
        y = y.mean(axis=1)
    return measure_clip(y, sr, syllables=syllables)


__all__ = ["check_row", "summarize", "finalize_corpus", "verify_corpus", "classification_suites", "evaluation_suite",
           "gold_labels", "read_corpus_rows", "thresholds"]
