"""Prometheus text-format metrics, written by hand (no dependency): request counts by endpoint and status, latency
histograms per endpoint, batch-size histogram, queue depth and in-flight gauges, rejected requests."""
from __future__ import annotations

import threading
from collections import defaultdict
from typing import Iterable, Sequence

TIMING_KEY = "paraspeechclap.timing"   # where in the ASGI scope a request's phase durations (seconds) are kept
TIMING_PHASES = ("admit", "decode", "queue", "model", "back")   # in the order of a request's life
TIMING_PARTS = ("cpu", "runq")   # parts of "model" (Linux): the lane's CPU time, and its time waiting for a core


def request_timing(scope) -> dict:
    """The phase durations of the request whose ASGI scope this is (a fresh dict for a scope-less caller)."""
    return scope.setdefault(TIMING_KEY, {}) if isinstance(scope, dict) else {}


def server_timing(phases: dict, total: float) -> bytes:
    """A ``Server-Timing`` header value (W3C; browsers' network panels show it): each phase and the total, in ms.
    admit: arrival to admission (body, parsing, header probe); decode; queue: waiting for a model lane; model: the
    lane's work; back: from the lane's last result until the event loop resumed the request; then the model phase's
    CPU time and run-queue wait (``cpu``, ``runq``; the rest of it the lane waited for the GIL or memory)."""
    parts = [f"{name};dur={1000 * phases[name]:.1f}" for name in TIMING_PHASES + TIMING_PARTS if name in phases]
    return ", ".join(parts + [f"total;dur={1000 * total:.1f}"]).encode()


LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Histogram:
    def __init__(self, buckets: Sequence[float]):
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.total += 1
        self.sum += value

    def lines(self, name: str, labels: str = "") -> Iterable[str]:
        sep = "," if labels else ""
        for bound, count in zip(self.buckets, self.counts):
            yield f'{name}_bucket{{{labels}{sep}le="{_num(bound)}"}} {count}'
        yield f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.total}'
        brace = f"{{{labels}}}" if labels else ""
        yield f"{name}_sum{brace} {self.sum:.6f}"
        yield f"{name}_count{brace} {self.total}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Thread-safe counters; :meth:`render` gives the ``text/plain; version=0.0.4`` exposition."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}
        self.batch_items = Histogram(BATCH_BUCKETS)
        self.batch_seconds = Histogram(LATENCY_BUCKETS)
        self.items = 0
        self.item_errors = 0
        self.rejected = 0
        self.timeouts = 0
        self.paced_refusals = 0
        self.paced_seconds = 0.0

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(endpoint, int(status))] += 1
            self.latency.setdefault(endpoint, Histogram(LATENCY_BUCKETS)).observe(seconds)
            if status == 429:
                self.rejected += 1
            elif status == 504:
                self.timeouts += 1

    def paced(self, seconds: float) -> None:
        """A refusal held back ``seconds`` before its answer (0: answered at once, not counted)."""
        if seconds > 0:
            with self._lock:
                self.paced_refusals += 1
                self.paced_seconds += seconds

    def batch(self, items: int, errors: int, seconds: float) -> None:
        with self._lock:
            self.batch_items.observe(items)
            self.batch_seconds.observe(seconds)
            self.items += items
            self.item_errors += errors

    def render(self, queue_depth: int, in_flight: int, queue_limit: int,
               yields: dict[str, tuple[int, float]] | None = None) -> str:
        """The Prometheus text; ``yields``: per kind of bulk work, how often it paused for express work and for how
        many seconds in all (:mod:`.yielding`)."""
        with self._lock:
            out = ["# HELP paraspeechclap_requests_total HTTP requests by endpoint and status code.",
                   "# TYPE paraspeechclap_requests_total counter"]
            for (endpoint, status), count in sorted(self.requests.items()):
                out.append(f'paraspeechclap_requests_total{{endpoint="{_escape(endpoint)}",status="{status}"}} {count}')
            out += ["# HELP paraspeechclap_request_latency_seconds Request latency by endpoint.",
                    "# TYPE paraspeechclap_request_latency_seconds histogram"]
            for endpoint, histogram in sorted(self.latency.items()):
                out += histogram.lines("paraspeechclap_request_latency_seconds", f'endpoint="{_escape(endpoint)}"')
            out += ["# HELP paraspeechclap_batch_items Audio items per model batch (dynamic batching).",
                    "# TYPE paraspeechclap_batch_items histogram", *self.batch_items.lines("paraspeechclap_batch_items"),
                    "# HELP paraspeechclap_batch_seconds Time the model worker spent on one batch.",
                    "# TYPE paraspeechclap_batch_seconds histogram",
                    *self.batch_seconds.lines("paraspeechclap_batch_seconds"),
                    "# HELP paraspeechclap_items_total Audio items embedded by the model worker.",
                    "# TYPE paraspeechclap_items_total counter", f"paraspeechclap_items_total {self.items}",
                    "# HELP paraspeechclap_item_errors_total Audio items that failed in the model worker.",
                    "# TYPE paraspeechclap_item_errors_total counter",
                    f"paraspeechclap_item_errors_total {self.item_errors}",
                    "# HELP paraspeechclap_rejected_total Requests answered 429 (queue full).",
                    "# TYPE paraspeechclap_rejected_total counter", f"paraspeechclap_rejected_total {self.rejected}",
                    "# HELP paraspeechclap_timeouts_total Requests answered 504 (timed out).",
                    "# TYPE paraspeechclap_timeouts_total counter", f"paraspeechclap_timeouts_total {self.timeouts}",
                    "# HELP paraspeechclap_paced_refusals_total Refusals (4xx) held back for their turn.",
                    "# TYPE paraspeechclap_paced_refusals_total counter",
                    f"paraspeechclap_paced_refusals_total {self.paced_refusals}",
                    "# HELP paraspeechclap_paced_seconds_total Seconds refusals were held back, in all.",
                    "# TYPE paraspeechclap_paced_seconds_total counter",
                    f"paraspeechclap_paced_seconds_total {self.paced_seconds:.6f}"]
        out += ["# HELP paraspeechclap_queue_depth Jobs waiting for the model worker.",
                "# TYPE paraspeechclap_queue_depth gauge", f"paraspeechclap_queue_depth {queue_depth}",
                "# HELP paraspeechclap_in_flight_items Items admitted and not yet answered (bounded by the queue limit).",
                "# TYPE paraspeechclap_in_flight_items gauge", f"paraspeechclap_in_flight_items {in_flight}",
                "# HELP paraspeechclap_queue_limit_items The bound on in-flight items; past it requests get 429.",
                "# TYPE paraspeechclap_queue_limit_items gauge", f"paraspeechclap_queue_limit_items {queue_limit}"]
        if yields:
            out += ["# HELP paraspeechclap_yield_pauses_total Pauses of bulk work (uploads, niced decodes) for express "
                    "work.", "# TYPE paraspeechclap_yield_pauses_total counter",
                    *[f'paraspeechclap_yield_pauses_total{{work="{_escape(k)}"}} {n}' for k, (n, _) in yields.items()],
                    "# HELP paraspeechclap_yield_seconds_total Seconds bulk work paused for express work, in all.",
                    "# TYPE paraspeechclap_yield_seconds_total counter",
                    *[f'paraspeechclap_yield_seconds_total{{work="{_escape(k)}"}} {t:.6f}' for k, (_, t) in yields.items()]]
        return "\n".join(out) + "\n"
