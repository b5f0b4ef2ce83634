"""Refusals answered at a bounded rate: past a burst, a 4xx waits for its turn in a stream of ``rate`` a second (at
most until ``delay`` seconds after its request arrived), after the request's work is done and its memory given back.

Why: a refusal is cheap but not free (HTTP parsing, routing, the answer: a few ms of the event loop each), and a
client that is refused comes back at once, so the faster the server refuses, the more it is asked and the more of
its cores refusals take from the requests it serves. Holding the answer costs a timer; a client that waits for its
answers (as a browser, a retry loop or a pool of connections does) then sends at most one request per ``delay``
seconds per connection. A few refusals a second (a user's typo) are never held; successful answers never are.
"""
from __future__ import annotations

import asyncio
import time

BURST_SECONDS = 2.0   # refusals answered at once after a quiet spell: this many seconds' worth of the rate


class RefusalPacer:
    """The generic cell-rate algorithm (as ``limit_req`` in nginx): ``tat`` is the time at which the stream of
    refusals would be back on schedule. At most ``hold`` refusals wait at once; past that they are answered at once
    (a flood of new connections must not be held open until the connection limit answers 503)."""

    def __init__(self, rate: float, delay: float, hold: int):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.delay, self.hold = float(delay), int(hold)
        self.tolerance = BURST_SECONDS                 # = (BURST_SECONDS * rate) refusals x interval
        self.tat = 0.0
        self.holding = 0

    def wait_for(self, now: float, arrived: float | None = None) -> float:
        """Seconds the refusal ready at ``now`` waits (0: answer it now), at most until ``delay`` after its request
        ``arrived`` (default: now); books its turn."""
        if not self.interval or self.delay <= 0:
            return 0.0
        tat = max(self.tat, now) + self.interval
        wait = tat - now - self.tolerance
        if wait <= 0:
            self.tat = tat
            return 0.0
        if self.holding >= self.hold:
            return 0.0
        self.tat = min(tat, now + self.tolerance + self.delay)
        return max(0.0, min(wait, (now if arrived is None else arrived) + self.delay - now))

    async def pace(self, arrived: float | None = None) -> float:
        """Wait for this refusal's turn (``arrived``: when its request came, on the ``time.perf_counter`` clock);
        the seconds waited."""
        wait = self.wait_for(time.perf_counter(), arrived)
        if wait <= 0:
            return 0.0
        self.holding += 1
        try:
            await asyncio.sleep(wait)
        finally:
            self.holding -= 1
        return wait
