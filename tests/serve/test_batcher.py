"""The dynamic batcher on its own, with a duck-typed model: batches gathered, items routed back, failures isolated."""
from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from paraspeechclap.serve.batcher import Batcher, QueueFull


class SlowModel:
    """embed_audio over numbers: row = [x, 1]; 'bad' raises; each call records its batch size."""

    default_batch_size = 64

    def __init__(self, delay: float = 0.05):
        self.delay, self.calls = delay, []

    def embed_audio(self, items, batch_size=None):
        self.calls.append(len(items))
        time.sleep(self.delay)
        if any(item == "bad" for item in items):
            raise ValueError("bad input")
        return np.array([[float(x), 1.0] for x in items], np.float32)


def test_concurrent_jobs_share_a_batch_and_get_their_own_rows():
    model = SlowModel()
    batcher = Batcher(model, max_batch_items=16, max_wait_ms=200, max_queue_items=64)
    try:
        gate = threading.Event()
        batcher.call(lambda: gate.wait(5))          # let jobs pile up behind a busy worker
        futures = [batcher.submit([i, i + 100], ticket=batcher.admit(2)) for i in range(5)]
        gate.set()
        for i, future in enumerate(futures):
            results = future.result(5)
            assert [r.embedding[0] for r in results] == [i, i + 100] and [r.index for r in results] == [0, 1]
        assert model.calls[0] == 10                  # the five jobs ran as one batch
        assert batcher.in_flight == 0
    finally:
        batcher.close()


def test_batch_bound_and_one_bad_item_fails_only_itself():
    model = SlowModel(0.01)
    batcher = Batcher(model, max_batch_items=4, max_wait_ms=100, max_queue_items=64)
    try:
        gate = threading.Event()
        batcher.call(lambda: gate.wait(5))
        good = batcher.submit([1, 2, 3])
        mixed = batcher.submit(["bad", 5])
        gate.set()
        assert all(r.ok for r in good.result(5))
        bad, fine = mixed.result(5)
        assert not bad.ok and "bad input" in bad.error and fine.ok and fine.embedding[0] == 5
        assert model.calls[:2] == [3, 2]              # 3 + 2 > 4 items: two batches, the second retried per item
    finally:
        batcher.close()


def test_admission_bound_retry_after_and_cancelled_jobs():
    model = SlowModel(0.01)
    batcher = Batcher(model, max_batch_items=8, max_wait_ms=0, max_queue_items=3)
    try:
        ticket = batcher.admit(2)
        with pytest.raises(QueueFull) as raised:
            batcher.admit(2)
        assert raised.value.retry_after >= 1
        gate = threading.Event()
        batcher.call(lambda: gate.wait(5))
        future = batcher.submit([1, 2], ticket=ticket)
        assert future.cancel()                        # a request that timed out while queued
        gate.set()
        time.sleep(0.2)
        assert batcher.in_flight == 0 and 2 not in model.calls
        after = batcher.submit([7], after=lambda results: results[0].embedding[0] * 2)
        assert after.result(5) == 14
    finally:
        batcher.close()


def test_cheapest_first_and_only_similar_costs_share_a_batch():
    from paraspeechclap.serve.batcher import similar

    assert similar(4, 12) and similar(100, 180) and not similar(4, 61) and not similar(61, 900)
    model = SlowModel(0.01)
    batcher = Batcher(model, max_batch_items=16, max_wait_ms=50, max_queue_items=64)
    try:
        gate = threading.Event()
        batcher.call(lambda: gate.wait(5))
        expensive = batcher.submit([1, 2, 3], priority=61.0)
        cheap = [batcher.submit([10 + i], priority=4.0) for i in range(2)]
        gate.set()
        expensive.result(5)
        assert all(f.result(5) for f in cheap)
        assert model.calls[:2] == [2, 3]     # the two cheap jobs first, together; the expensive one alone after
    finally:
        batcher.close()


