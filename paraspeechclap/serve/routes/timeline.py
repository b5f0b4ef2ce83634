"""``/v1/timeline``: per-window scores of a long recording, streamed: the file is measured in one decoding pass and
its windows are read in a second one (both passes are charged), a chunk (about ``chunk_seconds`` of windows) at a
time, so a request holds one chunk of windows and never the whole recording at 16 kHz."""
from __future__ import annotations

import itertools

import numpy as np
from fastapi import APIRouter, Depends, Request

from ...audio import AudioError, BLOCK_BYTES, BLOCK_SECONDS
from ...inference.plan import window_spans
from ...inference.stream import measure, windows as stream_windows
from .. import schemas
from ..admission import PROMPT_COST, decode_cost, timeline_windows
from ..deps import guard, request_body, serve_state
from ..errors import ApiError
from ..inputs import number, string_list
from ..state import ServeState
from ..work import admitted
from .scoring import probed

router = APIRouter(tags=["scoring"], dependencies=[Depends(guard)])


def spans_of(engine, samples: int, window_seconds: float, hop_seconds: float) -> list[tuple[int, int]]:
    """The windows ``model.timeline`` cuts (the same rule: at least the encoder's shortest input, the last window
    aligned to the end)."""
    rate = engine.sampling_rate
    window = max(int(window_seconds * rate), engine.min_audio_samples)
    overlap = window - max(1, int(hop_seconds * rate))
    return window_spans(samples, window, min(overlap, window - 1))


@router.post("/v1/timeline", openapi_extra=schemas.body(schemas.TIMELINE), responses=schemas.RESPONSES)
async def timeline(request: Request, body: dict = Depends(request_body), state: ServeState = Depends(serve_state)):
    """Per-window cosines of a long recording with each caption (windows embedded as clips of their own)."""
    c = state.config
    captions = string_list(body, "captions", c.max_captions, c.max_caption_chars, max_depth=c.max_json_depth)
    window = number(body, "window_seconds", 3.0, 0.1, 60.0)
    hop = number(body, "hop_seconds", 1.0, 0.05, 60.0)
    if hop > window:
        raise ApiError(400, "bad_field", f"need hop_seconds <= window_seconds, got {hop:g} > {window:g}")
    source, header = await probed(state, body, c.max_timeline_seconds)
    count = timeline_windows(header.seconds, window, hop)
    if count > c.max_timeline_windows:
        raise ApiError(413, "too_many_windows", f"{header.seconds:.0f} s at a {hop:g} s hop is {count} windows, over "
                                                f"{c.max_timeline_windows}; use a longer hop")
    per_chunk = max(1, int(c.chunk_seconds // window))
    held = (per_chunk + 1) * window + BLOCK_SECONDS   # a chunk of windows, the window being cut, one decoded block
    engine, model = state.model.engine, state.model
    async with admitted(state, request, f"this timeline ({count} windows of {window:g} s)",
                        count * window + 2 * decode_cost(header.samples) + PROMPT_COST * len(captions),
                        audio_seconds=held) as work:
        try:
            audio = await work.run(lambda: measure(source, engine.sampling_rate, "audio", work.stop_if_over),
                                   header.samples)
        except AudioError as err:
            raise ApiError(400, "bad_audio", f"audio could not be decoded: {err.problem}") from None
        if audio.samples < engine.min_audio_samples:
            raise ApiError(400, "bad_audio", f"audio is too short: {audio.samples} samples at 16 kHz")
        if audio.samples > (c.max_timeline_seconds + 1) * engine.sampling_rate:   # a header that said less
            raise ApiError(413, "audio_too_long", f"audio lasts {audio.samples / engine.sampling_rate:.1f} s; the "
                                                  f"limit is {c.max_timeline_seconds:g} s")
        spans = spans_of(engine, audio.samples, window, hop)
        per_second = header.samples / max(header.seconds, 1e-3)   # input samples (frames x channels) per second
        # a chunk of windows may need one more decoder block (BLOCK_SECONDS, at most BLOCK_BYTES of float32)
        chunk_samples = int(max(per_second * (per_chunk * hop + window), min(per_second * BLOCK_SECONDS,
                                                                             BLOCK_BYTES // 4)))
        text = await work.call(lambda: model.embed_text(captions))
        pieces = stream_windows(audio, spans, engine.sampling_rate, normalise=False)
        rows = []
        try:
            # the windows are read a chunk at a time (one decoder block held), where the samples of a chunk say
            while part := await work.run(lambda: list(itertools.islice(pieces, per_chunk)), chunk_samples):
                rows.append(await work.embed([(w, engine.sampling_rate) for w in part],
                                             lambda results: _scores(results, text)))
                await work.check_client()
        except AudioError as err:
            raise ApiError(400, "bad_audio", f"audio could not be decoded: {err.problem}") from None
        finally:
            try:
                pieces.close()
            except ValueError:   # still running in a thread (the request was cancelled): it ends with its file
                pass
    return {"captions": captions, "start": [a / engine.sampling_rate for a, _ in spans],
            "end": [b / engine.sampling_rate for _, b in spans], "scores": np.concatenate(rows).tolist(),
            "seconds": audio.samples / engine.sampling_rate, "provenance": state.provenance}


def _scores(results, text: np.ndarray) -> np.ndarray:
    for result in results:
        if not result.ok:
            raise ValueError(f"a window could not be embedded: {result.error}")
    return np.stack([result.embedding for result in results]) @ text.T
