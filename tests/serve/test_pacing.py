"""Refusals at a bounded rate (paraspeechclap.serve.pacing and the Guard that holds them): a burst goes out at once,
then each refusal waits its turn, never past its delay; successes are never held; a held refusal has given its body
memory back."""
from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request

from paraspeechclap.serve.pacing import BURST_SECONDS, RefusalPacer


def test_a_burst_goes_at_once_then_refusals_wait_their_turn():
    pacer = RefusalPacer(rate=10, delay=1.0, hold=100)
    burst = int(BURST_SECONDS * 10)
    assert [pacer.wait_for(100.0) for _ in range(burst)] == [0.0] * burst
    waits = [pacer.wait_for(100.0) for _ in range(5)]
    assert waits == sorted(waits) and waits[0] > 0
    assert [round(b - a, 6) for a, b in zip(waits, waits[1:])] == [0.1] * 4   # one turn every 1/rate s
    assert pacer.wait_for(100.0 + BURST_SECONDS + 5) == 0.0                      # a quiet spell refills the burst


def test_no_refusal_waits_past_its_delay_after_arrival_nor_over_the_hold():
    pacer = RefusalPacer(rate=1, delay=0.5, hold=100)
    for _ in range(int(BURST_SECONDS)):
        pacer.wait_for(0.0)
    assert all(pacer.wait_for(0.0) <= 0.5 for _ in range(50))
    assert pacer.wait_for(10.3, arrived=10.0) <= 0.2 + 1e-9      # its request came 0.3 s ago: 0.2 s left at most
    assert pacer.wait_for(10.0, arrived=9.0) == 0.0              # past its delay already: answered at once
    held = RefusalPacer(rate=1, delay=0.5, hold=2)
    held.holding = 2
    for _ in range(10):
        assert held.wait_for(0.0) == 0.0                         # a flood is not held open past the hold


def test_no_rate_never_holds():
    assert RefusalPacer(rate=0, delay=1.0, hold=10).wait_for(0.0) == 0.0


def _get(url: str) -> tuple[int, float]:
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            status = response.status
    except urllib.error.HTTPError as err:
        status = err.code
    return status, time.perf_counter() - start


def _metric(base: str, name: str) -> float:
    text = urllib.request.urlopen(base + "/metrics", timeout=30).read().decode()
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))


def test_the_service_holds_refusals_past_the_burst_and_never_successes(live_server, clip):
    base, _ = live_server(refusal_rate=4, refusal_delay=0.6)
    refused = [_get(base + "/v1/nothing-here") for _ in range(int(BURST_SECONDS * 4) + 4)]
    assert {status for status, _ in refused} == {404}
    assert _metric(base, "paraspeechclap_paced_refusals_total") >= 3
    assert max(seconds for _, seconds in refused) <= 0.6 + 5.0   # held at most its delay (generous for slow CI)
    held_before = _metric(base, "paraspeechclap_paced_refusals_total")
    body = json.dumps({"audio": {"base64": base64.b64encode(clip).decode()}, "captions": ["a low voice"]}).encode()
    request = urllib.request.Request(base + "/v1/score", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200
    assert _metric(base, "paraspeechclap_paced_refusals_total") == held_before   # a success is never held


def test_a_held_refusal_has_given_its_body_memory_back(live_server):
    base, app = live_server(refusal_rate=1, refusal_delay=3.0)
    for _ in range(int(BURST_SECONDS) + 1):   # spend the burst: the next refusal is held
        _get(base + "/v1/nothing-here")
    budget = app.state.serve.body_budget
    body = json.dumps({"audio": {"base64": "QUFB" * 200_000}, "captions": ["a"]}).encode()   # not audio: 4xx
    answer: dict = {}

    def post() -> None:
        request = urllib.request.Request(base + "/v1/score", data=body, headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=60)
        except urllib.error.HTTPError as err:
            answer["status"] = err.code

    pacer = app.state.serve.pacer
    thread = threading.Thread(target=post)
    thread.start()
    deadline = time.time() + 20
    while pacer.holding == 0 and "status" not in answer and time.time() < deadline:
        time.sleep(0.001)
    assert pacer.holding == 1 and budget.used == 0   # held, its body's charge given back
    thread.join(30)
    assert 400 <= answer["status"] < 500
