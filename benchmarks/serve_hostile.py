"""Hostile clients against the real service (issue 27): 64 of them at once while a normal client scores clips.

The script starts ``python -m paraspeechclap serve --model mini`` on a free 127.0.0.1 port with its default limits,
measures its idle RSS and the idle latency of a normal ``/v1/score`` (a 3 s speech-like clip, two captions, one
request after the other), then starts a second process of 64 hostile clients, each repeating its attack for
``--seconds``:

- ``decode_bomb``: the issue's 8-channel 655,350 Hz FLAC of 60 s of silence (300 kB); expected 400 by its header
- ``decode_ceiling``: a FLAC at the service's ceilings (``--max-sample-rate`` x ``--max-channels`` x
  ``--max-audio-seconds``): admitted at its cost (decoding charged by its samples), decoded in bounded blocks
- ``template_bomb``: ``{:>10000000}{{}}`` (a format field: 400) and ``{} {}`` (400)
- ``prompt_bomb``: 100 attribute sets of 64 classes (6,400 prompts in 40 kB): 413
- ``max_body``: a body declared over the limit (413 before it is read) and one of exactly the largest size (parsed,
  refused as not audio, or 429 when the body memory is taken)
- ``slow_body``: a declared 100 kB body sent at 20 bytes/s: 408 after ``--body-timeout``
- ``slow_headers``: a header line a second: 408 after ``--header-timeout``
- ``long_timeline``: 1800 s at a 0.05 s hop (413), 1800 s at 1 s (413: too costly), 280 s at 1 s (admitted: 834 s
  of window audio, run at low priority in chunks, or 429 when the work in flight is taken)
- ``deep_json``: JSON 100,000 deep (413), 5,000 deep (400), a multipart field 5,000 deep (400)

Meanwhile the normal client keeps scoring, ``/health`` is asked every 0.5 s, and the server's RSS is sampled every
0.2 s. Targets: every hostile request answered 4xx within 2 s or its work bounded as declared (a slow request's 408
within its deadline, an admitted one within the request timeout); server RSS at most 200 MB over idle; normal
``/v1/score`` p99 at most 2x idle; 0 5xx; 0 crashes; ``/health`` within 100 ms.

    python benchmarks/serve_hostile.py                  # 60 s attack
    python benchmarks/serve_hostile.py --seconds 20     # a short one
    python benchmarks/serve_hostile.py --attackers-idle # the attackers get only the CPU the service leaves
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import percentile  # noqa: E402

CAPTIONS = ["A man speaks slowly in a deep voice.", "A woman speaks quickly in a high-pitched voice."]
# seconds within which an answer must come: a refusal; a body (read within --body-timeout, 30 s, then parsed); a
# request head (--header-timeout, 10 s); admitted work (--timeout, 60 s); each with 2 s for the answer to arrive
BOUNDS = {"quick": 2.0, "body": 32.0, "headers": 12.0, "work": 62.0}


# ---------------------------------------------------------------------------------------------- raw HTTP
def request(port: int, head: bytes, body: bytes = b"", pace: tuple[int, float] | None = None,
            timeout: float = 120.0) -> tuple[int, float]:
    """One request on its own connection: ``(status, seconds)``; ``pace=(bytes, seconds)`` sends the body that
    slowly; status -1 when no answer came."""
    import select

    start = time.perf_counter()
    data = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            try:
                if pace is None:
                    sock.sendall(head + body)
                else:   # paced: stop sending as soon as the server has answered
                    sock.sendall(head)
                    step, wait = pace
                    for i in range(0, len(body), step):
                        if select.select([sock], [], [], wait)[0]:
                            break
                        sock.sendall(body[i:i + step])
            except OSError:
                pass   # the server answered (and closed) before the body was all sent: read its answer
            while b"\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        pass
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else -1
    return status, time.perf_counter() - start


def post(path: str, body: bytes, kind: str = "application/json", length: int | None = None) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {kind}\r\nConnection: close\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\n\r\n").encode()


def flac(seconds: float, rate: int, channels: int) -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", rate, channels, format="FLAC", subtype="PCM_16") as out:
        block = np.zeros((rate, channels), np.int16)
        for _ in range(int(seconds)):
            out.write(block)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def wav(wave: np.ndarray, rate: int = 16000) -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------- the attacks
def attacks(max_body: int, rate: int, channels: int, seconds: float) -> dict[str, list]:
    """Per attack class, the requests its clients send in turn: ``(head, body, pace, declared bound in s)``."""
    clip = b64(wav(np.sin(np.arange(48000) / 16000 * 2 * np.pi * 150).astype(np.float32) * 0.3))
    score = lambda audio: json.dumps({"audio": {"base64": audio}, "captions": CAPTIONS}).encode()  # noqa: E731
    junk = json.dumps({"audio": {"base64": "QUFB" * ((max_body - 200) // 4)}, "captions": ["a"]}).encode()
    sets = {f"a{i}": [f"class {j}" for j in range(64)] for i in range(100)}
    silence = b64(flac(1800, 8000, 1))
    timeline = lambda audio, hop: json.dumps({"audio": {"base64": audio}, "captions": CAPTIONS,  # noqa: E731
                                              "window_seconds": 3, "hop_seconds": hop}).encode()
    deep = b'{"captions": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    deeper = b'{"captions": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"
    boundary = "hostile"
    form = (f'--{boundary}\r\nContent-Disposition: form-data; name="attributes"\r\n\r\n' + '{"a":' * 5000 + "1"
            + "}" * 5000 + f"\r\n--{boundary}--\r\n").encode()
    slow = json.dumps({"captions": ["a"] * 20000}).encode()[:100_000]
    classify = lambda template: json.dumps({"audio": {"base64": clip}, "candidates": ["deep", "high"],  # noqa: E731
                                            "template": template}).encode()
    plain = lambda body, bound=BOUNDS["quick"]: (post("/v1/score", body), body, None, bound)  # noqa: E731
    return {
        "decode_bomb": [plain(score(b64(flac(60, 655_350, 8))))],
        "decode_ceiling": [plain(score(b64(flac(seconds, rate, channels))), BOUNDS["work"])],
        "template_bomb": [(post("/v1/classify", b), b, None, BOUNDS["quick"]) for b in (classify("{:>10000000}{{}}"),
                                                                             classify("{} {}"))],
        "prompt_bomb": [(post("/v1/classify", b), b, None, BOUNDS["quick"]) for b in
                        [json.dumps({"audio": {"base64": clip}, "attributes": sets}).encode()]],
        "max_body": [(post("/v1/score", b"", length=max_body + 1), b"", None, BOUNDS["quick"]),
                     plain(junk, BOUNDS["body"])],
        "slow_body": [(post("/v1/score", slow), slow, (20, 1.0), BOUNDS["body"])],
        "slow_headers": [(b"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-A: b\r\n" * 30, (8, 1.0),
                          BOUNDS["headers"])],
        "long_timeline": [(post("/v1/timeline", b), b, None, bound) for b, bound in
                          ((timeline(silence, 0.05), BOUNDS["quick"]), (timeline(silence, 1), BOUNDS["quick"]),
                           (timeline(b64(flac(280, 16000, 1)), 1), BOUNDS["work"]))],
        "deep_json": [plain(deep), plain(deeper),
                      (post("/v1/classify", form, f"multipart/form-data; boundary={boundary}"), form, None,
                       BOUNDS["quick"])],
    }


CLIENTS = {"decode_bomb": 7, "decode_ceiling": 7, "template_bomb": 7, "prompt_bomb": 7, "max_body": 7,
           "slow_body": 7, "slow_headers": 8, "long_timeline": 7, "deep_json": 7}


def machine_busy() -> float:
    """CPU-seconds every process on the machine has used since boot (``/proc/stat``: all but idle and iowait)."""
    with open("/proc/stat") as stat:
        ticks = [int(x) for x in stat.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _idle_scheduling() -> None:
    """In the attacking process before it starts: SCHED_IDLE (no privilege needed), below every nice level."""
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def hostile(port: int, seconds: float, limits: dict, out: str, only: str = "") -> int:
    """The hostile process: every class's clients repeat its requests until ``seconds`` have passed."""
    plan = attacks(limits["max_upload_bytes"] * 4 // 3 + 64 * 1024, limits["max_sample_rate"], limits["max_channels"],
                   limits["max_audio_seconds"])
    clients = {name: count for name, count in CLIENTS.items() if not only or name in only.split(",")}
    records: list[dict] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client(name: str, number: int) -> None:
        turn = number
        while time.perf_counter() < stop:
            head, body, pace, bound = plan[name][turn % len(plan[name])]
            turn += 1
            status, took = request(port, head, body, pace)
            with lock:
                records.append({"attack": name, "variant": turn % len(plan[name]), "status": status,
                                "seconds": took, "bound": bound})

    threads = [threading.Thread(target=client, args=(name, i), daemon=True)
               for name, count in clients.items() for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(stop - time.perf_counter() + 150)
    Path(out).write_text(json.dumps(records))
    return 0


# ---------------------------------------------------------------------------------------------- the normal client
class Normal:
    """One keep-alive client scoring a 3 s speech-like clip with two captions, one request after the other."""

    def __init__(self, port: int):
        import harness as H

        self.port = port
        clip = H.speech_like(3.0, np.random.default_rng(0))
        self.body = json.dumps({"audio": {"base64": b64(wav(clip))}, "captions": CAPTIONS}).encode()
        self.connection = None
        self.phases: list[dict[str, float]] = []   # each answer's Server-Timing, ms

    def score(self) -> tuple[int, float]:
        import http.client

        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        start = time.perf_counter()
        try:
            self.connection.request("POST", "/v1/score", body=self.body, headers={"Content-Type": "application/json"})
            response = self.connection.getresponse()
            response.read()
            status = response.status
            self.phases.append({name: float(ms) for name, ms in
                                re.findall(r"(\w+);dur=([0-9.]+)", response.getheader("server-timing") or "")})
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection, status = None, -1
        return status, time.perf_counter() - start

    def run(self, count: int | None = None, until: float | None = None) -> list[tuple[int, float]]:
        out = []
        while (count is None or len(out) < count) and (until is None or time.perf_counter() < until):
            out.append(self.score())
        return out


def slowest(answers: list[tuple[int, float]], phases: list[dict[str, float]], share: float = 0.01) -> list[dict]:
    """The slowest ``share`` of the normal scores, each with its Server-Timing phases (ms): what the tail waited
    for (phases are kept per answer, so they pair with the answers when every request was answered)."""
    if len(phases) != len(answers):
        return []
    order = sorted(range(len(answers)), key=lambda i: -answers[i][1])[:max(1, int(len(answers) * share))]
    return [{"ms": round(answers[i][1] * 1000, 1), **phases[i]} for i in order]


class Sampler(threading.Thread):
    """The server's RSS (its model process included) every 0.2 s and the latency of /health every 0.5 s, until
    stopped."""

    def __init__(self, pids: list[int], port: int):
        super().__init__(daemon=True)
        self.pids, self.port = pids, port
        self.rss: list[float] = []
        self.parts: list[list[float]] = []   # each process's RSS, in the order of pids
        self.health: list[tuple[int, float]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        from serve_load import rss_mb

        tick = 0
        while not self.stopped.wait(0.2):
            parts = [rss_mb(pid) for pid in self.pids]
            self.parts.append(parts)
            self.rss.append(sum(parts))
            tick += 1
            if tick % 3 == 0:
                self.health.append(request(self.port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                                      b"Connection: close\r\n\r\n", timeout=30))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc; NaN elsewhere)."""
    import os

    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def niceness(pid: int) -> int | None:
    """A process's nice value (Linux /proc; None elsewhere)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
    except (OSError, ValueError, IndexError):
        return None


def server_pids(process, health: dict) -> list[int]:
    """The server's process and, when its forward passes run in a process of their own, that one."""
    child = (health.get("model_process") or {}).get("pid")
    return [process.pid] + ([int(child)] if child else [])


def start_server(model: str, port: int, extra: str = "", nice: int = 0):
    import http.client
    import os
    import shlex

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    prefix = ["nice", "-n", str(nice)] if nice else []
    process = subprocess.Popen([*prefix, sys.executable, "-m", "paraspeechclap", "serve", "--model", model, "--port", str(port),
                                "--device", "cpu", "--log-level", "critical", *shlex.split(extra)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 180
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited: {process.stderr.read().decode(errors='replace')[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            health = json.loads(connection.getresponse().read())
            return process, health
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("the server did not answer /health within 180 s")


def summarize(records: list[dict]) -> dict:
    out = {}
    for name in sorted({r["attack"] for r in records}, key=list(CLIENTS).index):
        mine = [r for r in records if r["attack"] == name]
        statuses: dict[str, int] = {}
        for r in mine:
            statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
        met = [r for r in mine if (200 <= r["status"] < 300 or 400 <= r["status"] < 500) and r["seconds"] <= r["bound"]]
        refusals = [r["seconds"] for r in mine if 400 <= r["status"] < 500 and r["bound"] <= BOUNDS["quick"]]
        out[name] = {"requests": len(mine), "statuses": dict(sorted(statuses.items())), "met": len(met),
                     "p50_s": percentile([r["seconds"] for r in mine], 50),
                     "max_s": max((r["seconds"] for r in mine), default=float("nan")),
                     "refusal_max_s": max(refusals, default=float("nan"))}
    return out


def main(argv=None) -> int:
    import harness as H
    from serve_load import free_port

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the attack")
    parser.add_argument("--idle-requests", type=int, default=300, help="normal /v1/score requests before the attack")
    parser.add_argument("--model", default="mini")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--only", default="", help="comma-separated attack classes (default: all, 64 clients)")
    parser.add_argument("--serve-args", default="", help="more options for the server, e.g. '--bulk-nice 10'")
    parser.add_argument("--server-nice", type=int, default=0,
                        help="run the server (and so its model process) at this nice value, as a deployment that "
                             "gives the service priority over other work on the machine would (below 0 needs root "
                             "or CAP_SYS_NICE); the attackers and the normal client stay at 0")
    parser.add_argument("--attackers-idle", action="store_true",
                        help="run the attacking process under SCHED_IDLE: it gets only the CPU the service and the "
                             "normal client leave, as attackers on other machines would (it still sends as fast as "
                             "that CPU lets it; the report gives the rate it reached)")
    parser.add_argument("--hostile", nargs=5, metavar=("PORT", "SECONDS", "LIMITS", "OUT", "ONLY"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.hostile:
        port, seconds, limits, out, only = args.hostile
        return hostile(int(port), float(seconds), json.loads(limits), out, only.strip())
    revision = H.git_revision()   # of the code the server runs (read now, not after the run)
    port = free_port()
    process, health = start_server(args.model, port, args.serve_args, args.server_nice)
    result: dict = {"limits": health["limits"], "revision": revision,
                    "server_nice": [niceness(pid) for pid in server_pids(process, health)]}
    if args.server_nice and result["server_nice"][0] != args.server_nice:
        H.log(f"warning: the server runs at nice {result['server_nice'][0]}, not {args.server_nice} (no permission)")
    try:
        result.update(measure(process, port, args, health))
    finally:
        alive = process.poll() is None
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
    result["server_alive_at_end"] = alive
    report(result, args, H)
    return 0 if result["targets_met"] else 1


def measure(process, port: int, args, health: dict) -> dict:
    import tempfile

    import harness as H

    normal = Normal(port)
    normal.run(count=20)                                   # warm-up: text cache, allocator, first batches
    pids = server_pids(process, health)
    sampler = Sampler(pids, port)
    sampler.start()
    normal.phases.clear()
    idle = normal.run(count=args.idle_requests)
    idle_phases = list(normal.phases)
    idle_rss = list(sampler.rss)
    H.log(f"idle: {len(idle)} requests, p99 {percentile([s for _, s in idle], 99) * 1000:.0f} ms, "
          f"RSS {np.median(idle_rss):.0f} MB")
    health_before = len(sampler.health)
    with tempfile.TemporaryDirectory() as tmp:
        records_file = Path(tmp) / "hostile.json"
        import resource

        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_cpu, attack_start, busy = [cpu_seconds(pid) for pid in pids], time.perf_counter(), machine_busy()
        attacker = subprocess.Popen([sys.executable, __file__, "--hostile", str(port), str(args.seconds),
                                     json.dumps(health["limits"]), str(records_file), args.only or " "],
                                    preexec_fn=_idle_scheduling if args.attackers_idle else None)
        time.sleep(2.0)                                    # the attackers' payloads are built and sent
        rss_from = len(sampler.rss)
        normal.phases.clear()
        attacked = normal.run(until=time.perf_counter() + args.seconds - 2.0)
        attacker.wait(args.seconds + 200)
        after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = [cpu_seconds(pid) - before for pid, before in zip(pids, server_cpu)]
        cpu = {"wall_s": time.perf_counter() - attack_start, "server_s": sum(used), "model_process_s": sum(used[1:]),
               "attackers_s": (after_children.ru_utime + after_children.ru_stime
                               - children.ru_utime - children.ru_stime), "machine_s": machine_busy() - busy}
        records = json.loads(records_file.read_text()) if records_file.is_file() else []
    sampler.stopped.set()
    sampler.join(5)
    after = Normal(port).run(count=5)
    idle_p99, attack_p99 = (percentile([s for st, s in idle if st == 200], 99),
                            percentile([s for st, s in attacked if st == 200], 99))
    attack_rss = sampler.rss[rss_from:]
    hostile = summarize(records)
    five = (sum(1 for r in records if r["status"] >= 500) + sum(1 for st, _ in idle + attacked + after if st >= 500)
            + sum(1 for st, _ in sampler.health if st >= 500))
    health_attack = [s for _, s in sampler.health[health_before:]]
    out = {"idle": {"requests": len(idle), "p50_ms": percentile([s for _, s in idle], 50) * 1000,
                    "p99_ms": idle_p99 * 1000, "rss_mb": float(np.median(idle_rss))},
           "attack": {"normal_requests": len(attacked), "normal_ok": sum(1 for st, _ in attacked if st == 200),
                      "normal_statuses": sorted({st for st, _ in attacked}),
                      "p50_ms": percentile([s for st, s in attacked if st == 200], 50) * 1000,
                      "p99_ms": attack_p99 * 1000, "rss_max_mb": max(attack_rss, default=float("nan")),
                      "rss_median_mb": float(np.median(attack_rss)) if attack_rss else float("nan"),
                      "health_requests": len(health_attack), "health_max_ms": max(health_attack, default=0) * 1000,
                      "health_p99_ms": percentile(health_attack, 99) * 1000},
           "normal_ms": {"idle": [round(s * 1000, 1) for _, s in idle],
                         "attack": [round(s * 1000, 1) for _, s in attacked]},
           "rss_mb": {"idle": idle_rss, "attack": attack_rss},
           "rss_growth_mb_per_process": [max(p[i] for p in sampler.parts[rss_from:]) - float(np.median(
               [p[i] for p in sampler.parts[:len(idle_rss)]])) for i in range(len(pids))] if attack_rss else [],
           "hostile": hostile, "hostile_requests": len(records), "server_errors": five, "cpu": cpu,
           "phases_ms": {"idle": phase_summary(idle_phases), "attack": phase_summary(normal.phases)},
           "slowest": slowest(attacked, normal.phases),
           "after_ok": all(st == 200 for st, _ in after), "exit_code": process.poll()}
    met = {"each hostile request 4xx within 2 s or bounded as declared":
           bool(records) and all(h["met"] == h["requests"] for h in hostile.values()),
           "server RSS <= idle + 200 MB": out["attack"]["rss_max_mb"] - out["idle"]["rss_mb"] <= 200,
           "normal /v1/score p99 <= 2x idle": attack_p99 <= 2 * idle_p99 and out["attack"]["normal_ok"] == len(attacked),
           "0 5xx": five == 0, "0 crashes": process.poll() is None and out["after_ok"],
           "/health within 100 ms": out["attack"]["health_max_ms"] <= 100}
    out["targets"] = met
    out["targets_met"] = all(met.values())
    return out


def phase_summary(phases: list[dict[str, float]]) -> dict:
    """Median and p99 (ms) of each Server-Timing phase of the normal client's answers, and of what the client saw
    beyond the server's total (the network, its own process)."""
    names = list(dict.fromkeys(name for p in phases for name in p))
    return {name: {"p50": percentile([p[name] for p in phases if name in p], 50),
                   "p99": percentile([p[name] for p in phases if name in p], 99)} for name in names}


def phase_line(result: dict) -> str:
    phases = result.get("phases_ms")
    if not phases or not phases["attack"]:
        return ""
    cells = [f"{name} {phases['idle'].get(name, {}).get('p50', float('nan')):.0f} -> {v['p50']:.0f} "
             f"(p99 {phases['idle'].get(name, {}).get('p99', float('nan')):.0f} -> {v['p99']:.0f})"
             for name, v in phases["attack"].items()]
    return "Normal /v1/score by Server-Timing phase, idle -> attack, p50 (p99) ms: " + "; ".join(cells) + "."


def cpu_line(result: dict) -> str:
    """Where the 2 cores went during the attack: the server's share, the attackers' (on the same machine), and the
    server's CPU per hostile request."""
    cpu, count = result.get("cpu"), result.get("hostile_requests", 0)
    if not cpu:
        return ""
    model = (f", of which its model process {cpu['model_process_s']:.1f} s"
             if cpu.get("model_process_s") else "")
    return (f"CPU during the attack ({cpu['wall_s']:.0f} s): server {cpu['server_s']:.1f} s "
            f"({cpu['server_s'] / cpu['wall_s']:.2f} cores{model}), attackers {cpu['attackers_s']:.1f} s "
            f"({cpu['attackers_s'] / cpu['wall_s']:.2f} cores); {count / cpu['wall_s']:.0f} hostile requests/s, "
            f"{1000 * cpu['server_s'] / max(count, 1):.2f} ms of server CPU each (normal requests included)"
            + (f"; the whole machine {cpu['machine_s'] / cpu['wall_s']:.2f} cores busy (the benchmark's normal client "
               f"and any other process: {(cpu['machine_s'] - cpu['server_s'] - cpu['attackers_s']) / cpu['wall_s']:.2f})"
               if "machine_s" in cpu else "") + ".")


def report(result: dict, args, H) -> None:
    result.update(command=H.command_line("benchmarks/serve_hostile.py", sys.argv[1:]), model=args.model,
                  seconds=args.seconds, machine=H.machine_info(), date=H.now())
    idle, attack = result.get("idle", {}), result.get("attack", {})
    rows = [[name, h["requests"], ", ".join(f"{k}: {v}" for k, v in h["statuses"].items()), f"{h['met']}/{h['requests']}",
             H.fmt(h["p50_s"]), H.fmt(h["max_s"]), H.fmt(h["refusal_max_s"])]
            for name, h in result.get("hostile", {}).items()]
    lines = [f"# Hostile clients ({sum(CLIENTS.values())} at once, {args.seconds:g} s, model {args.model})", "",
             f"`{result['command']}` · {result['date']} · {result['revision']}", "", H.machine_line(result["machine"]), "",
             *H.markdown_table(["attack", "requests", "statuses", "met", "p50 s", "max s", "slowest refusal s"], rows,
                               [False, True, False, False, True, True, True]), "",
             f"Normal /v1/score: idle p50 {H.fmt(idle.get('p50_ms'), '.0f')} ms, p99 {H.fmt(idle.get('p99_ms'), '.0f')} ms "
             f"({idle.get('requests')} requests); under attack p50 {H.fmt(attack.get('p50_ms'), '.0f')} ms, p99 "
             f"{H.fmt(attack.get('p99_ms'), '.0f')} ms ({attack.get('normal_ok')}/{attack.get('normal_requests')} ok).",
             f"Server RSS: idle {H.fmt(idle.get('rss_mb'), '.0f')} MB, under attack median "
             f"{H.fmt(attack.get('rss_median_mb'), '.0f')} MB, max {H.fmt(attack.get('rss_max_mb'), '.0f')} MB. "
             f"/health under attack: max {H.fmt(attack.get('health_max_ms'), '.0f')} ms over "
             f"{attack.get('health_requests')} requests. 5xx: {result.get('server_errors')}; server alive at the end: "
             f"{result.get('server_alive_at_end')}.",
             phase_line(result), cpu_line(result), "",
             *H.markdown_table(["target", "met"], [[k, H.met_cell(v)] for k, v in result.get("targets", {}).items()],
                               [False, False])]
    markdown = "\n".join(lines) + "\n"
    H.write_results(Path(args.out), f"serve-hostile-{H.now()[:10]}-{result['revision'] or 'norev'}", result, markdown)
    print(markdown)


if __name__ == "__main__":
    raise SystemExit(main())
