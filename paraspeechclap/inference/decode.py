"""Decoding ahead of the encoder: a small thread pool that decodes a bounded number of inputs in advance."""
from __future__ import annotations

import collections
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def prefetch(items: Iterable[T], decode: Callable[[T], R], ahead: int = 4,
             workers: int = 2) -> Iterator[tuple[T, R | BaseException]]:
    """``(item, decode(item))`` in input order, decoding at most ``ahead`` items before they are consumed.

    A decode that raises yields the exception instead of a result (the caller reports it and goes on). With
    ``workers == 0`` everything runs in the caller's thread. soundfile and soxr release the GIL while they work, so
    threads overlap decoding with the encoder.
    """
    if workers <= 0 or ahead <= 0:
        for item in items:
            try:
                yield item, decode(item)
            except Exception as err:  # reported per item by the caller
                yield item, err
        return
    pending: "collections.deque[tuple[T, Future]]" = collections.deque()
    source = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="paraspeechclap-decode") as pool:
        try:
            for item in source:
                pending.append((item, pool.submit(decode, item)))
                if len(pending) >= ahead:
                    yield _result(*pending.popleft())
            while pending:
                yield _result(*pending.popleft())
        finally:
            for _, future in pending:
                future.cancel()


def _result(item, future: Future):
    try:
        return item, future.result()
    except Exception as err:
        return item, err
