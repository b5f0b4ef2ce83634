"""Acoustic measurements used to verify style labels (Praat through parselmouth, plus numpy).

Per clip: F0 median (Hz), F0 range in semitones (10th-90th percentile), voiced fraction of the
active (non-silent) time, jitter and harmonics-to-noise ratio (creak), level (dBFS over active
frames), active time, internal pauses, and the articulation rate (syllables of the spoken text per
second of active speech; the text is known to the generator, the time is measured).
"""

from __future__ import annotations

import math

import numpy as np

FRAME_S = 0.01
ACTIVE_DB_BELOW_PEAK = 35.0      # frames within this many dB of the loudest frame count as active
PAUSE_MIN_S = 0.28               # a silent gap this long inside speech is a pause
GAP_FILL_S = 0.12                # shorter gaps (stop closures) count as active


def _frame_db(y: np.ndarray, sr: int) -> np.ndarray:
    hop = int(round(FRAME_S * sr))
    win = 2 * hop
    n = max(1, 1 + (len(y) - win) // hop)
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    idx = np.minimum(idx, len(y) - 1)
    rms = np.sqrt(np.mean(y[idx].astype(np.float64) ** 2, axis=1) + 1e-12)
    return 20 * np.log10(rms + 1e-12)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index runs where mask is True."""
    if mask.size == 0:
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def activity(y: np.ndarray, sr: int) -> dict:
    """Active speech time, pauses and level from a frame-energy detector."""
    db = _frame_db(y, sr)
    # Active: within 35 dB of the peak and clearly above the noise floor (5th percentile frame).
    peak = np.percentile(db, 99)
    floor = np.percentile(db, 5)
    thr = max(peak - ACTIVE_DB_BELOW_PEAK, floor + 6.0)
    active = db > thr
    runs = _runs(active)
    if not runs:
        return {"active_s": 0.0, "n_pauses": 0, "pause_s": 0.0, "level_dbfs": float(db.max()),
                "active_mask": active}
    gaps = [(e0, s1) for (_, e0), (s1, _) in zip(runs[:-1], runs[1:])]
    fill = int(round(GAP_FILL_S / FRAME_S))
    for e0, s1 in gaps:
        if s1 - e0 < fill:
            active[e0:s1] = True
    pauses = [(s1 - e0) * FRAME_S for e0, s1 in gaps if (s1 - e0) * FRAME_S >= PAUSE_MIN_S]
    first, last = runs[0][0], runs[-1][1]
    span = active[first:last]
    level = 10 * np.log10(np.mean(10 ** (db[active] / 10))) if active.any() else float(db.max())
    return {"active_s": float(span.sum() * FRAME_S), "n_pauses": len(pauses),
            "pause_s": float(sum(pauses)), "level_dbfs": float(level), "active_mask": active}


def measure_clip(y: np.ndarray, sr: int, syllables: int | None = None, voice_quality: bool = True) -> dict:
    """All measurements of one clip (floats; NaN where undefined, e.g. F0 of a whisper).

    voice_quality=False skips jitter and HNR (faster, for pitch calibration).
    """
    import parselmouth
    from parselmouth.praat import call

    y = np.asarray(y, dtype=np.float64)
    act = activity(y, sr)
    snd = parselmouth.Sound(y, sampling_frequency=sr)
    pitch = snd.to_pitch_ac(time_step=FRAME_S, pitch_floor=55.0, pitch_ceiling=600.0)
    f0 = pitch.selected_array["frequency"]
    voiced = f0 > 0
    # voiced fraction relative to active frames (pitch frames and energy frames share the 10 ms grid)
    times = pitch.xs()
    mask = act["active_mask"]
    fi = np.clip(np.round(times / FRAME_S).astype(int), 0, len(mask) - 1)
    active_at_f0 = mask[fi]
    n_active = int(active_at_f0.sum())
    vf = float((voiced & active_at_f0).sum() / n_active) if n_active else 0.0
    out = {"duration": len(y) / sr, "level_dbfs": act["level_dbfs"], "active_s": act["active_s"],
           "n_pauses": act["n_pauses"], "pause_s": act["pause_s"], "voiced_fraction": vf,
           "f0_median_hz": math.nan, "f0_range_st": math.nan, "jitter": math.nan, "hnr_db": math.nan}
    fv = f0[voiced]
    if fv.size >= 10:
        med = float(np.median(fv))
        st = 12 * np.log2(fv / med)
        out["f0_median_hz"] = med
        st = st[np.abs(st) < 10.0]          # octave errors of the tracker are ~12 st away: ignore them
        out["f0_range_st"] = float(np.percentile(st, 90) - np.percentile(st, 10))
    if fv.size >= 10 and voice_quality:
        try:
            pp = call([snd, pitch], "To PointProcess (cc)")
            out["jitter"] = float(call(pp, "Get jitter (local)", 0, 0, 0.0001, 0.02, 1.3))
        except Exception:  # noqa: BLE001 - Praat raises on degenerate input
            pass
        harm = snd.to_harmonicity_ac(time_step=FRAME_S, minimum_pitch=75.0)
        hv = harm.values[harm.values > -100]
        if hv.size:
            out["hnr_db"] = float(np.mean(hv))
    out["rate_syl_per_s"] = (float(syllables / act["active_s"]) if syllables and act["active_s"] > 0.2
                             else math.nan)
    # JSON-friendly: undefined values are None (not NaN)
    return {k: ((round(v, 4) if math.isfinite(v) else None) if isinstance(v, float) else v)
            for k, v in out.items()}
