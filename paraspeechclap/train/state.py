"""The run's position (:class:`TrainState`) and graceful stopping (:class:`StopSignals`)."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field

import torch

logger = logging.getLogger("paraspeechclap.train")


def _counters() -> dict:
    return {"bad_items": 0, "items_read": 0, "samples": 0, "audio_seconds": 0.0, "nonfinite_steps": 0}


@dataclass
class TrainState:
    """Where the run is: optimizer steps taken, epoch, batches consumed in the epoch, counters.

    ``nonfinite_streak`` counts consecutive optimizer steps skipped for a non-finite loss or gradient."""

    step: int = 0
    epoch: int = 0
    position: int = 0
    counters: dict = field(default_factory=_counters)
    nonfinite_streak: int = 0
    last_saved: int = -1

    def to_dict(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "position": self.position, "counters": dict(self.counters),
                "nonfinite_streak": self.nonfinite_streak}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainState":
        st = cls(step=int(d["step"]), epoch=int(d["epoch"]), position=int(d["position"]),
                 nonfinite_streak=int(d.get("nonfinite_streak", 0)))
        st.counters.update(d.get("counters", {}))
        st.last_saved = st.step
        return st


def worker_ignore_signals(_worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: SIGINT/SIGTERM are for the main process, which stops at a step boundary
    and shuts its workers down (a terminal's Ctrl-C and a cluster's SIGTERM reach the whole process group)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class StopSignals:
    """SIGTERM (cluster preemption) and SIGINT (Ctrl-C) request a stop at the next step boundary, where the run
    saves a checkpoint and returns. A second SIGINT interrupts at once (KeyboardInterrupt)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received: int | None = None
        self._previous: dict = {}

    def install(self) -> "StopSignals":
        if threading.current_thread() is not threading.main_thread():
            logger.info("not in the main thread: SIGTERM/SIGINT keep their handlers (no graceful stop)")
            return self
        for s in self.SIGNALS:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.received is None:
            logger.warning("%s received: saving a checkpoint and stopping after this step "
                           "(Ctrl-C again to interrupt at once)", signal.Signals(signum).name)
        self.received = signum

    @property
    def name(self) -> str | None:
        return signal.Signals(self.received).name if self.received is not None else None

    def restore(self) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous.clear()


def agree(flags: list[int], dist) -> list[int]:
    """Element-wise maximum of small integer flags over all ranks (one all-reduce; local values when alone)."""
    if not dist.distributed:
        return list(flags)
    t = torch.tensor(flags, dtype=torch.long, device=dist.device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return [int(x) for x in t.tolist()]
