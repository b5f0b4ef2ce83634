"""Resume after SIGKILL, and the engines (2 local workers, torchrun-style ranks, Ray Data) against one worker."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from annotate_helpers import NUM_CLIPS, NUM_SHARDS, SHARD_SIZE, assert_same_rows

from paraspeechclap.annotate.engines import annotated_rows
from paraspeechclap.annotate.layout import DATA_DIR, LOCK, MANIFEST

# The child runs the real CLI; the test slows each commit down (after the shard is recorded) so that the kill
# lands while later shards are in flight. Nothing in the package knows about it.
DRIVER = textwrap.dedent("""
    import sys, time
    from paraspeechclap.annotate import job
    real = job.Job.commit
    def slow_commit(self, *args, **kwargs):
        info = real(self, *args, **kwargs)
        time.sleep(0.4)
        return info
    job.Job.commit = slow_commit
    from paraspeechclap.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _env():
    return dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")


def _cli(corpus, out, *extra):
    return ["annotate", str(corpus), "--out", str(out), "--shard-size", str(SHARD_SIZE), "--device", "cpu",
            "--precision", "fp32", "--quiet", *extra]


def _completed(out):
    path = out / MANIFEST
    if not path.is_file():
        return {}
    return json.loads(path.read_text()).get("shards", {})


def test_sigkill_then_resume_equals_uninterrupted_run(corpus, reference, tmp_path):
    out = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, "-c", DRIVER, *_cli(corpus, out, "--workers", "1")], env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not _completed(out) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    done = _completed(out)
    assert 1 <= len(done) < NUM_SHARDS, "the kill should land after the first shard and before the last"
    kept = {name: (out / name).stat().st_mtime_ns for name in done}
    summary = subprocess.run([sys.executable, "-m", "paraspeechclap", *_cli(corpus, out, "--workers", "1")], env=_env(),
                             capture_output=True, text=True, timeout=600)
    assert summary.returncode == 0, summary.stderr
    result = json.loads(summary.stdout.strip().splitlines()[-1])
    assert result["shards_done"] == NUM_SHARDS and result["rows_done"] == NUM_CLIPS + 2
    # finished shards were kept as they were: the rerun redid only the others
    assert {name: (out / name).stat().st_mtime_ns for name in done} == kept
    rows = annotated_rows(out)
    ids = rows.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == NUM_CLIPS + 2
    assert_same_rows(rows, reference[1], atol=1e-6)
    assert len(list(out.glob("data/*.parquet"))) == NUM_SHARDS


def test_two_local_workers_match_one(corpus, reference, tmp_path):
    from paraspeechclap.annotate import annotate

    out = tmp_path / "two"
    summary = annotate(corpus, out, workers=2, shard_size=SHARD_SIZE, precision="fp32", device="cpu")
    assert summary["workers"] == 2 and summary["shards_done"] == NUM_SHARDS
    assert_same_rows(annotated_rows(out), reference[1])


def test_torchrun_ranks_split_the_shards(corpus, reference, tmp_path):
    """Two processes with the environment torchrun gives its ranks (RANK, WORLD_SIZE, LOCAL_RANK)."""
    out = tmp_path / "ranks"
    children = [subprocess.Popen([sys.executable, "-m", "paraspeechclap", *_cli(corpus, out, "--engine", "torchrun")],
                                 env=_env() | {"RANK": str(r), "WORLD_SIZE": "2", "LOCAL_RANK": str(r),
                                               "LOCAL_WORLD_SIZE": "2"},
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    outputs = [c.communicate(timeout=600) for c in children]
    assert all(c.returncode == 0 for c in children), [e for _, e in outputs]
    assert len(_completed(out)) == NUM_SHARDS
    assert_same_rows(annotated_rows(out), reference[1])


def test_ray_data_matches_one_worker(corpus, reference, tmp_path):
    ray = pytest.importorskip("ray")
    from paraspeechclap.annotate import annotate

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024 * 1024)
    try:
        out = tmp_path / "ray"
        summary = annotate(corpus, out, engine="ray", workers=2, shard_size=SHARD_SIZE, precision="fp32", device="cpu")
    finally:
        ray.shutdown()
    assert summary["engine"] == "ray" and summary["shards_done"] == NUM_SHARDS
    assert {p.name for p in out.iterdir()} <= {MANIFEST, LOCK, DATA_DIR}  # committed from the stream: nothing else
    assert sorted(p.name for p in (out / DATA_DIR).iterdir()) == sorted(n.split("/")[1] for n in _completed(out))
    assert_same_rows(annotated_rows(out), reference[1])
    manifest = json.loads((out / MANIFEST).read_text())  # written from the actors' model metadata (none in the driver)
    expected = json.loads((reference[0] / MANIFEST).read_text())
    for key in ("model", "attributes", "embedding", "columns"):
        assert manifest[key] == expected[key], key


def test_ray_driver_refuses_batches_without_the_model_metadata(corpus, tmp_path):
    from paraspeechclap.annotate.engines import _manifest_from_actor
    from paraspeechclap.annotate.job import Job, JobConfig

    job = Job(JobConfig(inputs=[str(corpus)], out=str(tmp_path / "out"), shard_size=SHARD_SIZE))
    with pytest.raises(RuntimeError, match="without the model's metadata"):
        _manifest_from_actor(job, None)
    assert not (tmp_path / "out" / MANIFEST).exists()


def test_audio_paths_reads_the_audio_struct_and_the_older_plain_string():
    import pyarrow as pa

    from paraspeechclap.annotate.engines import audio_paths
    from paraspeechclap.annotate.layout import audio_type

    struct = pa.array([{"bytes": None, "path": "/a.wav"}, {"bytes": None, "path": "/b.wav"}], type=audio_type())
    assert audio_paths(pa.table({"audio": struct})) == ["/a.wav", "/b.wav"]
    assert audio_paths(pa.table({"audio": ["/a.wav", None]})) == ["/a.wav", None]
