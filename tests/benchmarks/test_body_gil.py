"""benchmarks/body_gil.py: each step of a body's reading measured in every buffer (a small body; the figures are the
script's)."""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_every_buffer_reads_counts_and_parses_a_body_with_their_stalls():
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    bench = importlib.import_module("body_gil")
    raw = json.dumps({"audio": {"base64": "QUFB" * 400_000}, "captions": ["a"]}).encode()   # 1.6 MB
    meter = bench.StallMeter()
    meter.start()
    try:
        steps = [bench.large_body(meter, raw, kind) for kind in bench.BUFFERS]
    finally:
        meter.stopped = True
        meter.join(2)
    assert [s["buffer"] for s in steps] == ["bytearray", "shared mmap", "service"]
    for step in steps:
        for name in ("read", "count_quotes", "parse"):
            assert step[name]["ms"] >= 0 and step[name]["longest_stall_ms"] >= 0
    assert bench.small_body_us(4096, True, 3) > 0 and bench.small_body_us(4096, False, 3) > 0
