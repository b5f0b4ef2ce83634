"""Property-based fuzzing of the OpenAPI schema (schemathesis), seeded: a few hundred generated requests over every
operation against real uvicorn on 127.0.0.1; none may get a 5xx, and every 4xx is a JSON error. The long run
(>= 5,000 requests) is ``benchmarks/serve_fuzz.py``."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from serve_helpers import settled

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install -e '.[dev]')")


def test_fuzzed_requests_get_no_5xx(live_server):
    import httpx

    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    fuzz = importlib.import_module("serve_fuzz").fuzz
    url, app = live_server(max_audio_seconds=5.0)
    schema = httpx.get(f"{url}/openapi.json").json()
    result = fuzz(url, schema, examples=45, seed=27)
    assert result["requests"] >= 300
    assert not result["failures"], result["failures"][:5]
    operations = {label for label in result["statuses"]}
    assert {"POST /v1/score", "POST /v1/reward", "POST /v1/timeline", "GET /v1/clip/{row}", "GET /health"} <= operations
    reached = sum(result["statuses"]["POST /v1/score"].get(s, 0) for s in ("200", "413"))
    assert reached > 0, result["statuses"]["POST /v1/score"]   # some requests got past parsing to the audio
    assert settled(app.state.serve) == (0, 0)
