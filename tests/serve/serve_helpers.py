"""Helpers of the service tests (their own module: test modules do not import conftest)."""
from __future__ import annotations

import base64
import contextlib
import io

import numpy as np

TONES = (100, 140, 220, 300, 420)   # Hz of the small index's clips (clip0.wav ... clip4.wav), 1 s each


def wav_bytes(seconds: float = 1.5, freq: float = 150.0, rate: int = 16000, fmt: str = "WAV") -> bytes:
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    buffer = io.BytesIO()
    sf.write(buffer, wave.astype(np.float32), rate, format=fmt)
    return buffer.getvalue()


def b64(data: bytes) -> dict:
    return {"base64": base64.b64encode(data).decode()}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settled(state, timeout: float = 5.0) -> tuple[int, float]:
    """The batcher's jobs and the body budget once the server has finished its bookkeeping: a client has its answer
    before the server's middleware releases the request's charge, so a test reading them at once would race it."""
    import time

    deadline = time.monotonic() + timeout
    while (state.batcher.in_flight or state.body_budget.used) and time.monotonic() < deadline:
        time.sleep(0.02)
    return state.batcher.in_flight, state.body_budget.used


class Connected:
    """A request whose client never leaves (what Work asks of it)."""

    async def is_disconnected(self) -> bool:
        return False


@contextlib.contextmanager
def request_work(state, seconds: float = 100.0):
    """The Work of a one-item request of ``seconds`` of audio admitted by the server's batcher (used inside a running
    event loop), closed afterwards."""
    from paraspeechclap.serve.work import Work

    work = Work(state, Connected(), state.batcher.admit(1, seconds), seconds)
    try:
        yield work
    finally:
        work.close()
