"""Constants and helpers of the annotate tests (their own module: test modules do not import conftest)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

NUM_CLIPS = 30
SHARD_SIZE = 8
NUM_SHARDS = -(-(NUM_CLIPS + 2) // SHARD_SIZE)  # 30 clips + 2 bad files


def write_corpus(folder: Path, num_clips: int = NUM_CLIPS, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(num_clips):
        seconds = 0.6 + 0.15 * (i % 7)
        t = np.arange(int(16000 * seconds)) / 16000
        f0 = 90 + 12 * i
        wave = 0.25 * np.sin(2 * np.pi * f0 * t) * (1 + 0.5 * np.sin(2 * np.pi * (2 + i % 5) * t))
        wave += 0.02 * (1 + i % 3) * rng.standard_normal(len(t))
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        sf.write(sub / f"clip{i:03d}.wav", wave.astype(np.float32), 16000)
    (folder / "b" / "broken.wav").write_bytes(b"this is not audio")
    sf.write(folder / "b" / "tiny.wav", np.zeros(0, np.float32), 16000)  # empty: nothing to encode
    return folder


def audio_paths(table) -> list:
    """The audio column's paths: a string (format 1) or a datasets.Audio struct's path (format 2)."""
    return [v["path"] if isinstance(v, dict) else v for v in table.column("audio").to_pylist()]


def assert_same_rows(a, b, atol: float = 1e-4) -> None:
    """Same ids, rows, statuses and audio; embeddings and probabilities equal up to float noise (thread counts and
    batch composition differ between engines)."""
    assert a.column("row").to_pylist() == b.column("row").to_pylist()
    for col in ("id", "status", "duration"):
        assert a.column(col).to_pylist() == b.column(col).to_pylist(), col
    assert audio_paths(a) == audio_paths(b)
    ea, eb = a.column("embedding").to_pylist(), b.column("embedding").to_pylist()
    for x, y in zip(ea, eb):
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_allclose(x, y, atol=atol)
    for col in a.column_names:
        if col.startswith("p_"):
            np.testing.assert_allclose(np.array(a.column(col).to_pylist(), dtype=float),
                                       np.array(b.column(col).to_pylist(), dtype=float), atol=atol)
