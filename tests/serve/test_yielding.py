"""Bulk work steps aside for prompt work within a share of its time: the credit, the asyncio gate large bodies wait
at (through the Guard, their timeout extended by their pauses), and the thread gate the niced model thread waits at
before each torch operation."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from paraspeechclap.serve.yielding import Credit, PromptGate, YieldGate


def test_credit_is_earned_at_its_share_and_capped(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    credit = Credit(share=0.75, cap=0.5)
    assert credit.available() == 0.5            # starts full
    credit.spend(0.5)
    clock[0] += 0.1                              # 0.1 s not paused earns 0.3 s of pause
    assert credit.available() == pytest.approx(0.3)
    clock[0] += 10
    assert credit.available() == 0.5            # never more than the cap
    with pytest.raises(ValueError):
        Credit(share=1.0)


def test_a_body_waits_while_prompt_work_is_in_flight_and_no_longer_than_its_credit():
    async def main():
        gate = PromptGate()
        assert await gate.wait(Credit()) == 0.0          # nothing in flight: no wait

        async def express(seconds):
            with gate.prompt():
                await asyncio.sleep(seconds)

        task = asyncio.create_task(express(0.1))
        await asyncio.sleep(0)
        waited = await gate.wait(Credit(cap=1.0))
        assert 0.07 <= waited <= 0.5 and task.done()      # until the express request left
        task = asyncio.create_task(express(2.0))
        await asyncio.sleep(0)
        waited = await gate.wait(Credit(cap=0.1))
        assert 0.07 <= waited <= 0.5 and not task.done()  # its credit ran out first
        assert gate.pauses == 2 and gate.paused == pytest.approx(waited + 0.1, abs=0.1)
        task.cancel()

    asyncio.run(main())


def test_the_guard_pauses_a_large_body_for_an_express_request_and_extends_its_deadline():
    from paraspeechclap.serve.config import ServeConfig
    from paraspeechclap.serve.http import Guard, body_budget
    from paraspeechclap.serve.metrics import Metrics
    from paraspeechclap.serve.yielding import YIELD_BODY

    piece = b"x" * (YIELD_BODY // 2)
    pieces = 6
    taken: list[float] = []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            taken.append(time.monotonic())
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive_piece():
        return {"type": "http.request", "body": piece, "more_body": len(taken) < pieces - 1}

    async def main():
        config = ServeConfig(body_timeout=0.3)
        gate = PromptGate()
        guard = Guard(app, Metrics(), config, body_budget(config), gate=gate)
        sent = []

        async def send(message):
            sent.append(message)

        async def express():
            with gate.prompt():
                await asyncio.sleep(0.2)

        headers = [(b"content-length", str(len(piece) * pieces).encode()), (b"content-type", b"text/plain")]
        started = time.monotonic()
        task = asyncio.create_task(express())
        await guard({"type": "http", "path": "/v1/score", "method": "POST", "headers": headers},
                    receive_piece, send)
        await task
        return started, sent, gate

    started, sent, gate = asyncio.run(main())
    assert sent[0]["status"] == 200                       # paused past its 0.3 s timeout, yet not a 408
    assert taken[1] - started < 0.15                      # its first MiB at once
    assert taken[2] - started >= 0.15                     # then it waited for the express request
    assert gate.pauses >= 1


def _steps_while_held(gate: YieldGate, prompt) -> tuple[int, int]:
    """A thread marked yielding on ``gate`` steps through checkpoints; ``prompt`` (a context manager) is held for
    0.22 s. Its steps during the hold (after 20 ms to reach a checkpoint) and after it."""
    progress, stop = [], threading.Event()

    def bulk():
        gate.yielding()
        while not stop.is_set():
            gate.checkpoint()
            progress.append(time.monotonic())
            time.sleep(0.001)

    thread = threading.Thread(target=bulk)
    thread.start()
    time.sleep(0.05)
    with prompt:
        time.sleep(0.02)
        held = len(progress)
        time.sleep(0.2)
        during = len(progress) - held
    time.sleep(0.05)
    stop.set()
    thread.join(2)
    return during, len(progress) - held - during


def test_a_yielding_thread_pauses_at_checkpoints_while_prompt_work_runs():
    gate = YieldGate(share=0.75, cap=1.0)
    gate.checkpoint()                                     # an unmarked thread never waits
    during, after = _steps_while_held(gate, gate.prompt())
    assert during <= 1 and after > 5                      # at most the step it was in, then on again
    assert gate.pauses >= 1 and gate.paused >= 0.15


def test_a_niced_model_connection_pauses_its_torch_operations_and_only_its_own():
    """The model process's NICE request marks its thread: from then on its torch calls wait while another
    thread's request runs, and the other threads' calls do not."""
    import torch

    from paraspeechclap.serve import modelproc
    from paraspeechclap.serve.yielding import GATE

    ran, stop, ready = [], threading.Event(), threading.Event()

    def niced():
        modelproc._run(None, modelproc.NICE, (5,), {})
        assert GATE.is_yielding()
        ready.set()
        x = torch.ones(4)
        while not stop.is_set():
            x = x + 1
            ran.append(time.monotonic())
            time.sleep(0.001)

    thread = threading.Thread(target=niced)
    thread.start()
    ready.wait(5)
    time.sleep(0.05)
    with GATE.prompt():
        time.sleep(0.02)
        held = len(ran)
        start = time.perf_counter()
        torch.ones(4) + 1                                 # this thread's calls pass
        assert time.perf_counter() - start < 0.05
        time.sleep(0.2)
        assert len(ran) <= held + 1
    time.sleep(0.05)
    stop.set()
    thread.join(2)
    assert len(ran) > held + 5


def test_metrics_count_the_pauses_of_uploads_and_niced_decodes(make_client):
    client = make_client()
    state = client.app.state.serve
    state.gate.pauses, state.gate.paused = 3, 0.25
    text = client.get("/metrics").text
    assert 'paraspeechclap_yield_pauses_total{work="upload"} 3' in text
    assert 'paraspeechclap_yield_seconds_total{work="upload"} 0.250000' in text
    assert 'paraspeechclap_yield_pauses_total{work="decode"}' in text


def test_a_gate_serves_one_event_loop_after_another():
    gate = PromptGate()

    async def busy_then_wait():
        with gate.prompt():
            waiter = asyncio.create_task(gate.wait(Credit(cap=1.0)))
            await asyncio.sleep(0.05)
        return await waiter

    for _ in range(2):   # a second loop (an app served again) gets an event of its own
        assert 0.03 <= asyncio.run(busy_then_wait()) <= 0.5


def test_a_niced_thread_also_waits_for_the_prompt_work_another_process_publishes():
    from paraspeechclap.serve.yielding import SharedCount

    front, child = YieldGate(cap=1.0), YieldGate(cap=1.0)
    front.shared()
    if front.publish is None:
        pytest.skip("no memfd on this system")
    child.watch = SharedCount(front.publish.fd)       # a mapping of its own, as the model process makes
    assert not child.watch
    with front.prompt():
        assert child.watch
    assert not child.watch
    during, after = _steps_while_held(child, front.prompt())
    assert during <= 1 and after > 5 and child.pauses >= 1
