"""Loopback load test of ``paraspeechclap serve`` (issue 14): /v1/reward at 1, 8 and 32 concurrent clients with the
``mini`` model, then an overload past the queue bound; compared with in-process ``reward()`` on the same items.

The script starts the real server (``python -m paraspeechclap serve``) as a subprocess on a free 127.0.0.1 port with
``--max-queue-items = items per request x the largest client count`` (so the levels fit and the overload does not),
sends pre-encoded JSON bodies (base64 WAV, distinct speech-like clips and captions) over keep-alive HTTP/1.1
connections, one thread per client, and stops each level after ``--requests`` requests or ``--seconds`` seconds,
whichever first. Reported per level: successful items/s, p50/p99 latency, 429s and errors. The overload runs
``--overload-factor`` x the bound's worth of clients for ``--overload-seconds``; each refused client waits 50 ms
(not the whole Retry-After, to keep the pressure on) and tries again; the server's RSS is sampled every 0.5 s.
In-process baseline: ``paraspeechclap.rerank.reward(model, wav_bytes, captions)`` over the same items, in this
process, with the server idle.

Targets: 32-client throughput >= 80 % of in-process; p99 <= 3 x p50 at 8 clients; RSS flat (+-10 %) over a 2-minute
overload at 4x capacity; past the bound only 429s, no errors.

    python benchmarks/serve_load.py                   # full: 400 requests or 60 s per level, 120 s overload
    python benchmarks/serve_load.py --brief           # 60 requests or 15 s per level, 10 s overload
"""
from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import shlex
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H  # noqa: E402


def wav(wave: np.ndarray) -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, wave, H.SR, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    try:
        match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
        return int(match.group(1)) / 1024 if match else float("nan")
    except OSError:
        return float("nan")


