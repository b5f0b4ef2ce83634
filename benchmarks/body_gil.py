"""How long reading and parsing a request body holds the GIL, and what each body buffer costs (the service's
``serve/body.py``): the largest JSON body (``--max-upload-mb`` of base64 audio) read into a ``bytearray(n)`` as the
service once did, or into an anonymous mmap as it does now for bodies over ``MAPPED_BODY``; then its quote count,
its long strings cut out and its parse, each as the service runs them. A thread that sleeps 0.5 ms in a loop
measures the longest stall each step caused (what the event loop and the express lane's result hand-off waited).
Then the cost of reading a 512 KiB body (a 4-clip reward) into either buffer.

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


def large_body(meter: StallMeter, raw: bytes, mapped: bool) -> dict:
    from paraspeechclap.serve import body as B
    from paraspeechclap.serve.config import ServeConfig

    buffer, read = meter.step(lambda: read_into(mmap.mmap(-1, len(raw)) if mapped else bytearray(len(raw)), raw))
    if mapped:
        _, count = meter.step(lambda: sum(piece.count(b'"') for piece in B._pieces(buffer)))
    else:
        _, count = meter.step(lambda: buffer.count(b'"'))   # the single call the service made before
    _, parse = meter.step(lambda: B._parse_body(buffer, ServeConfig()))
    return {"buffer": "mmap" if mapped else "bytearray", "read": read, "count_quotes": count, "parse": parse}


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
            for mapped in (False, True):
                large.append({"round": round_, **large_body(meter, raw, mapped)})
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
