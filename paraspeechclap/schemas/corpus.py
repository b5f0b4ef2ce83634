"""The synthetic style corpus (``paraspeechclap synth --out DIR``): its rows, suite file and records.

``DIR/{train,validation,test}.jsonl`` and ``DIR/test_<attribute>.jsonl`` hold ``synth-row`` s (manifest rows with
the synthesis settings, the attribute levels and the measurements that verified them; suite rows add the gold
``classification_tag``), ``DIR/dropped.jsonl`` the ``synth-dropped-row`` s, ``DIR/suites.json`` an
``evaluation-suite`` (:mod:`.evaluation`), ``DIR/verification.json`` and ``DIR/verification_stored.json`` the label
checks, ``DIR/calibration.json`` the voices' pitch calibration and ``DIR/synth_outputs.json`` the ``ownership-record``
of every file synth wrote there.
"""
from __future__ import annotations

from typing import Any, Optional

from pydantic import NonNegativeFloat, NonNegativeInt, StrictBool, StrictStr

from .core import Contract, Record, declare, unchanged
from .manifest import ManifestRow

Number = Optional[float]


class Measured(Record):
    """Acoustic measurements of the clean signal (None where undefined, such as F0 of a whisper)."""

    duration: NonNegativeFloat
    level_dbfs: float
    active_s: NonNegativeFloat
    n_pauses: NonNegativeInt
    pause_s: NonNegativeFloat
    voiced_fraction: Number
    f0_median_hz: Number
    f0_range_st: Number
    jitter: Number
    hnr_db: Number
    rate_syl_per_s: Number = None


class SynthRow(ManifestRow):
    """A kept clip (pitch and range levels are None for whispers, which have no F0)."""

    source: StrictStr
    relative_audio_path: StrictStr
    text_description: list[StrictStr]
    intrinsic_tags: list[StrictStr]
    situational_tags: list[StrictStr]
    duration: NonNegativeFloat
    speaker: StrictStr
    voice: StrictStr
    engine: StrictStr
    accent: Optional[StrictStr]
    held_out_voice: StrictBool
    gender: StrictStr
    pitch_level: Optional[StrictStr]
    pitch_offset_st: Number
    rate_level: StrictStr
    range_level: Optional[StrictStr]
    voice_quality: StrictStr
    delivery: StrictStr
    espeak_voice: StrictStr
    espeak_pitch: int
    espeak_wpm: int
    espeak_range: Optional[StrictStr]
    jitter_factor: float
    sentence: StrictStr
    spoken_text: StrictStr
    syllables: NonNegativeInt
    augmentation: dict[str, Any]
    measured: Measured
    measured_level_dbfs_final: float
    #: attribute -> the check passed (None: the clip makes no claim on it)
    verification: dict[str, Optional[StrictBool]]
    classification_tag: Optional[StrictStr] = None  # test_<attribute>.jsonl only


class DroppedRow(Record):
    """A clip that was not kept: a render error (``error``), or a full row whose checks failed (``drop_reasons``)."""

    index: NonNegativeInt
    split: StrictStr
    error: Optional[StrictStr] = None
    drop_reasons: Optional[dict[str, StrictStr]] = None


class Agreement(Record):
    checked: NonNegativeInt
    agree: NonNegativeInt
    agreement: Optional[float]
    levels: dict[str, dict[str, NonNegativeInt]]


class Verification(Record):
    """``verification.json``: counts, agreement of tags and measurements, thresholds and generation settings."""

    generated: NonNegativeInt
    render_errors: NonNegativeInt
    kept: NonNegativeInt
    dropped: NonNegativeInt
    kept_per_split: dict[str, NonNegativeInt]
    generated_per_split: dict[str, NonNegativeInt]
    drop_reasons: dict[str, NonNegativeInt]
    agreement: dict[str, Agreement]
    thresholds: dict[str, Any]
    settings: dict[str, Any]


class StoredVerification(Record):
    """``verification_stored.json`` (``synth --verify-only``): the stored audio re-measured."""

    clips: NonNegativeInt
    unreadable: NonNegativeInt
    bad_rows: list[str] = []  # manifest rows that could not be read, FILE:LINE: why
    agreement: dict[str, Agreement]
    all_tags_agree: NonNegativeInt
    thresholds: dict[str, Any]


class VoiceCalibration(Record):
    """``calibration.json``: per voice and range level, espeak pitch parameters and the F0 they gave."""

    key: dict[str, Any]
    voices: dict[str, dict[str, dict[str, list[Any]]]]


class OwnershipRecord(Record):
    """The files a command wrote into a folder it shares with others, with their digests (None: reserved, being
    written); see :func:`paraspeechclap.fileio.read_record`."""

    written_by: StrictStr
    complete: StrictBool
    files: dict[str, Optional[StrictStr]]


SYNTH_ROW = declare(Contract(
    "synth-row", 1, SynthRow, "a kept clip of the synthetic corpus (synth writes; every row reader reads)",
    upgrades={0: unchanged}, extends="manifest-row"))
SYNTH_DROPPED_ROW = declare(Contract(
    "synth-dropped-row", 1, DroppedRow, "a clip synth dropped, with why (dropped.jsonl; read by people)",
    upgrades={0: unchanged}))
SYNTH_VERIFICATION = declare(Contract(
    "synth-verification", 1, Verification, "synth's verification.json (the card is made from it)",
    upgrades={0: unchanged}))
SYNTH_STORED_VERIFICATION = declare(Contract(
    "synth-stored-verification", 1, StoredVerification, "synth --verify-only's verification_stored.json",
    upgrades={0: unchanged}))
SYNTH_VOICE_CALIBRATION = declare(Contract(
    "synth-voice-calibration", 1, VoiceCalibration, "synth's calibration.json (reused by the next run into DIR)",
    upgrades={0: unchanged}))
OWNERSHIP_RECORD = declare(Contract(
    "ownership-record", 1, OwnershipRecord, "synth_outputs.json: what synth wrote into DIR (read before writing)",
    upgrades={0: unchanged}))
