"""End-to-end training on a tiny model and a synthetic corpus (CPU)."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tiny import base_overrides, write_corpus

from paraspeechclap.train import checkpointing as C
from paraspeechclap.train.trainer import train

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return write_corpus(root, 16, seconds=(0.3, 0.9))


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")])
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    return env


def test_train_intrinsic_smoke(tmp_path, corpus):
    ov = base_overrides(tmp_path, corpus, steps=3, batch=4, **{
        "data.crop_seconds": 0.5, "checkpoint.every_n_steps": 2, "checkpoint.keep_last": 1,
        "checkpoint.save_pretrained": "true", "validation.data": str(corpus), "validation.max_items": 6,
        "validation.batch_size": 3, "logging.tensorboard": "true", "optim.schedule": "cosine",
        "optim.warmup_steps": 1, "optim.grad_clip": 1.0, "model.max_logit_scale": 14.0})
    res = train("intrinsic", ov)
    run = Path(res["run_dir"])
    assert res["step"] == 3
    cks = C.list_checkpoints(run)
    assert [p.name for p in cks] == ["step_00000003"]  # keep_last=1 pruned step 2
    ck = cks[0]
    sd = torch.load(ck / "model.pth.tar", weights_only=True)  # the released format: a plain state dict
    assert isinstance(sd, dict) and "log_logit_scale" in sd and any(k.startswith("audio_branch.base.") for k in sd)
    assert (ck / "pretrained").is_dir() and (ck / "COMPLETE").exists()
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_00000003"
    assert float(sd["log_logit_scale"].exp()) <= 14.0 + 1e-4  # clamped after every step
    rows = list(csv.DictReader(open(run / "train_log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert all(float(r["samples_per_s"]) > 0 and float(r["audio_hours_per_hour"]) > 0 for r in rows)
    assert float(rows[0]["classification_loss"]) > 0
    val = list(csv.DictReader(open(run / "val_log.csv")))
    assert len(val) == 1 and 0 <= float(val[0]["R@1_A2T"]) <= 100 and int(val[0]["items"]) == 6
    assert list((run / "tensorboard").iterdir())
    st = C.load_training_state(ck)
    assert st["step"] == 3 and "optimizer" in st and "rng" in st and st["sampler"]["epoch"] == 0
    with pytest.raises(FileExistsError, match="--resume"):  # a fresh run never clobbers checkpoints
        train("intrinsic", ov)


def test_bad_audio_skip_and_error(tmp_path):
    m = write_corpus(tmp_path / "c", 8, seconds=(0.3, 0.6), bad={2: "missing", 5: "corrupt"})
    ov = base_overrides(tmp_path, m, steps=2, batch=4, **{"data.crop_seconds": 0.4, "sampler.shuffle": "false"})
    res = train("situational", ov)
    assert res["counters"]["bad_items"] == 2 and res["counters"]["samples"] == 6
    bad = (Path(res["run_dir"]) / "bad_audio.tsv").read_text().splitlines()
    assert len(bad) == 2 and bad[0].split("\t")[0].endswith("utt002.wav") and "utt005.wav" in bad[1]
    ov = base_overrides(tmp_path / "e", m, steps=2, batch=4, **{"data.crop_seconds": 0.4, "sampler.shuffle": "false",
                                                                 "data.on_bad_audio": "error"})
    with pytest.raises(RuntimeError, match="utt002.wav"):
        train("situational", ov)


def test_cli_print_config_and_errors(tmp_path):
    from paraspeechclap.train.cli import main

    assert main(["--config", "combined", "--print-config", "lr=2e-5"]) == 0
    assert main(["--config", "combined", "optim.nope=1"]) == 2


def _cli(args, **kw):
    return [sys.executable, "-m", "paraspeechclap.train.cli", *args]


def test_sigkill_resume_is_bit_identical(tmp_path, corpus):
    common = dict(**{"data.crop_seconds": 0.4, "checkpoint.every_n_steps": 2, "checkpoint.keep_last": 0,
                     "run.deterministic": "true", "loss.classification_weight": 0.5})
    env = _env()
    full = base_overrides(tmp_path / "full", corpus, steps=6, batch=4, **common)
    subprocess.run(_cli(["--config", "intrinsic", *full]), env=env, check=True, capture_output=True, timeout=300)
    killed = base_overrides(tmp_path / "killed", corpus, steps=6, batch=4, **common)
    run = tmp_path / "killed" / "run"
    proc = subprocess.Popen(_cli(["--config", "intrinsic", *killed]), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    first = run / "checkpoints" / "step_00000002" / "COMPLETE"
    t0 = time.time()
    while not first.exists():
        assert proc.poll() is None, "training exited before its first checkpoint"
        assert time.time() - t0 < 240
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = [p.name for p in C.list_checkpoints(run)]
    assert "step_00000006" not in done, "killed too late to test anything"
    r = subprocess.run(_cli(["--resume", str(run)]), env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    a = torch.load(tmp_path / "full" / "run" / "checkpoints" / "step_00000006" / "model.pth.tar", weights_only=True)
    b = torch.load(run / "checkpoints" / "step_00000006" / "model.pth.tar", weights_only=True)
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"{len(diff)} tensors differ, e.g. {diff[:3]}"
    rows = list(csv.DictReader(open(run / "train_log.csv")))
    assert [int(x["step"]) for x in rows] == [1, 2, 3, 4, 5, 6]


def test_options_pretrained_init_freeze_accum_bf16(tmp_path, corpus):
    """Released-checkpoint init, freezing a tower, grad accumulation, bf16 autocast, gradient
    checkpointing, masked padding and two interleaved manifests, in one short run."""
    from tiny import FIXTURE

    second = write_corpus(tmp_path / "c2", 6, seconds=(0.3, 0.5), seed=1)
    init = torch.load(FIXTURE / "checkpoint.pth.tar", weights_only=True)
    ov = base_overrides(tmp_path, corpus, steps=2, batch=2, **{
        "model.factory": "null", "model.init": "pretrained", "model.source": str(FIXTURE / "checkpoint.pth.tar"),
        "model.speech_model": str(FIXTURE / "speech"), "model.text_model": str(FIXTURE / "text"),
        "model.embedding_dim": 24, "freeze": "[text_branch.base]", "optim.grad_accum": 2, "optim.precision": "bf16",
        "model.gradient_checkpointing": "true", "data.mask_padding": "true", "data.crop_seconds": 0.4,
        "data.train": f"[{corpus}, {{path: {second}, audio_root: {second.parent / 'audio'}}}]",
        "checkpoint.every_n_steps": 0})
    res = train("situational", ov)
    assert res["step"] == 2 and res["counters"]["samples"] == 8 and res["counters"]["bad_items"] == 0
    sd = torch.load(Path(res["checkpoint"]) / "model.pth.tar", weights_only=True)
    assert set(sd) == set(init)  # released layout in, released layout out
    text = [k for k in init if k.startswith("text_branch.base.")]
    assert all(torch.equal(sd[k], init[k]) for k in text)  # frozen
    assert not torch.equal(sd["audio_projection.linear1.weight"], init["audio_projection.linear1.weight"])


def test_streaming_source(tmp_path, corpus):
    import datasets

    from paraspeechclap.data.sources import read_manifest

    folder = tmp_path / "ds"
    rows = [dict(r, text_description=r["text_description"] if isinstance(r["text_description"], list)
                 else [r["text_description"]]) for r in read_manifest(corpus)]
    datasets.Dataset.from_list(rows).save_to_disk(str(folder))
    ov = base_overrides(tmp_path, corpus, steps=2, batch=3, **{
        "data.train": str(folder), "data.streaming": "true", "data.shuffle_buffer": 8, "data.crop_seconds": 0.3})
    res = train("situational", ov)
    assert res["step"] == 2 and res["counters"]["samples"] == 6
