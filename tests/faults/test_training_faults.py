"""Training survives: preemption (SIGTERM/SIGINT), a full disk mid-checkpoint, a corrupted newest checkpoint,
non-finite losses and gradients, resuming from an older checkpoint, a failed save on rank 0 of two.

Tiny random-weight models on a synthetic corpus (tests/train/tiny.py), CPU, seconds per run. Every "resume" test
compares the final weights with those of an uninterrupted run: they must be bit-identical."""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TRAIN_TESTS = REPO / "tests" / "train"
sys.path.insert(0, str(TRAIN_TESTS))

import tiny  # noqa: E402
from tiny import base_overrides, write_corpus  # noqa: E402

from paraspeechclap import fileio  # noqa: E402
from paraspeechclap.train import checkpointing as C  # noqa: E402
from paraspeechclap.train import trainer as T  # noqa: E402
from paraspeechclap.train.run_folder import ResumeConflict  # noqa: E402
from paraspeechclap.train.trainer import NonFiniteError, train  # noqa: E402

STEPS = 6
COMMON = {"data.crop_seconds": 0.4, "checkpoint.every_n_steps": 2, "checkpoint.keep_last": 0,
          "loss.classification_weight": 0.5}


@pytest.fixture(scope="module", autouse=True)
def _allow_tiny_factory():
    """The tests' model factory (tiny.tiny_model) is outside paraspeechclap: allow-list it for this module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PARASPEECHCLAP_ALLOW_IMPORTS", "tiny")
        yield


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"), 16, seconds=(0.3, 0.9))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, corpus):
    """An uninterrupted 6-step run (checkpoints at 2, 4, 6): {step: state dict}."""
    tmp = tmp_path_factory.mktemp("reference")
    res = train("intrinsic", base_overrides(tmp, corpus, steps=STEPS, batch=4, **COMMON))
    run = Path(res["run_dir"])
    return {int(p.name[5:]): C.load_model_state(p) for p in C.list_checkpoints(run)}


@pytest.fixture
def messages():
    """What the trainer logged (its logger does not propagate to the root logger)."""
    got: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            got.append(record.getMessage())

    h = Keep(level=logging.INFO)
    log = logging.getLogger("paraspeechclap.train")
    log.addHandler(h)
    yield got
    log.removeHandler(h)


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"{len(diff)} tensors differ, e.g. {diff[:3]}"


def final_weights(run: Path, step: int = STEPS) -> dict:
    return C.load_model_state(C.checkpoint_root(run) / f"step_{step:08d}")


def tree_digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def hidden_leftovers(run: Path) -> list[str]:
    root = C.checkpoint_root(run)
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".")) if root.is_dir() else []


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(TRAIN_TESTS), env.get("PYTHONPATH", "")])
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               PARASPEECHCLAP_ALLOW_IMPORTS="tiny")
    return env


# ----------------------------------------------------------------------------------------------- SIGTERM / SIGINT
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_at_step_boundary_and_resume_is_bit_identical(tmp_path, corpus, reference, monkeypatch,
                                                                   messages, signum):
    """The signal arrives mid-step (during the forward of step 4): the step completes, a checkpoint of step 4 is
    written (not a checkpoint step), the run returns normally, and resuming ends with the uninterrupted weights."""
    real = T.training_loss
    calls = {"n": 0}

    def loss_then_signal(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            os.kill(os.getpid(), signum)
        return real(*a, **k)

    monkeypatch.setattr(T, "training_loss", loss_then_signal)
    handler_before = signal.getsignal(signum)
    ov = base_overrides(tmp_path, corpus, steps=STEPS, batch=4, **dict(COMMON, **{"checkpoint.every_n_steps": 5}))
    res = train("intrinsic", ov)
    run = Path(res["run_dir"])
    assert res["stopped"] == signal.Signals(signum).name and res["step"] == 4
    assert res["resume_command"] == f"paraspeechclap train --resume {run}"
    assert [p.name for p in C.list_checkpoints(run)] == ["step_00000004"]
    assert C.read_latest(run) == "step_00000004"
    assert any("Resume with: paraspeechclap train --resume" in m for m in messages)
    assert signal.getsignal(signum) == handler_before  # the run's handlers are gone again
    monkeypatch.setattr(T, "training_loss", real)
    res2 = train(None, resume=run)
    assert res2["step"] == STEPS and not res2["stopped"]
    assert_same_weights(final_weights(run), reference[STEPS])
    assert [p.name for p in C.list_checkpoints(run)] == ["step_00000004", "step_00000005", "step_00000006"]


def test_sigterm_cli_exits_0_with_resume_line_then_resumes_bit_identical(tmp_path, corpus):
    """A real SIGTERM from outside to the whole process group (as a cluster scheduler sends it: the DataLoader
    worker gets it too) of `paraspeechclap train`: exit status 0, the resume line, and resuming ends with the
    weights of an uninterrupted run."""
    settings = dict(COMMON, **{"checkpoint.every_n_steps": 0, "data.num_workers": 1})
    cmd = [sys.executable, "-m", "paraspeechclap.train.cli"]
    full = base_overrides(tmp_path / "full", corpus, steps=STEPS, batch=4, **settings)
    subprocess.run(cmd + ["--config", "intrinsic", *full], env=_env(), check=True, capture_output=True, timeout=300)
    run = tmp_path / "run"
    env = _env()
    env["PSC_TEST_STEP_DELAY"] = "0.3"  # slow the steps down a little so the signal lands mid-run
    ov = base_overrides(tmp_path, corpus, steps=STEPS, batch=4, **settings)
    proc = subprocess.Popen(cmd + ["--config", "intrinsic", *ov, "model.factory=tiny.slow_tiny_model"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    log = run / "train_log.csv"
    t0 = time.time()
    while not (log.exists() and len(log.read_text().splitlines()) >= 2):  # header + step 1
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() - t0 < 240
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    assert f"resume with: paraspeechclap train --resume {run}" in err
    stopped_at = [int(p.name[5:]) for p in C.list_checkpoints(run)]
    assert len(stopped_at) == 1 and 1 <= stopped_at[0] < STEPS, stopped_at
    r = subprocess.run(cmd + ["--resume", str(run)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_weights(final_weights(run), final_weights(tmp_path / "full" / "run"))
    import csv

    rows = list(csv.DictReader(open(run / "train_log.csv")))
    assert [int(x["step"]) for x in rows] == list(range(1, STEPS + 1))


# ----------------------------------------------------------------------------------------------- disk full
def _enospc(path):
    return OSError(errno.ENOSPC, "No space left on device", str(path))


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_disk_full_during_checkpoint_then_resume_from_previous(tmp_path, corpus, reference, monkeypatch, where):
    """ENOSPC while writing the step-4 checkpoint (at write: a half-written file; at fsync: the data never reached
    the disk). The error stops the run; no step-4 folder, marker or temporary is left, `latest` still names step 2,
    and resuming continues from step 2 to the uninterrupted result."""
    if where == "write":
        real = torch.save

        def save(obj, f, *a, **k):
            if "step_00000004" in str(f) and str(f).endswith(C.MODEL_FILE):
                Path(f).write_bytes(b"PK\x03\x04 half a file")
                raise _enospc(f)
            return real(obj, f, *a, **k)

        monkeypatch.setattr(torch, "save", save)
    else:
        real = fileio.fsync_file

        def fsync(path):
            if "step_00000004" in str(path) and str(path).endswith(C.STATE_FILE):
                raise _enospc(path)
            return real(path)

        monkeypatch.setattr(fileio, "fsync_file", fsync)
    ov = base_overrides(tmp_path, corpus, steps=STEPS, batch=4, **COMMON)
    with pytest.raises(OSError) as e:
        train("intrinsic", ov)
    assert e.value.errno == errno.ENOSPC
    run = tmp_path / "run"
    assert [p.name for p in C.list_checkpoints(run)] == ["step_00000002"]
    assert not (C.checkpoint_root(run) / "step_00000004").exists()
    assert hidden_leftovers(run) == []
    assert C.read_latest(run) == "step_00000002"
    monkeypatch.undo()
    res = train(None, resume=run)
    assert res["step"] == STEPS
    assert_same_weights(final_weights(run), reference[STEPS])


def test_disk_full_updating_latest_keeps_the_complete_checkpoint(tmp_path, corpus, reference, monkeypatch):
    """ENOSPC at the fsync of `latest`, after the step-4 folder was durably in place: the run stops with the error;
    step 4 is complete (higher save sequence than what `latest` names), so resuming uses it."""
    real = fileio.fsync_file

    def fsync(path):
        if Path(path).name.startswith(".latest") and "step_00000004" in Path(path).read_text():
            raise _enospc(path)
        return real(path)

    monkeypatch.setattr(fileio, "fsync_file", fsync)
    with pytest.raises(OSError):
        train("intrinsic", base_overrides(tmp_path, corpus, steps=STEPS, batch=4, **COMMON))
    run = tmp_path / "run"
    assert C.read_latest(run) == "step_00000002" and hidden_leftovers(run) == []
    assert C.resolve_resume(run).name == "step_00000004"
    monkeypatch.setattr(fileio, "fsync_file", real)
    res = train(None, resume=run)
    assert res["step"] == STEPS
    assert_same_weights(final_weights(run), reference[STEPS])


# ----------------------------------------------------------------------------------------------- corruption
def strip_checksums(ckpt: Path) -> None:
    """Rewrite a COMPLETE record as version 1 wrote it: file names, no checksums."""
    info = json.loads((ckpt / C.MARKER).read_text())
    info.pop("version")
    info["files"] = sorted({name.split("/")[0] for name in info["files"]})
    (ckpt / C.MARKER).write_text(json.dumps(info))


@pytest.mark.parametrize("damage", ["flip_model_byte", "truncate_model", "garbage_state", "pickled_code_in_state",
                                    "truncate_unverified_model"])
def test_corrupted_newest_checkpoint_falls_back(tmp_path, corpus, reference, messages, damage):
    """The newest checkpoint's files do not match its COMPLETE record (one flipped byte inside the model's tensor
    data, which torch.load would read without complaint; a truncated file; a replaced state) or, for a record
    written before checksums existed, do not load: `--resume RUN` warns naming the file, resumes from the one
    before (verified) and ends with the uninterrupted weights, the next checkpoint written from that good state."""
    ov = base_overrides(tmp_path, corpus, steps=STEPS, batch=4, **COMMON)
    train("intrinsic", ov)
    run = tmp_path / "run"
    newest, previous = (C.checkpoint_root(run) / f"step_{s:08d}" for s in (6, 4))
    model_file = newest / C.MODEL_FILE
    data = bytearray(model_file.read_bytes())
    if damage == "flip_model_byte":
        data[len(data) // 2] ^= 0x40  # inside a tensor's storage in the zip: no format check notices it
        model_file.write_bytes(bytes(data))
        silently = C.load_model_state(newest)  # what resuming without checksums would have used
        assert not all(torch.equal(silently[k], reference[STEPS][k]) for k in silently)
    elif damage in ("truncate_model", "truncate_unverified_model"):
        model_file.write_bytes(bytes(data[: len(data) // 3]))
        if damage == "truncate_unverified_model":
            for ck in C.list_checkpoints(run):
                strip_checksums(ck)
    elif damage == "garbage_state":
        (newest / C.STATE_FILE).write_bytes(os.urandom(2000))
    else:
        torch.save({"step": 6, "evil": ShellOut()}, newest / C.STATE_FILE)
    assert C.resolve_resume(run) == newest  # still the head by sequence; it just does not verify or load
    res = train(None, resume=run)
    assert res["step"] == STEPS
    if damage == "truncate_unverified_model":
        assert any("step_00000006 does not load" in m for m in messages), messages
        assert sum("loaded unverified" in m for m in messages) == 1, messages  # said once
        assert any(f"resuming from {previous} (unverified)" in m for m in messages), messages
    else:
        bad = C.STATE_FILE if damage in ("garbage_state", "pickled_code_in_state") else C.MODEL_FILE
        assert any(f"step_00000006 fails verification: {bad}: " in m for m in messages), messages
        assert any(f"resuming from {previous} (verified)" in m for m in messages), messages
        assert not any("unverified" in m for m in messages), messages
    assert_same_weights(final_weights(run), reference[STEPS])
    assert C.load_training_state(newest)["step"] == STEPS  # the broken one was replaced by a good one
    assert C.verify_checkpoint(newest) == {}


def test_resume_removes_leftover_temporaries_only(tmp_path, corpus, messages):
    """A crash mid-save leaves a hidden temporary folder (and a temporary `latest`): the resume removes both and
    logs them, and leaves hidden names it did not make alone."""
    train("intrinsic", base_overrides(tmp_path, corpus, steps=2, batch=4, **COMMON))
    run = tmp_path / "run"
    root = C.checkpoint_root(run)
    half = root / ".step_00000004.0123456789ab.tmp"
    half.mkdir()
    (half / C.MODEL_FILE).write_bytes(b"half a checkpoint")
    (root / ".latest.00000000abcd.tmp").write_text("step_00000004")
    theirs = [root / ".step_00000004.tmp", root / ".notes", root / ".step_00000004.0123456789ab.tmp.bak"]
    for p in theirs:
        p.write_text("not ours")
    messages.clear()
    res = train(None, resume=run)
    assert res["step"] == 2 and [p.name for p in C.list_checkpoints(run)] == ["step_00000002"]
    assert not half.exists() and not (root / ".latest.00000000abcd.tmp").exists()
    assert all(p.read_text() == "not ours" for p in theirs)
    assert any(f"left by an earlier run: {half}" in m for m in messages), messages


def test_no_checkpoint_loads_is_a_clear_error(tmp_path):
    run = tmp_path / "run"
    for step in (2, 4):
        C.save_checkpoint(run, step, torch.nn.Linear(2, 2), {"step": step}, save_pretrained=False, keep_last=0)
        (C.checkpoint_root(run) / f"step_{step:08d}" / C.STATE_FILE).write_bytes(b"nope")
    with pytest.raises(C.CheckpointError, match="step_00000004.*\n.*step_00000002"):
        C.load_first_good(C.resume_candidates(run))


class ShellOut:
    """Pickles to a call of os.system: must never run on load."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


