"""Server-Timing: each answer says where its time went (admission, decoding, the queue for a model lane, the model)."""
from __future__ import annotations

import re

from serve_helpers import b64, wav_bytes

import sys

from paraspeechclap.serve.metrics import TIMING_PARTS, TIMING_PHASES, server_timing

CAPTIONS = ["A person speaks in a deep voice.", "A person speaks in a high-pitched voice."]


def phases(header: str) -> dict[str, float]:
    return {name: float(ms) for name, ms in re.findall(r"(\w+);dur=([0-9.]+)", header)}


def test_the_header_lists_phases_in_order_then_the_total():
    assert server_timing({"model": 0.0171, "admit": 0.002}, 0.0204) == b"admit;dur=2.0, model;dur=17.1, total;dur=20.4"
    assert server_timing({}, 0.0005) == b"total;dur=0.5"
    assert server_timing({"cpu": 0.01, "model": 0.02}, 0.03) == b"model;dur=20.0, cpu;dur=10.0, total;dur=30.0"


def test_a_score_reports_its_phases_within_its_total(make_client):
    client = make_client()
    response = client.post("/v1/score", json={"audio": b64(wav_bytes(2.0)), "captions": CAPTIONS})
    assert response.status_code == 200
    got = phases(response.headers["server-timing"])
    linux = sys.platform.startswith("linux")
    assert list(got) == [*TIMING_PHASES, *(TIMING_PARTS if linux else ()), "total"]
    assert got["model"] > 0 and sum(got[p] for p in TIMING_PHASES) <= got["total"] + 0.5   # ms, rounding
    if linux:   # the lane's CPU and run-queue time are parts of its wall time
        assert 0 < got["cpu"] <= got["model"] + 0.2 and 0 <= got["runq"] <= got["model"] + 0.2
    refused = client.post("/v1/score", json={"captions": CAPTIONS})    # refused before admission: the total only
    assert refused.status_code == 400 and list(phases(refused.headers["server-timing"])) == ["total"]
