"""Checkpoint bookkeeping without training: save sequence, `latest`, pruning that spares other branches,
weights-only training state."""
import json
import logging
import os
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from paraspeechclap.train import checkpointing as C

ALONE = SimpleNamespace(is_main=True, distributed=False, rank=0, world_size=1)


def _names(run):
    return [p.name for p in C.list_checkpoints(run)]


def test_newest_means_written_last_not_highest_step(tmp_path):
    run = tmp_path / "run"
    m = torch.nn.Linear(2, 2)
    for step in (2, 4, 6):
        C.save_checkpoint(run, step, m, {"step": step}, save_pretrained=False, keep_last=0)
    assert [C.save_seq(p) for p in C.list_checkpoints(run)] == [1, 2, 3]
    base = C.checkpoint_root(run) / "step_00000002"
    ck = C.Checkpointer(run, ALONE, keep_last=1, save_pretrained=False, base=base)
    ck.save(3, m, {"step": 3})  # a branch off step 2 (as a fork would do, but in place)
    assert _names(run)[-1] == "step_00000003" and C.save_seq(C.checkpoint_root(run) / "step_00000003") == 4
    assert C.resolve_resume(run).name == "step_00000003" and C.read_latest(run) == "step_00000003"
    # keep_last=1 pruned the base (an ancestor) but never the other branch's newer checkpoints
    assert _names(run) == ["step_00000004", "step_00000006", "step_00000003"]
    with pytest.raises(FileExistsError, match="not a checkpoint of this run's branch"):
        ck.save(4, m, {"step": 4})  # would replace the other branch's step 4
    assert C.load_training_state(C.checkpoint_root(run) / "step_00000004")["step"] == 4


def test_latest_decides_between_legacy_checkpoints(tmp_path):
    """Checkpoints written before save sequences existed: `latest` names the head, not the highest step."""
    run = tmp_path / "run"
    m = torch.nn.Linear(2, 2)
    for step in (2, 6, 4):
        C.save_checkpoint(run, step, m, {"step": step}, save_pretrained=False, keep_last=0)
    for p in C.list_checkpoints(run):  # strip the sequence numbers, as an older version wrote them
        info = json.loads((p / C.MARKER).read_text())
        del info["seq"]
        (p / C.MARKER).write_text(json.dumps(info))
    assert C.read_latest(run) == "step_00000004"
    assert C.resolve_resume(run).name == "step_00000004"
    assert [p.name for p in C.resume_candidates(run)] == ["step_00000004", "step_00000006", "step_00000002"]


def _run_at_step_2(tmp_path, keep_last: int):
    """A run folder with one checkpoint (step 2) of a small model; returns (run folder, model)."""
    run = tmp_path / "run"
    m = torch.nn.Linear(2, 2)
    C.save_checkpoint(run, 2, m, {"step": 2}, save_pretrained=False, keep_last=keep_last)
    return run, m


def test_incomplete_or_foreign_folders_are_left_alone(tmp_path):
    run, m = _run_at_step_2(tmp_path, keep_last=1)
    mine = C.checkpoint_root(run) / "step_00000004"
    mine.mkdir()
    (mine / "notes.txt").write_text("someone else's")
    with pytest.raises(FileExistsError):
        C.save_checkpoint(run, 4, m, {"step": 4}, save_pretrained=False, keep_last=1)
    assert (mine / "notes.txt").read_text() == "someone else's"
    (C.checkpoint_root(run) / ".step_00000006.0123456789ab.tmp").mkdir()  # a crash mid-save (ours)
    (C.checkpoint_root(run) / ".hidden-by-user").mkdir()
    C.save_checkpoint(run, 8, m, {"step": 8}, save_pretrained=False, keep_last=1)
    assert _names(run) == ["step_00000008"]
    assert not (C.checkpoint_root(run) / ".step_00000006.0123456789ab.tmp").exists()
    assert (C.checkpoint_root(run) / ".hidden-by-user").is_dir() and mine.is_dir()


def test_incomplete_checkpoint_is_ignored(tmp_path):
    run, m = _run_at_step_2(tmp_path, keep_last=2)
    half = C.checkpoint_root(run) / "step_00000004"
    half.mkdir()
    torch.save(m.state_dict(), half / "model.pth.tar")  # no COMPLETE marker: a crash mid-save
    (C.checkpoint_root(run) / ".tmp-step_00000006-1").mkdir()
    assert C.resolve_resume(run).name == "step_00000002"
    with pytest.raises(FileNotFoundError):
        C.resolve_resume(half)
    C.save_checkpoint(run, 8, m, {"step": 8}, save_pretrained=False, keep_last=1)
    assert [p.name for p in C.list_checkpoints(run)] == ["step_00000008"]
    assert not (C.checkpoint_root(run) / ".tmp-step_00000006-1").exists()