class Server:
    def __init__(self, model: str, port: int, queue_items: int, max_batch_items: int, max_wait_ms: float,
                 threads: int | None, extra: tuple[str, ...] = ()):
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        self.port = port
        self.process = subprocess.Popen(
            [sys.executable, "-m", "paraspeechclap", "serve", "--model", model, "--host", "127.0.0.1", "--port",
             str(port), "--max-queue-items", str(queue_items), "--max-batch-items", str(max_batch_items),
             "--max-wait-ms", str(max_wait_ms), "--log-level", "warning", "--device", "cpu", *extra],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited: {self.process.stderr.read().decode(errors='replace')[-2000:]}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/health")
                answer = connection.getresponse()
                if answer.status == 200:   # the server and, when it runs one, its model process
                    child = (json.loads(answer.read()).get("model_process") or {}).get("pid")
                    self.pids = [self.process.pid] + ([int(child)] if child else [])
                    return
            except OSError:
                time.sleep(0.3)
        raise SystemExit("the server did not answer /health within 180 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def run_level(port: int, bodies: list[bytes], items: int, clients: int, max_requests: int, max_seconds: float,
              retry_sleep: float = 0.0, sample_pids: list[int] | None = None) -> dict:
    """Closed loop: ``clients`` threads, each sending the next body as soon as its previous answer came."""
    lock = threading.Lock()
    state = {"sent": 0}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    rss: list[tuple[float, float]] = []
    stop = threading.Event()
    start = time.perf_counter()
    deadline = start + max_seconds

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while not stop.is_set():
            with lock:
                if state["sent"] >= max_requests or time.perf_counter() > deadline:
                    break
                body = bodies[state["sent"] % len(bodies)]
                state["sent"] += 1
            t0 = time.perf_counter()
            try:
                connection.request("POST", "/v1/reward", body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                payload = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as err:
                status, payload = -1, str(err).encode()
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            elapsed = time.perf_counter() - t0
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    latencies.append(elapsed)
                    if any(e is not None for e in json.loads(payload)["errors"]):
                        errors.append("item error")
                elif status != 429:
                    errors.append(f"{status}: {payload[:200]!r}")
            if status == 429 and retry_sleep:
                time.sleep(retry_sleep)
        connection.close()

    def sampler() -> None:
        while not stop.wait(0.5):
            rss.append((time.perf_counter() - start, sum(rss_mb(pid) for pid in sample_pids)))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    watcher = threading.Thread(target=sampler, daemon=True) if sample_pids else None
    if watcher:
        watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max_seconds + 180)
    wall = time.perf_counter() - start
    stop.set()
    if watcher:
        watcher.join(2)
    ok = statuses.get(200, 0)
    lat = np.array(latencies) if latencies else np.array([np.nan])
    result = {"clients": clients, "requests": sum(statuses.values()), "ok": ok, "status_counts": statuses,
              "rejected_429": statuses.get(429, 0), "errors": len(errors), "error_examples": errors[:3],
              "seconds": wall, "items_per_s": ok * items / wall, "requests_per_s": ok / wall,
              "p50_ms": float(np.percentile(lat, 50) * 1000), "p99_ms": float(np.percentile(lat, 99) * 1000)}
    if rss:
        values = np.array([v for _, v in rss])
        tenth = max(1, len(values) // 10)
        first, last = float(values[:tenth].mean()), float(values[-tenth:].mean())
        result["rss_mb"] = {"first": first, "last": last, "min": float(values.min()), "max": float(values.max()),
                            "drift_pct": 100 * (last - first) / first, "samples": len(values)}
    return result


def in_process_rate(args, audio: list[bytes], captions: list[str]) -> float:
    """Items/s of ``reward(model, wav_bytes, captions)`` over the pool (median of repeats), in a fresh process with
    the same thread count as the server."""
    rate = H.run_in_subprocess(_in_process_job, args.model, args.threads, audio, captions, 2 if args.brief else 3)
    if isinstance(rate, dict):
        raise SystemExit(f"the in-process baseline failed: {rate}")
    return rate


def _in_process_job(model_name: str, threads: int | None, audio: list[bytes], captions: list[str], repeats: int) -> float:
    import torch

    from paraspeechclap import ParaSpeechCLAP
    from paraspeechclap.rerank import reward

    if threads:
        torch.set_num_threads(threads)
    H.log("in-process reward() on the same items")
    model = ParaSpeechCLAP.from_pretrained(model_name, device="cpu")
    reward(model, audio, captions)  # warm-up: every caption once, as the server's
    timings = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        reward(model, audio, captions)
        timings.append(time.perf_counter() - t0)
    return len(audio) / H.median(timings)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mini")
    parser.add_argument("--clients", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument("--items", type=int, default=4, help="(audio, caption) items per /v1/reward request")
    parser.add_argument("--clip-seconds", type=float, default=3.0)
    parser.add_argument("--pool", type=int, default=64, help="distinct items cycled through")
    parser.add_argument("--requests", type=int, default=400, help="at most this many requests per level")
    parser.add_argument("--seconds", type=float, default=60.0, help="at most this long per level")
    parser.add_argument("--overload-seconds", type=float, default=120.0)
    parser.add_argument("--overload-factor", type=int, default=4, help="clients = factor x what the bound admits")
    parser.add_argument("--max-batch-items", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS") or 0) or None,
                        help="torch threads of the server and of the in-process baseline alike (default: "
                             "$OMP_NUM_THREADS, else torch's default)")
    parser.add_argument("--serve-args", default="", help="more options for the server, e.g. '--bulk-nice 0'")
    parser.add_argument("--brief", action="store_true", help="60 requests or 15 s per level, 10 s overload")
    parser.add_argument("--out", default=str(H.RESULTS))
    parser.add_argument("--name", help="result file stem")
    args = parser.parse_args(argv)
    revision = H.git_revision()   # of the code the server runs (read now, not after the run)
    if args.brief:
        args.requests, args.seconds, args.overload_seconds = 60, 15.0, 10.0
    levels = [int(c) for c in args.clients.split(",")]
    queue_items = args.items * max(levels)

    clips = H.make_clips(args.pool, args.clip_seconds, args.clip_seconds, seed=0)
    captions = H.make_captions(args.pool, seed=0)
    audio = [wav(c) for c in clips]
    encoded = [base64.b64encode(a).decode() for a in audio]
    bodies = []
    for start in range(0, args.pool, args.items):
        rows = [(start + k) % args.pool for k in range(args.items)]
        bodies.append(json.dumps({"items": [{"audio": {"base64": encoded[r]}, "caption": captions[r]} for r in rows],
                                  "shaping": "cosine"}).encode())

    before = in_process_rate(args, audio, captions)
    port = free_port()
    H.log(f"starting the server on 127.0.0.1:{port} (queue bound {queue_items} items)")
    server = Server(args.model, port, queue_items, args.max_batch_items, args.max_wait_ms, args.threads,
                    tuple(shlex.split(args.serve_args)))
    results: dict = {"levels": [], "overload": None}
    try:
        run_level(port, bodies, args.items, 2, len(bodies), 60)  # warm-up: every caption once (text cache), allocator
        for clients in levels:
            H.log(f"{clients} clients")
            level = run_level(port, bodies, args.items, clients, args.requests, args.seconds, sample_pids=server.pids)
            H.log(f"  {level['items_per_s']:.1f} items/s, p50 {level['p50_ms']:.0f} ms, p99 {level['p99_ms']:.0f} ms, "
                  f"429: {level['rejected_429']}, errors: {level['errors']}")
            results["levels"].append(level)
        overload_clients = args.overload_factor * queue_items // args.items
        H.log(f"overload: {overload_clients} clients for {args.overload_seconds:g} s")
        results["overload"] = run_level(port, bodies, args.items, overload_clients, 10**9, args.overload_seconds,
                                        retry_sleep=0.05, sample_pids=server.pids)
        o = results["overload"]
        H.log(f"  {o['items_per_s']:.1f} items/s, 429: {o['rejected_429']}, errors: {o['errors']}, "
              f"RSS {o.get('rss_mb', {}).get('first', 0):.0f} -> {o.get('rss_mb', {}).get('last', 0):.0f} MB")
    finally:
        server.stop()

    after = in_process_rate(args, audio, captions)
    in_process = (before + after) / 2   # the machine's load can change while the levels run: both sides of them
    for level in results["levels"]:
        level["ratio_to_in_process"] = level["items_per_s"] / in_process
    results.update(in_process_items_per_s=in_process, in_process_before=before, in_process_after=after)
    results.update( model=args.model, items_per_request=args.items,
                   clip_seconds=args.clip_seconds, queue_items=queue_items, brief=args.brief,
                   threads=args.threads, load_average=os.getloadavg(),
                   command=H.command_line("benchmarks/serve_load.py", sys.argv[1:] if argv is None else argv),
                   machine=H.machine_info(threads=args.threads), revision=revision, date=H.now())

    rows = [[lv["clients"], lv["ok"], H.fmt(lv["items_per_s"], ".1f"), H.fmt(lv["ratio_to_in_process"], ".2f"),
             H.fmt(lv["p50_ms"], ".0f"), H.fmt(lv["p99_ms"], ".0f"), lv["rejected_429"], lv["errors"]]
            for lv in results["levels"]]
    o = results["overload"]
    rss = o.get("rss_mb", {})
    lines = [f"# serve load ({args.model}, {args.items} x {args.clip_seconds:g} s items per /v1/reward request)", "",
             f"`{results['command']}` · {results['date']} · {results['revision']}", "", H.machine_line(results["machine"]),
             "", *H.markdown_table(["clients", "ok requests", "items/s", "vs in-process", "p50 ms", "p99 ms", "429",
                                    "errors"], rows, [True] * 8), "",
             f"In-process `reward()`: {in_process:.1f} items/s on the same {args.pool} items (mean of {before:.1f} "
             f"before and {after:.1f} after the levels; {args.threads or 'default'} torch threads on both sides).", "",
             f"Overload: {o['clients']} clients ({args.overload_factor}x the bound of {queue_items} items) for "
             f"{o['seconds']:.0f} s: {o['ok']} answered, {o['rejected_429']} x 429, {o['errors']} errors; server RSS "
             f"{rss.get('first', float('nan')):.0f} MB (first 10 %) -> {rss.get('last', float('nan')):.0f} MB (last 10 %), "
             f"min {rss.get('min', float('nan')):.0f}, max {rss.get('max', float('nan')):.0f}, "
             f"drift {rss.get('drift_pct', float('nan')):+.1f} %.", ""]
    markdown = "\n".join(lines)
    print(markdown)
    stem = H.result_stem("serve-load", args.name, "brief" if args.brief else "")
    H.write_results(Path(args.out), stem, results, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
