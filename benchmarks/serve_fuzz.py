"""Property-based fuzzing of the service's OpenAPI schema (schemathesis + hypothesis) against real uvicorn.

Every operation of ``/openapi.json`` gets ``--examples`` generated requests (JSON and multipart bodies, path
parameters; ``format: byte`` audio is sometimes a real small WAV so that requests reach the model, else random
bytes); each answer must be below 500 and, for a 4xx, a JSON ``{"error", "code"}``. The server is
``python -m paraspeechclap serve --model mini`` on a free 127.0.0.1 port. ``tests/serve/test_fuzz.py`` runs the
same :func:`fuzz` seeded, a few hundred cases, in ``make test``.

    python benchmarks/serve_fuzz.py                   # 600 per operation (10 operations: 6,000 requests)
    python benchmarks/serve_fuzz.py --examples 50     # a short run
"""
from __future__ import annotations

import argparse
import base64
import collections
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def small_wavs() -> list[str]:
    """Base64 of a few short WAV files (tones of 0.5 - 2 s at 16 and 44.1 kHz)."""
    import soundfile as sf

    out = []
    for seconds, rate, freq in ((0.5, 16000, 120.0), (1.2, 16000, 220.0), (2.0, 44100, 180.0)):
        t = np.arange(int(seconds * rate)) / rate
        buffer = io.BytesIO()
        sf.write(buffer, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, format="WAV")
        out.append(base64.b64encode(buffer.getvalue()).decode())
    return out


def fuzz(base_url: str, schema: dict, examples: int, seed: int | None = 0, timeout: float = 120.0,
         progress: Callable[[str], None] | None = None) -> dict:
    """``examples`` generated requests per operation; returns the status counts per operation and the failures
    (5xx, no answer, or a 4xx that is not a JSON error). ``seed=None``: a random run."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings, strategies as st
    from hypothesis import seed as hypothesis_seed

    wavs = small_wavs()
    schemathesis.openapi.format("byte", st.one_of(st.sampled_from(wavs),
                                                  st.binary(max_size=512).map(lambda b: base64.b64encode(b).decode())))
    loaded = schemathesis.openapi.from_dict(schema)
    statuses: dict[str, collections.Counter] = {}
    failures: list[dict] = []
    for result in loaded.get_all_operations():
        operation = result.ok()
        counts = statuses.setdefault(operation.label, collections.Counter())

        call = _caller(base_url, timeout, operation.label, counts, failures)
        runner = settings(max_examples=examples, database=None,
                          deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck),
                          print_blob=False)(given(operation.as_strategy())(call))
        if seed is not None:
            runner = hypothesis_seed(seed)(runner)
        started = time.perf_counter()
        runner()
        if progress:
            progress(f"{operation.label}: {sum(counts.values())} requests in {time.perf_counter() - started:.0f} s, "
                     f"{dict(sorted(counts.items()))}")
    return {"statuses": {label: dict(sorted(c.items())) for label, c in statuses.items()},
            "requests": sum(sum(c.values()) for c in statuses.values()), "failures": failures}


def _caller(base_url: str, timeout: float, label: str, counts: collections.Counter, failures: list) -> Callable:
    """The property: one generated request, its status counted, a failure kept."""
    def call(case) -> None:
        try:
            response = case.call(base_url=base_url, timeout=timeout)
        except Exception as err:  # noqa: BLE001 - no answer is a failure to report
            counts["no answer"] += 1
            failures.append({"operation": label, "status": None, "error": f"{type(err).__name__}: {err}"[:300],
                             "body": repr(case.body)[:300]})
            return
        counts[str(response.status_code)] += 1
        problem = _problem(response)
        if problem:
            failures.append({"operation": label, "status": response.status_code, "error": problem,
                             "body": repr(case.body)[:300], "answer": response.text[:300]})
    return call


def _problem(response) -> str | None:
    if response.status_code >= 500:
        return f"server error {response.status_code}"
    if 400 <= response.status_code < 500:
        try:
            body = response.json()
        except ValueError:
            return "a 4xx that is not JSON"
        if not (isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("code"), str)):
            return "a 4xx without {error, code}"
    return None


def build_index(folder: Path, model: str) -> str:
    """A small annotated corpus and its index (six tones and a file that is not audio), so that /v1/search and
    /v1/clip/{row} are fuzzed against real rows."""
    from paraspeechclap.annotate import annotate
    from paraspeechclap.index import Index

    corpus = folder / "corpus"
    corpus.mkdir()
    for i, data in enumerate(small_wavs() * 2):
        (corpus / f"clip{i}.wav").write_bytes(base64.b64decode(data))
    (corpus / "broken.wav").write_bytes(b"not audio")
    annotate(corpus, folder / "annotations", workers=1, shard_size=8, device="cpu", model=model)
    return str(Index.build(folder / "annotations").folder)


def main(argv=None) -> int:
    import harness as H
    from serve_load import Server, free_port, rss_mb

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=600, help="generated requests per operation")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: a random run)")
    parser.add_argument("--model", default="mini")
    parser.add_argument("--no-index", action="store_true", help="serve without an index (search and clips: 404)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    revision = H.git_revision()   # of the code the server runs (read now, not after the run)
    port = free_port()
    folder = tempfile.TemporaryDirectory()
    extra = () if args.no_index else ("--index", build_index(Path(folder.name), args.model))
    server = Server(args.model, port, 256, 32, 10.0, None, extra)
    try:
        import urllib.request

        schema = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=30).read())
        started = time.perf_counter()
        result = fuzz(f"http://127.0.0.1:{port}", schema, args.examples, args.seed, progress=H.log)
        result.update(seconds=time.perf_counter() - started, server_rss_mb=rss_mb(server.process.pid),
                      server_alive=server.process.poll() is None)
    finally:
        server.stop()
        folder.cleanup()
    fives = sum(n for c in result["statuses"].values() for s, n in c.items() if s.isdigit() and int(s) >= 500)
    result.update(command=H.command_line("benchmarks/serve_fuzz.py", argv or sys.argv[1:]), model=args.model,
                  examples_per_operation=args.examples, seed=args.seed, server_errors=fives,
                  machine=H.machine_info(), revision=revision, date=H.now())
    rows = [[label, sum(c.values()), ", ".join(f"{s}: {n}" for s, n in c.items())]
            for label, c in result["statuses"].items()]
    markdown = "\n".join([f"# Service fuzzing ({result['requests']} requests, {fives} 5xx, "
                          f"{len(result['failures'])} failures)", "",
                          f"`{result['command']}` · {result['date']} · {result['revision']}", "",
                          H.machine_line(result["machine"]), "",
                          *H.markdown_table(["operation", "requests", "statuses"], rows, [False, True, False]), "",
                          f"{result['seconds']:.0f} s; server alive at the end: {result['server_alive']}; "
                          f"server RSS {result['server_rss_mb']:.0f} MB.", "",
                          *[f"- {f}" for f in result["failures"][:20]]]) + "\n"
    H.write_results(Path(args.out), f"serve-fuzz-{H.now()[:10]}-{result['revision'] or 'norev'}", result, markdown)
    print(markdown)
    return 0 if not result["failures"] and result["server_alive"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