def test_training_state_is_weights_only_and_rng_round_trips(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.standard_normal()  # a cached gaussian in the numpy state
    state = C.rng_state()
    expect = (random.random(), np.random.standard_normal(), torch.rand(2))
    run = tmp_path / "run"
    C.save_checkpoint(run, 1, torch.nn.Linear(2, 2), {"step": 1, "rng": [state]}, save_pretrained=False)
    loaded = C.load_training_state(C.resolve_resume(run))  # weights_only=True inside
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    C.set_rng_state(loaded["rng"][0])
    got = (random.random(), np.random.standard_normal(), torch.rand(2))
    assert got[0] == expect[0] and got[1] == expect[1] and torch.equal(got[2], expect[2])


def test_completion_record_checksums_every_file_and_verification_names_the_bad_one(tmp_path):
    run = tmp_path / "run"
    ck = C.save_checkpoint(run, 2, torch.nn.Linear(4, 4), {"step": 2}, save_pretrained=False, keep_last=0)
    (ck / "pretrained").mkdir()  # nested files are recorded by relative path (as save_pretrained writes them)
    record = json.loads((ck / C.MARKER).read_text())
    assert record["version"] == C.RECORD_VERSION == 2 and record["step"] == 2 and record["seq"] == 1
    assert sorted(record["files"]) == [C.MODEL_FILE, C.STATE_FILE]
    for name, entry in record["files"].items():
        assert entry["bytes"] == (ck / name).stat().st_size and len(entry["sha256"]) == 64
    assert C.verify_checkpoint(ck) == {}
    data = bytearray((ck / C.MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 1
    (ck / C.MODEL_FILE).write_bytes(bytes(data))
    assert C.verify_checkpoint(ck) == {C.MODEL_FILE: "SHA-256 differs from the record (contents altered)"}
    (ck / C.STATE_FILE).unlink()
    assert C.verify_checkpoint(ck)[C.STATE_FILE] == "missing"
    with pytest.raises(C.CheckpointError, match=r"fails verification: model\.pth\.tar: SHA-256 differs.*"
                                                r"training_state\.pt: missing"):
        C.load_first_good([ck])


def test_version_1_records_load_unverified_and_say_so_once(tmp_path):
    run = tmp_path / "run"
    for step in (2, 4):
        ck = C.save_checkpoint(run, step, torch.nn.Linear(2, 2), {"step": step}, save_pretrained=False, keep_last=0)
        info = json.loads((ck / C.MARKER).read_text())
        info.pop("version")
        info["files"] = sorted(info["files"])  # version 1: names only
        (ck / C.MARKER).write_text(json.dumps(info))
    assert C.verify_checkpoint(ck) is None
    got = []
    handler = logging.Handler()
    handler.emit = lambda record: got.append(record.getMessage())
    C.logger.addHandler(handler)
    try:
        chosen, state, _ = C.load_first_good(C.resume_candidates(run))
    finally:
        C.logger.removeHandler(handler)
    assert chosen.name == "step_00000004" and state["step"] == 4
    assert [m for m in got if "unverified" in m] == [
        f"checkpoint {chosen} was written before checksums were recorded: loaded unverified"]


def test_a_checkpointer_removes_only_its_own_temporaries(tmp_path):
    run = tmp_path / "run"
    root = C.checkpoint_root(run)
    root.mkdir(parents=True)
    ours = [root / ".step_00000002.0123456789ab.tmp", root / ".latest.0123456789ab.tmp", root / ".tmp-step_2-x",
            root / ".old-step_2-17"]
    theirs = [root / ".step_00000002.tmp", root / ".latest.tmp", root / "step_00000002.0123456789ab.tmp",
              root / ".latest.0123456789AB.tmp", root / ".model.pth.tar.0123456789ab.tmp"]
    ours[0].mkdir()
    (ours[0] / "x").write_text("half")
    for p in ours[1:] + theirs:
        p.write_text("x")
    C.Checkpointer(run, SimpleNamespace(is_main=False), keep_last=1, save_pretrained=False)
    assert all(p.exists() for p in ours)  # only rank 0 takes the folder over
    C.Checkpointer(run, ALONE, keep_last=1, save_pretrained=False)
    assert not any(os.path.lexists(p) for p in ours) and all(p.exists() for p in theirs)
