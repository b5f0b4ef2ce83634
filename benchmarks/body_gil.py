"""How long reading and parsing a request body takes and holds the GIL, per body buffer (the service's
``serve/body.py``): the largest JSON body (``--max-upload-mb`` of base64 audio) read into a ``bytearray(n)`` or a
shared anonymous mmap, as the service once did, or into :func:`body_buffer` as it does now (private memory in huge
pages, for bodies over ``MAPPED_BODY``); then its quote count (the earlier buffers: ``bytes.count`` over copied
pieces, as the service once counted; now :func:`count_bytes`), its long strings cut out and its parse. A thread
that sleeps 0.5 ms in a loop measures the longest stall each step caused (what the event loop and the express
lane's result hand-off waited). Then the cost of reading a 512 KiB body (a 4-clip reward) into a bytearray or a
fresh mapping.

    python benchmarks/body_gil.py
"""
from __future__ import annotations

import argparse
import json
import mmap
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

CHUNK = 65536   # what uvicorn hands the app at a time


class StallMeter(threading.Thread):
    """The longest time a 0.5 ms sleep took past its due, per step (ms): the GIL held by someone else."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stalls: list[float] = []
        self.stopped = False

    def run(self) -> None:
        while not self.stopped:
            start = time.perf_counter()
            time.sleep(0.0005)
            self.stalls.append(time.perf_counter() - start - 0.0005)

    def step(self, fn):
        time.sleep(0.05)
        self.stalls.clear()
        start = time.perf_counter()
        value = fn()
        took = time.perf_counter() - start
        return value, {"ms": round(took * 1000, 2), "longest_stall_ms": round(max(self.stalls or [0.0]) * 1000, 2)}


def read_into(buffer, raw: bytes):
    """``raw`` copied into ``buffer`` a chunk at a time, as ``body.read_all`` does."""
    for start in range(0, len(raw), CHUNK):
        buffer[start:start + CHUNK] = raw[start:start + CHUNK]
    return buffer


BUFFERS = ("bytearray", "shared mmap", "service")


def _buffer(kind: str, size: int):
    from paraspeechclap.serve import body as B

    return {"bytearray": bytearray, "shared mmap": lambda n: mmap.mmap(-1, n), "service": B.body_buffer}[kind](size)


def _copied_count(buffer) -> int:
    """The quote count as the service once made it: ``bytes.count`` over 1 MiB pieces copied out of the body."""
    view = memoryview(buffer)
    return sum(bytes(view[start:start + 2**20]).count(b'"') for start in range(0, len(buffer), 2**20))


def large_body(meter: StallMeter, raw: bytes, kind: str) -> dict:
    from paraspeechclap.serve import body as B
    from paraspeechclap.serve.config import ServeConfig

    buffer, read = meter.step(lambda: read_into(_buffer(kind, len(raw)), raw))
    count_quotes = (lambda: B.count_bytes(buffer, b'"')) if kind == "service" else (lambda: _copied_count(buffer))
    _, count = meter.step(count_quotes)
    _, parse = meter.step(lambda: B._parse_body(buffer, ServeConfig()))
    return {"buffer": kind, "read": read, "count_quotes": count, "parse": parse}


def small_body_us(size: int, mapped: bool, reps: int) -> float:
    chunk = b"x" * CHUNK
    start = time.perf_counter()
    for _ in range(reps):
        buffer = mmap.mmap(-1, size) if mapped else bytearray(size)
        for at in range(0, size, CHUNK):
            buffer[at:at + CHUNK] = chunk[:min(CHUNK, size - at)]
        del buffer
    return (time.perf_counter() - start) / reps * 1e6


def main(argv=None) -> int:
    import harness as H
    from paraspeechclap.kernels.malloc import keep_freed_blocks
    from paraspeechclap.serve.config import ServeConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--small-kib", type=int, default=512)
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--out", default=str(H.RESULTS))
    args = parser.parse_args(argv)
    sys.setswitchinterval(0.001)   # as the service sets it
    keep_freed_blocks()            # as the engine sets glibc's thresholds
    size = ServeConfig().max_body_bytes - 200
    raw = json.dumps({"audio": {"base64": "QUFB" * (size // 4)}, "captions": ["a"]}).encode()
    meter = StallMeter()
    meter.start()
    large = []
    try:
        for round_ in range(args.rounds):
            for kind in BUFFERS:
                large.append({"round": round_, **large_body(meter, raw, kind)})
                H.log(str(large[-1]))
    finally:
        meter.stopped = True
        meter.join(2)
    small = {kind: round(small_body_us(args.small_kib * 1024, kind == "mmap", args.reps), 1)
             for kind in ("bytearray", "mmap")}
    result = {"body_bytes": len(raw), "large": large, "small_kib": args.small_kib, "small_read_us": small,
              "command": H.command_line("benchmarks/body_gil.py", sys.argv[1:] if argv is None else argv),
              "revision": H.git_revision(), "machine": H.machine_info(threads=1), "date": H.now()}
    rows = [[r["round"], r["buffer"], *[f"{r[s]['ms']:.1f} / {r[s]['longest_stall_ms']:.1f}"
                                        for s in ("read", "count_quotes", "parse")]] for r in large]
    lines = [f"# GIL held while reading a {len(raw) / 2**20:.1f} MiB JSON body", "",
             f"`{result['command']}` · {result['date']} · {result['revision']}", "", H.machine_line(result["machine"]),
             "", "Each cell: the step's time / the longest stall of a 0.5 ms sleeper thread (ms).", "",
             *H.markdown_table(["round", "buffer", "read", "count quotes", "parse (cut + parse)"], rows,
                               [True, False, True, True, True]), "",
             f"Reading a {args.small_kib} KiB body ({args.reps} times): bytearray {small['bytearray']} us, "
             f"mmap {small['mmap']} us.", ""]
    H.write_results(Path(args.out), H.result_stem("body-gil", None), result, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
