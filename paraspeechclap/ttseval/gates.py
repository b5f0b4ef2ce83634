"""Per-clip quality gates (``gates-v1.json``): silence, clipping, DC offset, noise floor, and duration against the
transcript's length. They flag clips that an adherence score should not be trusted on (and that a system could use to
game a score); flagged clips are counted and listed, and every number is reported with and without them.

Measured on the file's own samples (native rate and channels), read in one piece: a TTS clip is short, and a file
longer than the table's ``max_seconds`` is flagged ``too_long`` without being read.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = ["GATES_FILE", "GateTable", "GateResult", "packaged_gates", "measure", "syllables"]

GATES_FILE = Path(__file__).with_name("gates-v1.json")
FORMAT = "paraspeechclap-ttseval-gates"
KNOWN = ("silence", "clipping", "dc_offset", "noise_floor", "duration")


@dataclass
class GateResult:
    """The measurements of one clip and the gates it fails (empty: it passes)."""

    flags: list[str] = field(default_factory=list)
    measures: dict[str, float | None] = field(default_factory=dict)
    error: str | None = None


class GateTable:
    """A validated gate table; :meth:`identity` (``v1@<hash>``) goes into the signature."""

    def __init__(self, doc: Mapping[str, Any], source: str = ""):
        from .signature import short_hash

        if doc.get("format") != FORMAT or not doc.get("version"):
            raise ValueError(f"{source or 'gates'}: format must be {FORMAT!r} with a version")
        gates = doc.get("gates")
        if not isinstance(gates, dict) or set(gates) - set(KNOWN):
            raise ValueError(f"{source}: 'gates' must be an object with keys among {KNOWN}")
        self.version = str(doc["version"])
        self.digest = short_hash(doc)
        self.frame_seconds = float(doc.get("frame_seconds", 0.02))
        self.max_seconds = float(doc.get("max_seconds", 600))
        self.gates = {k: dict(v) for k, v in gates.items()}
        self.source = source

    @classmethod
    def from_file(cls, path: str | Path) -> "GateTable":
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: cannot read the gate table ({err})") from None
        return cls(doc, source=str(path))

    def identity(self) -> str:
        return f"{self.version}@{self.digest}"

    def to_dict(self) -> dict:
        return {"version": self.version, "frame_seconds": self.frame_seconds, "max_seconds": self.max_seconds,
                "gates": self.gates}


@functools.lru_cache(maxsize=None)
def _cached(path: str) -> GateTable:
    return GateTable.from_file(path)


def packaged_gates(path: str | Path | None = None) -> GateTable:
    return _cached(str(Path(path).resolve() if path is not None else GATES_FILE))


def syllables(text: str) -> int:
    """The transcript's syllable count (the rule the synthetic corpus uses to measure speaking rate)."""
    from ..synth.styles import count_syllables

    return count_syllables(text)


def _frame_db(mono: np.ndarray, rate: int, frame_seconds: float) -> np.ndarray:
    hop = max(1, int(round(frame_seconds * rate)))
    n = len(mono) // hop
    if n == 0:
        return np.full(1, -120.0)
    frames = mono[: n * hop].reshape(n, hop).astype(np.float64)
    return 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)


def measure(path: str, table: GateTable, transcript: str | None = None) -> GateResult:
    """Read ``path`` and apply every gate of ``table`` (the duration gate only with a transcript)."""
    import soundfile as sf

    out = GateResult()
    try:
        info = sf.info(path)
        if info.frames / max(1, info.samplerate) > table.max_seconds:
            out.flags.append("too_long")
            return out
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as err:  # noqa: BLE001 - any decoder error makes the clip unmeasurable, not the run fail
        out.error = f"cannot be read for the quality gates: {err}"
        return out
    return apply(data, rate, table, transcript)


def apply(data: np.ndarray, rate: int, table: GateTable, transcript: str | None = None) -> GateResult:
    """The gates on samples ``data`` [frames, channels] at ``rate``."""
    out = GateResult()
    g = table.gates
    frame = table.frame_seconds
    mono = data.mean(axis=1) if data.size else np.zeros(0, np.float32)
    db = _frame_db(mono, rate, frame)
    peak = float(db.max())
    active = (db > peak - g.get("silence", {}).get("active_db_below_peak", 40.0)) & \
             (db > g.get("silence", {}).get("min_active_dbfs", -60.0))
    where = np.flatnonzero(active)
    m = out.measures
    m["seconds"] = len(mono) / rate
    m["active_seconds"] = float(active.sum() * frame)
    m["clipped_share"] = float(np.max(np.mean(np.abs(data) >= g.get("clipping", {}).get("level", 0.999), axis=0))) \
        if data.size else 0.0
    m["dc_offset"] = float(np.max(np.abs(data.mean(axis=0)))) if data.size else 0.0
    if "noise_floor" in g:
        lo, hi = np.percentile(db, [g["noise_floor"]["low_percentile"], g["noise_floor"]["high_percentile"]])
        m["snr_db"] = float(hi - lo)
    span = (where[-1] - where[0] + 1) * frame if where.size else 0.0
    m["speech_span_seconds"] = float(span)
    if transcript:
        m["syllables_per_second"] = syllables(transcript) / span if span > 0 else None
    checks = {
        "silence": lambda c: m["active_seconds"] < c["min_active_seconds"],
        "clipping": lambda c: m["clipped_share"] > c["max_share"],
        "dc_offset": lambda c: m["dc_offset"] > c["max_abs_mean"],
        "noise_floor": lambda c: m["active_seconds"] > 0 and m["snr_db"] < c["min_snr_db"],
        "duration": lambda c: transcript is not None and bool(transcript.strip()) and (
            m.get("syllables_per_second") is None
            or not c["min_syllables_per_second"] <= m["syllables_per_second"] <= c["max_syllables_per_second"]),
    }
    out.flags = [name for name in KNOWN if name in g and checks[name](g[name])]
    return out
