"""Training versions of recorded human speech, labelled from measurements relative to the speaker.

Each recorded clip (its median F0 measured with Praat, its speaker's gender known) is turned into versions that
differ from it in pitch and rate by known amounts:

- pitch: a target level is drawn (low / medium / high, as the synthetic corpus: semitone offsets from the gender
  centre, ``styles.GENDER_CENTRE_HZ``), and the clip is shifted to land inside it, by sox ``pitch`` (formants move)
  or by WORLD resynthesis (formants kept), half each. The tag follows the *shifted* F0 relative to the speaker's
  gender, so versions of one voice are labelled in the order of their F0 (raising a voice never makes it deeper),
  and the label is the gender-relative bin only where it is clear (|offset| >= 3 st for deep / high-pitched,
  <= 1.5 st for medium-pitched).
- rate: tempo 0.7x (slow), 1.0x (the recording's own, taken as measured) or 1.5x (fast), +-5 %, sox ``tempo``.
- channel: the synthetic corpus' train augmentation (EQ, reverberation, noise, level) plus, for a quarter of the
  versions, the telephone band (300-3400 Hz) or a low-pass at 3-5 kHz.

Ladders (:func:`clip_ladder`) are the fine-grained complement: versions of one clip a fixed step apart (200 cents),
one shift method, one tempo and one channel for all of them, so that of two neighbours only the pitch differs. The
order loss then sees neighbours as close as the steps a listener (or ``eval_real_speech.py``'s monotone column) tells
apart, not only the several-semitone jumps between the gender-relative bins above.
"""

from __future__ import annotations

import math

import numpy as np

from . import styles as S
from .augment import augment
from .captions import full_caption, partial_caption
from .voice_shift import low_pass, sox_pitch, sox_tempo, telephone_band, trim_silence, world_analyse, world_pitch

#: pitch level -> semitone offsets from the gender centre a version is shifted into (clear bins only).
REAL_PITCH_TARGET_ST = {"low": (-7.0, -3.0), "medium": (-1.5, 1.5), "high": (3.0, 7.0)}
#: largest shift applied (cents); levels out of reach for a clip are not drawn for it.
MAX_SHIFT_CENTS = 1000.0
#: rate level -> tempo factor range
REAL_TEMPO = {"slow": (0.66, 0.74), "measured": (0.95, 1.05), "fast": (1.42, 1.58)}
REAL_RATE_PROBS = {"slow": 0.3, "measured": 0.4, "fast": 0.3}


def offset_st(f0_hz: float, gender: str) -> float:
    return 12.0 * math.log2(f0_hz / S.GENDER_CENTRE_HZ[gender])


def pitch_level(offset: float) -> str | None:
    """Clear gender-relative bin of a semitone offset, else None."""
    for level, (lo, hi) in REAL_PITCH_TARGET_ST.items():
        if lo <= offset <= hi:
            return level
    if offset < REAL_PITCH_TARGET_ST["low"][0]:
        return "low"
    if offset > REAL_PITCH_TARGET_ST["high"][1]:
        return "high"
    return None


def draw_version(clip_f0_hz: float, gender: str, rng: np.random.Generator) -> dict:
    """Shift (cents), method, tempo and the resulting levels for one version of a clip."""
    base = offset_st(clip_f0_hz, gender)
    reachable = [lvl for lvl, (lo, hi) in REAL_PITCH_TARGET_ST.items()
                 if hi - base >= -MAX_SHIFT_CENTS / 100 and lo - base <= MAX_SHIFT_CENTS / 100]
    level = str(rng.choice(reachable))
    lo, hi = REAL_PITCH_TARGET_ST[level]
    lo, hi = max(lo, base - MAX_SHIFT_CENTS / 100), min(hi, base + MAX_SHIFT_CENTS / 100)
    target = float(rng.uniform(lo, hi))
    rate = str(rng.choice(list(REAL_RATE_PROBS), p=list(REAL_RATE_PROBS.values())))
    return {"pitch": level, "pitch_offset_st": round(target, 2), "shift_cents": round(100 * (target - base), 1),
            "method": "world" if rng.random() < 0.5 else "sox", "rate": rate,
            "tempo": round(float(rng.uniform(*REAL_TEMPO[rate])), 3)}


