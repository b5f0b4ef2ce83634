"""annotate and index survive: a damaged shard (truncated, one byte flipped, deleted), leftover temporaries, and a
SIGKILLed annotate parent with two local workers (the workers and the resource tracker die with it and commit
nothing after it).

The real CLI in child processes, the `mini` model, a small corpus of plain WAVs written here (tests/annotate's)."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("duckdb")

from paraspeechclap.annotate.engines import annotated_rows  # noqa: E402
from paraspeechclap.annotate.inputs import plan_rows, rows_digest  # noqa: E402
from paraspeechclap.annotate.layout import MANIFEST  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from process_helpers import cmdline as _cmdline, kill_when_ready, running as _running  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("annotate_corpus", REPO / "tests" / "annotate" / "annotate_helpers.py")
corpus_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus_helpers)

SHARD_SIZE = 8
SHARD1 = "data/train-00001-of-00004.parquet"


def _env() -> dict:
    return dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
                PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "paraspeechclap", *args], env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def _annotate_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["annotate", str(corpus), "--out", str(out), "--shard-size", str(SHARD_SIZE), "--device", "cpu",
            "--precision", "fp32", "--workers", "1", *extra]


def _shards(out: Path) -> dict:
    path = out / MANIFEST
    return json.loads(path.read_text()).get("shards", {}) if path.is_file() else {}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return corpus_helpers.write_corpus(tmp_path_factory.mktemp("corpus") / "audio")


@pytest.fixture(scope="module")
def annotated(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("ann") / "ann"
    done = _cli(*_annotate_args(corpus, out))
    assert done.returncode == 0, done.stderr
    return out, annotated_rows(out)


# ----------------------------------------------------------------------------------------------- damaged shards
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _shard_files(out: Path) -> dict[str, int]:
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in out.rglob("*.parquet")
            if "_index" not in p.parts}


def test_damaged_shards_are_refused_by_index_build_and_recomputed_by_a_resume(annotated, corpus, tmp_path):
    """One shard truncated, one with a byte flipped (same size), one deleted: index build refuses, naming a shard;
    the resume names each with what is wrong, recomputes those three only, and index build then works."""
    ref_out, ref_rows = annotated
    out = tmp_path / "ann"
    shutil.copytree(ref_out, out)
    damage = {f"data/train-0000{k}-of-00004.parquet": (hurt, why) for k, hurt, why in (
        (1, _truncate, "bytes, recorded"), (2, _flip, "SHA-256 differs from the record"), (3, Path.unlink, "missing"))}
    kept = {k: v for k, v in _shard_files(out).items() if k not in damage}
    for name, (hurt, _) in damage.items():
        hurt(out / name)

    refused = _cli("index", "build", str(out))
    assert refused.returncode == 2 and f"shard {out / SHARD1} does not match its record" in refused.stderr
    assert not (out / "_index").exists()

    resumed = _cli(*_annotate_args(corpus, out))
    assert resumed.returncode == 0, resumed.stderr
    assert "[annotate] resuming: 1 of 4 shards done, skipped; 3 to compute" in resumed.stderr, resumed.stderr
    for name, (_, why) in damage.items():
        line = next(x for x in resumed.stderr.splitlines() if x.startswith(f"[annotate] recomputing {name}: "))
        assert why in line, line
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert summary["shards_done"] == 4 and sorted(summary["resume"]["recomputed"]) == sorted(damage)
    assert {k: v for k, v in _shard_files(out).items() if k not in damage} == kept  # only the bad ones redone
    corpus_helpers.assert_same_rows(annotated_rows(out), ref_rows, atol=1e-6)
    built = _cli("index", "build", str(out))
    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout.strip().splitlines()[-1])["vectors"] == corpus_helpers.NUM_CLIPS


def test_a_format_1_folder_resumes_as_format_1_and_old_records_are_checked_by_size(annotated, corpus, tmp_path):
    """A folder an earlier version started (manifest version 1, train-NNNNN.parquet, records without checksums):
    the resume keeps its format, checks the old records by size (said once), recomputes a truncated shard, and
    index build and search read the folder."""
    ref_out, ref_rows = annotated
    out = tmp_path / "v1"
    out.mkdir()
    manifest = json.loads((ref_out / MANIFEST).read_text())
    rows = plan_rows([str(corpus)])
    manifest.update(version=1, shards={}, num_shards=4)
    manifest["input"] = {k: manifest["input"][k] for k in ("inputs", "audio_root", "split", "rows")}
    manifest["input"]["digest"] = rows_digest(rows, version=1)
    (out / MANIFEST).write_text(json.dumps(manifest))
    first = _cli(*_annotate_args(corpus, out))
    assert first.returncode == 0, first.stderr
    assert "in annotation format 1: its remaining shards are written in that format" in first.stderr
    assert sorted(_shard_files(out)) == [f"train-{k:05d}.parquet" for k in range(4)]
    rows_v1 = annotated_rows(out)
    assert "split" not in rows_v1.column_names and str(rows_v1.schema.field("audio").type) == "string"
    assert json.loads((out / MANIFEST).read_text())["shards"]["train-00001.parquet"]["rows"] == [8, 16]
    corpus_helpers.assert_same_rows(rows_v1, ref_rows, atol=1e-6)

    manifest = json.loads((out / MANIFEST).read_text())
    for info in manifest["shards"].values():
        del info["sha256"]  # as format 1 wrote them
    (out / MANIFEST).write_text(json.dumps(manifest))
    _truncate(out / "train-00003.parquet")
    resumed = _cli(*_annotate_args(corpus, out))
    assert resumed.returncode == 0, resumed.stderr
    assert "recomputing train-00003.parquet: " in resumed.stderr
    assert "[annotate] 3 finished shards were recorded before checksums existed: checked by size only" \
        in resumed.stderr, resumed.stderr
    shards = _shards(out)
    assert "sha256" in shards["train-00003.parquet"] and "sha256" not in shards["train-00002.parquet"]
    built = _cli("index", "build", str(out))
    assert built.returncode == 0 and "3 shards were recorded before checksums existed" in built.stderr
    found = _cli("search", str(out), "--like", str(corpus / "a" / "clip001.wav"), "--top", "1", "--format", "json",
                 "--where", "audio LIKE '%clip001.wav'")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["results"][0]["id"] == "a/clip001.wav"


# ----------------------------------------------------------------------------------------------- SIGKILL
def _long_corpus(folder: Path, clips: int = 36, seconds: float = 3.0) -> Path:
    """Clips long enough that two one-thread workers take a few seconds per shard of two."""
    folder.mkdir(parents=True)
    t = np.arange(int(16000 * seconds)) / 16000
    for i in range(clips):
        sf.write(folder / f"c{i:03d}.wav", (0.3 * np.sin(2 * np.pi * (90 + 9 * i) * t)).astype(np.float32), 16000)
    return folder


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the workers")
def test_sigkilled_parent_takes_its_workers_and_commits_nothing_after(tmp_path):
    corpus = _long_corpus(tmp_path / "audio")
    out = tmp_path / "ann"
    args = ["annotate", str(corpus), "--out", str(out), "--shard-size", "2", "--device", "cpu", "--precision", "fp32",
            "--workers", "2", "--threads", "1", "--quiet"]
    parent = subprocess.Popen([sys.executable, "-m", "paraspeechclap", *args], env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    family, names = kill_when_ready(parent, lambda: bool(_shards(out)), timeout=300, poll=0.02)
    names = list(names.values())
    at_kill = (_shards(out), _shard_files(out))
    assert sum("spawn_main" in n for n in names) == 2, names  # the two workers
    assert any("resource_tracker" in n for n in names), names
    assert 1 <= len(at_kill[0]) < 18, "the kill should land after the first shard and before the last"
    deadline = time.monotonic() + 5
    while any(_running(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(max(0.0, deadline - time.monotonic()))  # the full 5 s: a late commit would show below
    assert [p for p in family if _running(p)] == [], [_cmdline(p) for p in family if _running(p)]
    assert (_shards(out), _shard_files(out)) == at_kill

    # a resume removes what the killed workers left half-written (and nothing else), and finishes the job
    ours = out / "data" / ".train-00017-of-00018.parquet.0123456789ab.tmp"
    ours.write_bytes(b"half a shard")
    theirs = [out / "data" / ".train-00017-of-00018.parquet.tmp", out / "notes.txt",
              out / "data" / ".train-00017-of-00018.parquet.0123456789ab.tmp~"]
    for p in theirs:
        p.write_text("not ours")
    resumed = _cli(*args[:-1])
    assert resumed.returncode == 0, resumed.stderr
    assert f"removed data/{ours.name}: an unfinished write left by an earlier run" in resumed.stderr, resumed.stderr
    assert f"[annotate] resuming: {len(at_kill[0])} of 18 shards done" in resumed.stderr
    assert not ours.exists() and all(p.read_text() == "not ours" for p in theirs)
    assert not [p for p in out.rglob("*.tmp") if p != theirs[0]]
    rows = annotated_rows(out)
    assert rows.num_rows == 36 and len(set(rows.column("id").to_pylist())) == 36


def _kill_after_first_shard(cmd: list[str], out: Path) -> tuple[list[int], dict[int, str]]:
    """Start ``cmd``, SIGKILL it once the first shard is recorded; (its descendants, their command lines) then."""
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return kill_when_ready(proc, lambda: bool(_shards(out)), timeout=400)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the ranks")
def test_sigkilled_torchrun_takes_its_ranks(tmp_path):
    """torchrun starts each rank in a session of its own: without the parent-death signal a SIGKILLed torchrun left
    them annotating. Real torchrun, two ranks."""
    corpus = _long_corpus(tmp_path / "audio", clips=24)
    out = tmp_path / "ann"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "paraspeechclap",
           "annotate", str(corpus), "--out", str(out), "--shard-size", "2", "--device", "cpu", "--precision", "fp32",
           "--engine", "torchrun", "--threads", "1", "--quiet"]
    family, names = _kill_after_first_shard(cmd, out)
    at_kill = (_shards(out), _shard_files(out))
    assert sum("paraspeechclap annotate" in n for n in names.values()) == 2, names
    assert 1 <= len(at_kill[0]) < 12
    time.sleep(5)
    assert not [names[p] for p in family if _running(p)]
    assert (_shards(out), _shard_files(out)) == at_kill


RAY_AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find Ray's processes")
def test_sigkilled_ray_driver_takes_the_local_ray_instance_it_started(tmp_path):
    """What Ray does when the driver that started a local instance is SIGKILLed (Ray's own fate sharing, measured
    here so that docs/ can say it): its GCS, raylet and helpers get the kernel's parent-death signal, the actors
    exit within seconds, and the raylet's two agents notice within ~2 s but exit only after failing for 60 s to
    report the death to the dead GCS (a timeout hard-coded in Ray). Nothing is committed after the kill."""
    pytest.importorskip("ray")
    corpus = _long_corpus(tmp_path / "audio", clips=24)
    out = tmp_path / "ann"
    args = ["annotate", str(corpus), "--out", str(out), "--shard-size", "2", "--device", "cpu", "--precision", "fp32",
            "--engine", "ray", "--workers", "1", "--threads", "1", "--quiet"]
    family, names = _kill_after_first_shard([sys.executable, "-m", "paraspeechclap", *args], out)
    at_kill = _shards(out)
    assert any("gcs_server" in n for n in names.values()) and any("raylet" in n for n in names.values())
    assert any("RayAnnotator" in n for n in names.values()), names
    time.sleep(5)
    left = {names[p].strip() for p in family if _running(p)}
    assert left <= set(RAY_AGENTS), left  # everything else, the model actors included, is gone within 5 s
    deadline = time.monotonic() + 90
    while any(_running(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [names[p] for p in family if _running(p)]
    assert _shards(out) == at_kill
