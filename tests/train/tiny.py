"""Tiny models and synthetic data for the training tests.

``tiny_model(mcfg)`` builds ``ParaSpeechCLAP.from_encoders`` on the reference-tiny encoders (random weights).
It is usable as ``model.factory``.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, also in trainer subprocesses
from reference_fixture import FIXTURE  # noqa: E402


def tiny_model(mcfg=None):
    from paraspeechclap import ParaSpeechCLAP

    torch.manual_seed(0)
    return ParaSpeechCLAP.from_encoders(str(FIXTURE / "speech"), str(FIXTURE / "text"), embedding_dim=24,
                                        pretrained_encoders=False)


def slow_tiny_model(mcfg=None):
    """tiny_model whose forward first sleeps $PSC_TEST_STEP_DELAY seconds (so a test can signal a run mid-way)."""
    import time

    model = tiny_model(mcfg)
    delay = float(os.environ.get("PSC_TEST_STEP_DELAY", "0"))
    model.register_forward_pre_hook(lambda module, args: time.sleep(delay))
    return model


TAGS = ["deep", "calm", "fast", "husky", "shrill", "whispered"]


def write_corpus(root: Path, n: int = 16, *, seconds=(0.6, 1.4), seed: int = 0, tags=None, bad: dict | None = None):
    """Synthetic ParaSpeechCaps-style corpus: WAVs under root/audio/<source>/..., a JSONL manifest.

    ``bad``: {row_index: "missing" | "corrupt"}. Returns the manifest path."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    audio_root = root / "audio"
    rows = []
    for i in range(n):
        src = "synthA" if i % 2 else "synthB"
        rel = f"spk{i % 3}/utt{i:03d}.wav"
        path = audio_root / src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        dur = float(rng.uniform(*seconds))
        sr = 16000 if i % 4 else 22050
        t = np.arange(int(dur * sr)) / sr
        f0 = 110 + 40 * (i % 5)
        wave = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.standard_normal(len(t))
        kind = (bad or {}).get(i)
        if kind == "corrupt":
            path.write_bytes(b"RIFF\x00\x00not really a wav file")
        elif kind != "missing":
            sf.write(path, wave.astype(np.float32), sr)
        tg = tags[i] if tags is not None else [TAGS[i % len(TAGS)]] + ([TAGS[(i * 7) % len(TAGS)]] if i % 3 == 0 else [])
        caps = [f"A speaker with a {tg[0]} voice number {i}.", f"Someone talks in a {tg[0]} way ({i})."] if i % 2 \
            else f"A person speaks in a {tg[0]} tone, clip {i}."
        rows.append({"source": src, "relative_audio_path": rel, "text_description": caps,
                     "intrinsic_tags": [t.upper() + " " for t in tg] if i == 1 else tg,
                     "situational_tags": [], "duration": dur})
    manifest = root / "manifest.jsonl"
    with open(manifest, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return manifest


def base_overrides(tmp: Path, manifest: Path, *, steps: int = 4, batch: int = 4, **extra) -> list[str]:
    ov = {
        "run.output_dir": str(tmp / "run"), "run.device": "cpu", "data.train": str(manifest),
        "data.audio_root": str(manifest.parent / "audio"), "data.crop_seconds": 1.0, "data.num_workers": 0,
        "optim.batch_size": batch, "optim.max_steps": steps, "optim.epochs": "null", "optim.lr": 1e-4,
        "model.factory": "tiny.tiny_model", "logging.tqdm": "false", "logging.tensorboard": "false",
        "logging.every_n_steps": 1, "checkpoint.every_n_steps": 0, "checkpoint.save_pretrained": "false",
    }
    ov.update(extra)
    return [f"{k}={v}" for k, v in ov.items()]


# ------------------------------------------------------------------------------ distributed check
def make_batch(n: int = 6, samples: int = 6400, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    tags = [["deep"], ["calm", "fast"], [], ["husky"], ["deep", "shrill"], ["whispered"]] * 4
    return {
        "audio": torch.randn(n, samples, generator=g),
        "audio_attention_mask": torch.ones(n, samples, dtype=torch.long),
        "audio_lengths": torch.full((n,), samples),
        "text": [f"caption number {i} about a {tags[i][0] if tags[i] else 'plain'} voice" for i in range(n)],
        "tags": {"intrinsic_tags": tags[:n]},
        "size": n,
    }


def head_specs():
    from paraspeechclap.train.step import HeadSpec, synonym_templates

    return [HeadSpec("intrinsic_tags", sorted(set(TAGS)), synonym_templates("builtin"),
                     "A person is speaking in a {} style.")]


def grads_of(model, batch, ddp=None):
    from paraspeechclap.train.step import training_loss

    model.zero_grad(set_to_none=True)
    out = training_loss(ddp or model, model, batch, device=torch.device("cpu"), heads=head_specs(), step=5, seed=11)
    out["total_loss"].backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}, float(out["total_loss"])


def ddp_worker(rank: int, world: int, port: int, out_dir: str, splits: list) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from paraspeechclap.train import distributed as D

    info = D.setup("cpu", "gloo", 2)
    try:
        model = tiny_model()
        model.eval()
        ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
        full = make_batch(sum(splits))
        lo = sum(splits[:rank])
        hi = lo + splits[rank]
        local = {k: (v[lo:hi] if torch.is_tensor(v) or isinstance(v, list) else v) for k, v in full.items()}
        local["tags"] = {c: v[lo:hi] for c, v in full["tags"].items()}
        local["size"] = hi - lo
        grads, loss = grads_of(model, local, ddp)
        torch.save({"grads": grads, "loss": loss}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        D.cleanup(info)


def fault_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    """Two gloo ranks: (1) a signal on rank 1 alone becomes a stop on both (the per-step flag all-reduce);
    (2) a checkpoint save that fails on rank 0 (a full disk) raises on both ranks at once, not after the
    process-group timeout. Each rank writes what it saw to rank{r}.json."""
    import errno
    import signal
    import time

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from paraspeechclap.train import checkpointing as C
    from paraspeechclap.train import distributed as D
    from paraspeechclap.train.state import StopSignals, agree

    info = D.setup("cpu", "gloo", 2)  # a 2-minute timeout: a bare barrier would hang that long
    seen: dict = {}
    try:
        stop = StopSignals().install()
        if rank == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        seen["flags"] = agree([0, int(stop.received is not None)], info)
        seen["signal_here"] = stop.name
        stop.restore()
        real_save = torch.save

        def full_disk(obj, f, *a, **k):
            raise OSError(errno.ENOSPC, "No space left on device", str(f))

        torch.save = full_disk if rank == 0 else real_save
        ck = C.Checkpointer(Path(out_dir) / "run", info, keep_last=2, save_pretrained=False)
        t0 = time.time()
        try:
            ck.save(2, torch.nn.Linear(2, 2), {"step": 2} if rank == 0 else None)
            seen["save"] = "ok"
        except Exception as e:  # noqa: BLE001
            seen["save"] = f"{type(e).__name__}: {e}"
        seen["save_seconds"] = time.time() - t0
        torch.save = real_save
    finally:
        (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(seen))
        D.cleanup(info)


def train_faults_worker(rank: int, world: int, port: int, out_dir: str, manifest: str) -> None:
    """A 2-rank training run in which rank 1 alone sees a NaN loss (2nd batch) and a SIGTERM (during the 4th):
    both ranks must skip the same step and stop at the same step boundary. Writes rank{r}.json."""
    import signal

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from paraspeechclap.train import trainer as T

    real = T.training_loss
    calls = {"n": 0}

    def faulty(*a, **k):
        calls["n"] += 1
        if rank == 1 and calls["n"] == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        out = real(*a, **k)
        if rank == 1 and calls["n"] == 2:
            out["total_loss"] = out["total_loss"] * float("nan")
        return out

    T.training_loss = faulty
    ov = base_overrides(Path(out_dir), Path(manifest), steps=6, batch=2, **{
        "data.crop_seconds": 0.4, "distributed.backend": "gloo", "distributed.timeout_minutes": 2,
        "distributed.find_unused_parameters": "true"})
    res = T.train("situational", ov)
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(
        {k: res[k] for k in ("step", "stopped", "counters")} | {"calls": calls["n"]}))