def make_version(y: np.ndarray, v: dict, rng: np.random.Generator, analysis=None) -> tuple[np.ndarray, dict]:
    """The waveform of version ``v`` (from :func:`draw_version`) of the 16 kHz clip ``y``."""
    if v["method"] == "world":
        z = world_pitch(y, v["shift_cents"], analysis)
    else:
        z = sox_pitch(y, v["shift_cents"])
    z = sox_tempo(z, v["tempo"])
    band = rng.random()
    channel = {}
    if band < 0.15:
        z, channel["band"] = telephone_band(z), "telephone"
    elif band < 0.25:
        cutoff = float(rng.uniform(3000, 5000))
        z, channel["band"] = low_pass(z, cutoff), f"lowpass-{cutoff:.0f}"
    z, params = augment(z, rng, "train")
    return z, {**channel, **params}


def tags_and_captions(gender: str, v: dict, rng: np.random.Generator) -> tuple[list[str], list[str], list[str]]:
    """(intrinsic_tags, situational_tags, captions) of a real-speech version (no range/quality/delivery claims)."""
    intrinsic = [gender] + S.PITCH_TAGS[v["pitch"]]
    if v["pitch"] == "high" and v["pitch_offset_st"] >= S.SHRILL_MIN_ST:
        intrinsic.append("shrill")
    situational = list(S.RATE_TAGS[v["rate"]])
    attrs = {"gender": gender, "pitch": v["pitch"], "pitch_offset_st": v["pitch_offset_st"], "rate": v["rate"],
             "range": "neutral", "quality": "normal", "delivery": "flowing"}
    # partial captions over gender / pitch / rate only (the others are not measured on real speech)
    caps = [full_caption({**attrs}, False, np.random.default_rng(rng.integers(1 << 31)))]
    caps.append(partial_caption(attrs, [t for t in intrinsic + situational if t not in ("flowing",)], False, rng))
    return intrinsic, situational, caps


def clip_versions(y: np.ndarray, clip_f0_hz: float, gender: str, n: int, rng: np.random.Generator):
    """Yield (waveform, row fields) for ``n`` versions of one clip."""
    y = trim_silence(y)
    analysis = None
    for _ in range(n):
        v = draw_version(clip_f0_hz, gender, rng)
        if v["method"] == "world" and analysis is None:
            analysis = world_analyse(y)
        z, channel = make_version(y, v, rng, analysis)
        intrinsic, situational, caps = tags_and_captions(gender, v, rng)
        yield z, {**v, "channel": channel, "intrinsic_tags": intrinsic, "situational_tags": situational,
                  "text_description": caps}


#: ladder rungs: semitone steps between neighbours, and how many rungs (centred on the original, jittered as a whole)
LADDER_STEP_CENTS = 200.0
LADDER_RUNGS = 6


def clip_ladder(y: np.ndarray, rng: np.random.Generator, rungs: int = LADDER_RUNGS,
                step_cents: float = LADDER_STEP_CENTS):
    """Yield (waveform, row fields) for ``rungs`` versions of one 16 kHz clip ``step_cents`` apart.

    The rungs are centred on the original (offset by up to half a step, drawn once), made by one method (WORLD or
    sox, drawn once), at one tempo (0.9-1.1) and through one channel: the augmentation is drawn from the same seed
    for every rung, so the versions differ in pitch alone."""
    y = trim_silence(y)
    method = "world" if rng.random() < 0.5 else "sox"
    analysis = world_analyse(y) if method == "world" else None
    jitter = float(rng.uniform(-0.5, 0.5)) * step_cents
    tempo = round(float(rng.uniform(0.9, 1.1)), 3)
    channel_seed = int(rng.integers(1 << 62))
    for k in range(rungs):
        cents = round((k - (rungs - 1) / 2) * step_cents + jitter, 1)
        z = world_pitch(y, cents, analysis) if method == "world" else sox_pitch(y, cents)
        z = sox_tempo(z, tempo)
        z, params = augment(z, np.random.default_rng(channel_seed), "train")
        yield z, {"shift_cents": cents, "method": method, "tempo": tempo, "rung": k, "channel": params}