def test_cheap_requests_run_on_the_express_lane_while_the_bulk_lane_is_busy():
    from paraspeechclap.serve.batcher import BULK, EXPRESS

    model = SlowModel(0.01)
    batcher = Batcher(model, max_batch_items=16, max_wait_ms=0, max_queue_items=64, express_cost=8.0)
    try:
        assert batcher.lane_for(8.0).name == EXPRESS and batcher.lane_for(8.1).name == BULK
        gate = threading.Event()
        expensive = batcher.admit(1, cost=100.0)
        blocker = batcher.call(lambda: gate.wait(10), owner=expensive)   # the bulk lane is busy until the gate opens
        cheap = batcher.admit(1, cost=4.0)
        assert batcher.submit([5], priority=4.0, owner=cheap).result(5)[0].embedding[0] == 5   # not behind it
        assert not blocker.done()
        gate.set()
        blocker.result(5)
        cheap.release()
        expensive.release()
        assert batcher.in_flight == 0 and batcher.cost_in_flight == 0
        assert all(lane.cost == 0 for lane in batcher.lanes.values())
    finally:
        batcher.close()


def test_jobs_run_in_key_order_so_an_older_expensive_request_is_not_starved():
    model = SlowModel(0.01)
    batcher = Batcher(model, max_batch_items=16, max_wait_ms=0, max_queue_items=64, express_cost=0.0)
    try:
        old, new = batcher.admit(1, cost=61.0), batcher.admit(1, cost=4.0)
        assert new.key < old.key                       # admitted together, the cheap one would go first ...
        old.key = new.key - 1.0                        # ... but one admitted a while before the cheap one goes first
        gate, order = threading.Event(), []
        batcher.call(lambda: gate.wait(5), owner=old)
        futures = [batcher.submit([2], lambda results: order.append("cheap"), priority=4.0, owner=new),
                   batcher.submit([1], lambda results: order.append("old"), priority=61.0, owner=old)]
        gate.set()
        for future in futures:
            future.result(5)
        assert order == ["old", "cheap"] and model.calls[-2:] == [1, 1]   # not similar: two batches
    finally:
        batcher.close()


def test_admission_refuses_work_that_could_not_be_done_before_its_deadline():
    from paraspeechclap.serve.batcher import BULK, TooSlow

    batcher = Batcher(SlowModel(0.0), max_queue_items=64, timeout=10.0)   # estimates must fit in 5 s
    try:
        lane = batcher.lanes[BULK]
        assert batcher.admit(1, cost=400.0).release() is None                # not measured yet: admitted
        lane.rate = 10.0                                                     # 10 s of audio per second
        with pytest.raises(TooSlow, match="measured rate"):
            batcher.admit(1, cost=30.0)                                      # alone: 2 x 30 / 10 = 6 s > 5 s
        first = batcher.admit(1, cost=20.0)                                  # (0 + 40) / 10 = 4 s
        with pytest.raises(QueueFull) as raised:
            batcher.admit(1, cost=20.0)                                      # (20 + 40) / 10 = 6 s
        assert raised.value.retry_after >= 1 and "could not be done in time" in str(raised.value)
        first.release()
        batcher.admit(1, cost=20.0).release()
    finally:
        batcher.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priorities are Linux's")
def test_the_most_expensive_bulk_work_runs_at_a_lower_cpu_priority():
    import os

    batcher = Batcher(SlowModel(0.0), express_cost=8.0, bulk_nice=5, nice_cost=60.0)
    try:
        base = os.getpriority(os.PRIO_PROCESS, 0)
        ids = {name: batcher.call(threading.get_native_id, owner=batcher.admit(1, cost=cost), priority=cost).result(5)
               for name, cost in (("express", 0.0), ("bulk", 20.0), ("expensive", 100.0))}
        assert os.getpriority(os.PRIO_PROCESS, ids["expensive"]) == max(base, 5)
        assert os.getpriority(os.PRIO_PROCESS, ids["bulk"]) == base == os.getpriority(os.PRIO_PROCESS, ids["express"])
        assert len(set(ids.values())) == 3   # the expensive work ran on a thread of its own
        batch = batcher.submit([3.0], owner=batcher.admit(1, cost=100.0), priority=100.0).result(5)
        assert batch[0].ok and batcher.model.calls == [1]   # batches too, not only calls
    finally:
        batcher.close()