# ----------------------------------------------------------------------------------------------- NaN / Inf
class _NanGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g * float("nan")


def _inject(monkeypatch, bad_calls, kind):
    real = T.training_loss
    calls = {"n": 0}

    def loss(*a, **k):
        out = real(*a, **k)
        calls["n"] += 1
        if bad_calls(calls["n"]):
            out["total_loss"] = out["total_loss"] * float("nan") if kind == "loss" else _NanGrad.apply(out["total_loss"])
        return out

    monkeypatch.setattr(T, "training_loss", loss)
    return calls


@pytest.mark.parametrize("kind", ["loss", "grad"])
def test_nonfinite_step_is_skipped(tmp_path, corpus, monkeypatch, messages, kind):
    """Two bad batches in a row: both optimizer steps are skipped with a warning, the run reaches max_steps with
    finite weights and finite logged losses."""
    _inject(monkeypatch, lambda n: n in (3, 4), kind)
    res = train("intrinsic", base_overrides(tmp_path, corpus, steps=STEPS, batch=4, **COMMON))
    assert res["step"] == STEPS and res["counters"]["nonfinite_steps"] == 2
    skipped = [m for m in messages if "non-finite loss or gradient after step 2" in m]
    assert len(skipped) == 2 and "2 in a row" in skipped[1]
    sd = final_weights(tmp_path / "run")
    assert all(torch.isfinite(v).all() for v in sd.values() if v.is_floating_point())
    import csv

    rows = list(csv.DictReader(open(tmp_path / "run" / "train_log.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))
    assert all(float(r["loss"]) == float(r["loss"]) for r in rows)  # no NaN leaked into the log


@pytest.mark.parametrize("kind", ["loss", "grad"])
def test_nonfinite_streak_stops_without_checkpointing(tmp_path, corpus, monkeypatch, kind):
    """From the 3rd batch on every loss is NaN: after optim.max_nonfinite_steps=3 skipped steps the run stops with
    an error; the only checkpoint is the finite one of step 2."""
    calls = _inject(monkeypatch, lambda n: n >= 3, kind)
    ov = base_overrides(tmp_path, corpus, steps=STEPS, batch=4, **dict(COMMON, **{"optim.max_nonfinite_steps": 3}))
    with pytest.raises(NonFiniteError, match="3 optimizer steps in a row.*max_nonfinite_steps=3.*last checkpoint is step 2"):
        train("intrinsic", ov)
    assert calls["n"] == 5
    run = tmp_path / "run"
    assert [p.name for p in C.list_checkpoints(run)] == ["step_00000002"] and C.read_latest(run) == "step_00000002"
    sd = final_weights(run, 2)
    assert all(torch.isfinite(v).all() for v in sd.values() if v.is_floating_point())


def test_checkpointer_refuses_nonfinite_weights(tmp_path):
    m = torch.nn.Linear(2, 2)
    with torch.no_grad():
        m.weight[0, 0] = float("nan")
    with pytest.raises(C.CheckpointError, match="non-finite"):
        C.save_checkpoint(tmp_path / "run", 2, m, {"step": 2}, save_pretrained=False)
    assert C.list_checkpoints(tmp_path / "run") == [] and hidden_leftovers(tmp_path / "run") == []


# ----------------------------------------------------------------------------------------------- older checkpoints
def test_resume_from_older_refuses_without_fork_and_forks_with_it(tmp_path, corpus, reference, capsys):
    ov = base_overrides(tmp_path, corpus, steps=STEPS, batch=4, **COMMON)
    train("intrinsic", ov)
    run = tmp_path / "run"
    before = tree_digest(run)
    older = C.checkpoint_root(run) / "step_00000002"
    with pytest.raises(ResumeConflict, match="--fork"):
        train(None, resume=older)
    from paraspeechclap.train.cli import main

    assert main(["--resume", str(older)]) == 2
    assert "step_00000006" in capsys.readouterr().err
    assert tree_digest(run) == before  # nothing written, nothing pruned

    res = train(None, resume=older, fork=True, overrides=["checkpoint.keep_last=1"])
    fork = Path(res["run_dir"])
    assert fork == tmp_path / "run-fork-step_00000002" and res["step"] == STEPS
    assert tree_digest(run) == before  # the original run, newer checkpoints included, is untouched
    assert [p.name for p in C.list_checkpoints(fork)] == ["step_00000006"]
    assert_same_weights(final_weights(fork), reference[STEPS])  # same data, same RNG: the same continuation
    import csv

    rows = list(csv.DictReader(open(fork / "train_log.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))  # the parent's history up to step 2, then ours
    assert C.resolve_resume(run).name == "step_00000006"  # --resume RUN still means the original head
    assert C.resolve_resume(fork).name == "step_00000006"
    again = train(None, resume=older, fork=True)
    assert Path(again["run_dir"]) == tmp_path / "run-fork-step_00000002-2"


# ----------------------------------------------------------------------------------------------- two ranks
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_two_ranks_agree_on_stop_and_fail_together_on_a_failed_save(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(tiny.fault_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [s["flags"] for s in seen] == [[0, 1], [0, 1]]  # SIGTERM reached rank 1 only; both stop
    assert seen[0]["signal_here"] is None and seen[1]["signal_here"] == "SIGTERM"
    assert seen[0]["save"].startswith("OSError") and "No space left" in seen[0]["save"]
    assert seen[1]["save"].startswith("CheckpointError") and "failed on rank 0" in seen[1]["save"]
    assert all(s["save_seconds"] < 30 for s in seen), seen  # not the process-group timeout
    assert C.list_checkpoints(tmp_path / "run") == []


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_two_rank_training_skips_and_stops_together(tmp_path, corpus):
    """Rank 1 alone gets a NaN loss and, later, SIGTERM: both ranks skip the same step, stop after the same step,
    and rank 0 saves that step's checkpoint."""
    import torch.multiprocessing as mp

    mp.spawn(tiny.train_faults_worker, args=(2, _free_port(), str(tmp_path), str(corpus)), nprocs=2, join=True,
             start_method="spawn")
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [s["step"] for s in seen] == [3, 3] and [s["calls"] for s in seen] == [4, 4]
    assert seen[1]["stopped"] == "SIGTERM" and seen[0]["stopped"] == "a stop request on another rank"
    assert [s["counters"]["nonfinite_steps"] for s in seen] == [1, 1]
    run = tmp_path / "run"
    assert [p.name for p in C.list_checkpoints(run)] == ["step_00000003"]
    state = C.load_training_state(C.resolve_resume(run))
    assert state["step"] == 3 and state["world_size"] == 2 and len(state["rng"]) == 2
