"""The training loop.

One :class:`Trainer` serves one device or many (torchrun). Differences from the reference trainer,
each deliberate:

* the logit scale is clamped to [ln 1, ln max_logit_scale] after **every** optimizer step (the
  reference clamps only at epoch ends, so the 4500-step intrinsic run is unbounded until its very
  end); the value used by every loss therefore always lies in [1, 100];
* embeddings gathered from other ranks scale the local gradient by the world size, so DDP's mean
  all-reduce gives exactly the gradient of the global-batch loss (see :mod:`paraspeechclap.losses`);
* tag prompts are drawn per step from a generator seeded by (seed, step): identical on every rank
  without a broadcast, and reproduced exactly on resume;
* the sampler plan, crops and caption choices depend only on (seed, epoch, position), checkpoints
  carry every RNG state, so ``--resume`` continues exactly (bit-identical weights on CPU);
* unreadable audio is counted, logged with its path (``bad_audio.tsv`` in the run folder) and
  skipped, or stops the run (``data.on_bad_audio=error``);
* SIGTERM / SIGINT save a checkpoint at the next step boundary and return (every rank agrees through
  one small all-reduce per step); a non-finite loss or gradient skips the optimizer step, and
  ``optim.max_nonfinite_steps`` such steps in a row stop the run without checkpointing;
* checkpoints carry a save sequence number; resuming from an older checkpoint into its own run folder is
  refused (``--fork`` branches into a new folder), and resuming a run folder falls back to the newest
  checkpoint that loads.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import losses as L
from ..data.collate import concat
from . import checkpointing as C
from . import distributed as D
from .building import build_model, build_optimization, enable_gradient_checkpointing, freeze
from .config import Config, apply_overrides, validate, _wrap
from .data import TrainingData, UnreadableItems
from .logs import RunLogger
from .run_folder import prepare_run_dir, resume_command
from .state import StopSignals, TrainState, agree
from .step import training_loss
from .validation import Validator

logger = logging.getLogger("paraspeechclap.train")

SR = 16000


class NonFiniteError(RuntimeError):
    """optim.max_nonfinite_steps optimizer steps in a row had a non-finite loss or gradient."""


def setup_logging(level: str = "INFO", rank: int = 0) -> None:
    root = logging.getLogger("paraspeechclap")
    if not root.handlers:
        h = logging.StreamHandler()
        prefix = f"[rank {rank}] " if rank else ""
        h.setFormatter(logging.Formatter(f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root.addHandler(h)
        root.propagate = False
    root.setLevel(getattr(logging, str(level).upper(), logging.INFO) if rank == 0 else logging.WARNING)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class Trainer:
    """One training run: :meth:`run` sets up (run folder, model, data, optimizer, resume), then loops.

    The pieces: :class:`~.state.TrainState` (where the run is), :class:`~.checkpointing.Checkpointer` (saves,
    prunes), :class:`~.logs.RunLogger` (CSV/TensorBoard/W&B), :class:`~.state.StopSignals` (SIGTERM/SIGINT)."""

    def __init__(self, cfg: Config, *, resume: str | os.PathLike | None = None, model: torch.nn.Module | None = None,
                 fork: bool = False, preloaded: tuple | None = None):
        self.cfg = cfg
        self.resume_from = resume
        self.fork = bool(fork)
        self._preloaded = preloaded
        self._model_override = model
        self.log: RunLogger | None = None
        self.history: list[dict] = []

    # ------------------------------------------------------------------ run
    def run(self) -> dict:
        cfg = self.cfg
        self.dist = dist = D.setup(cfg.run.device, cfg.distributed.backend, cfg.distributed.timeout_minutes)
        setup_logging(cfg.run.log_level, dist.rank)
        self.stop = StopSignals().install()
        try:
            return self._run()
        finally:
            self.stop.restore()
            if self.log is not None:
                self.log.close()
            D.cleanup(dist)

    def _run(self) -> dict:
        cfg, dist = self.cfg, self.dist
        if cfg.run.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        seed_everything(int(cfg.run.seed) + dist.rank)
        base, saved, weights, broken = self._load_resume()
        self.run_dir = prepare_run_dir(cfg, dist, base, broken, fork=self.fork)
        self._build_model()
        self.data = TrainingData(cfg, dist, self.model)
        self.unreadable = UnreadableItems(cfg, dist, self.run_dir)
        self.validator = Validator(cfg, dist, self.data.normalize)
        self._build_optimizer()
        st = self._restore(base, saved, weights)
        self.ckpt = C.Checkpointer(self.run_dir, dist, keep_last=cfg.checkpoint.keep_last,
                                   save_pretrained=bool(cfg.checkpoint.save_pretrained), base=base, broken=broken)
        self.log = RunLogger(cfg, dist, self.run_dir, resumed_step=st.step if base is not None else None,
                             total=self.total, initial_step=st.step)
        self.history = self.log.history
        if saved is not None:
            rs = saved["rng"]
            C.set_rng_state(rs[dist.rank] if len(rs) > dist.rank else rs[0])
        stopped = self._loop(st)
        return self._finish(st, stopped)

    # ------------------------------------------------------------------ set-up
    def _load_resume(self):
        """(checkpoint, training state, weights, newer checkpoints that did not load); Nones for a fresh run.
        Rank 0 picks the checkpoint (the newest that loads) and every rank uses that one."""
        if not self.resume_from:
            return None, None, None, []
        cands = C.resume_candidates(self.resume_from)
        if self._preloaded is not None and self._preloaded[0] in cands:
            ck, saved, weights = self._preloaded
        else:
            ck, saved, weights = C.load_first_good(cands)
        self._preloaded = None
        if self.dist.distributed:
            chosen = Path(D.broadcast_object(str(ck)))
            if chosen != ck:
                ck, saved, weights = C.load_first_good([chosen])
        broken = cands[:cands.index(ck)] if ck in cands else []
        return ck, saved, weights, broken

    def _build_model(self) -> None:
        cfg = self.cfg
        model = self._model_override if self._model_override is not None else build_model(cfg.model)
        frozen = freeze(model, list(cfg.model.freeze or []))
        if cfg.model.gradient_checkpointing:
            enable_gradient_checkpointing(model)
        model.to(self.dist.device)
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        logger.info("model: %.1fM trainable parameters, %.1fM frozen", n_train / 1e6, frozen / 1e6)
        if not hasattr(model, "log_logit_scale"):
            raise AttributeError("the model has no log_logit_scale parameter")
        self.model = model
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.max_log_scale = math.log(float(cfg.model.max_logit_scale))

    def _build_optimizer(self) -> None:
        self.total = self._total_steps()
        optimization = build_optimization(self.cfg.optim, self.params, self.total, self.dist.device)
        self.optimizer, self.scheduler = optimization.optimizer, optimization.scheduler
        self.scaler, self.autocast = optimization.scaler, optimization.autocast

    def _restore(self, base: Path | None, saved: dict | None, weights: dict | None) -> TrainState:
        """Load weights, optimizer, scheduler and scaler from the checkpoint; wrap the model in DDP."""
        cfg, dist = self.cfg, self.dist
        st = TrainState()
        if base is not None:
            self.model.load_state_dict(weights)
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
            if saved.get("scaler"):
                self.scaler.load_state_dict(saved["scaler"])
            st = TrainState.from_dict(saved)
            if int(saved.get("world_size", 1)) != dist.world_size:
                logger.warning("resuming a %d-process run on %d processes: the data order changes",
                               saved.get("world_size", 1), dist.world_size)
            logger.info("resumed from %s: step %d, epoch %d, batch %d", base, st.step, st.epoch + 1, st.position)
        self.ddp = self.model
        if dist.distributed:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None,
                # eval-mode towers leave e.g. WavLM's masked_spec_embed unused
                find_unused_parameters=bool(cfg.distributed.find_unused_parameters or cfg.model.disable_dropout))
        return st

    def _total_steps(self) -> int | None:
        o = self.cfg.optim
        spe = self.data.steps_per_epoch()
        cands = []
        if o.max_steps:
            cands.append(int(o.max_steps))
        if o.epochs and spe:
            cands.append(int(o.epochs) * spe)
        return min(cands) if cands else None

    # ------------------------------------------------------------------ the loop
    def _done(self, st: TrainState) -> bool:
        o = self.cfg.optim
        return bool((o.max_steps and st.step >= int(o.max_steps)) or (o.epochs and st.epoch >= int(o.epochs)))

    def _loop(self, st: TrainState) -> str | None:
        """Train until max_steps / epochs; returns the name of the signal that stopped the run early, if any."""
        while not self._done(st):
            self.model.train(not bool(self.cfg.model.disable_dropout))
            stopped = self._epoch(st)
            if stopped:
                return stopped
        return None

    def _epoch(self, st: TrainState) -> str | None:
        """The rest of the current epoch (or up to max_steps)."""
        accum, max_steps = int(self.cfg.optim.grad_accum), self.cfg.optim.max_steps
        started_at, got = st.position, 0
        acc = self._new_accumulator()
        for batch in self.data.loader(st.epoch, st.position):
            st.position += 1
            self.unreadable.account(batch, st.counters)
            if D.all_reduce_min(batch["size"], self.dist.device) == 0:
                logger.warning("skipping a batch: a rank has no readable item")
                continue
            self._forward_backward(batch, st, acc, sync=acc["micro"] + 1 == accum)
            got += 1
            if acc["micro"] < accum:
                continue
            stopped = self._finish_step(st, acc)
            acc = self._new_accumulator()
            if stopped:
                return stopped
            if max_steps and st.step >= int(max_steps):
                return None
        if acc["micro"]:  # leftover micro-batches at the end of the epoch: one (rescaled) step
            stopped = self._finish_step(st, acc)
            if stopped:
                return stopped
        if got == 0 and started_at == 0:
            raise RuntimeError("an epoch produced no usable batch (all audio unreadable?)")
        st.epoch += 1
        st.position = 0
        return None

    def _new_accumulator(self) -> dict:
        return {"micro": 0, "loss": torch.zeros(4, dtype=torch.float64, device=self.dist.device), "samples": 0,
                "audio": 0.0}

    def _forward_backward(self, batch: dict, st: TrainState, acc: dict, *, sync: bool) -> None:
        cfg = self.cfg
        ctx = self.ddp.no_sync() if (self.dist.distributed and not sync) else contextlib.nullcontext()
        order = None
        rule = self.data.order
        if rule is not None:
            extra = rule.batch(st.step * int(cfg.optim.grad_accum) + acc["micro"], self.dist.rank, self.data.collator)
            self.unreadable.account(extra, st.counters)
            order = (rule, batch["size"], extra.get("indices", []), extra["order_groups"])
            batch = concat(batch, extra, audio_only=not rule.joint)
        with ctx:
            out = training_loss(self.ddp, self.model, batch, device=self.dist.device, heads=self.data.heads, step=st.step,
                                seed=int(cfg.run.seed), classification_weight=float(cfg.loss.classification_weight),
                                autocast=self.autocast, order=order)
            self.scaler.scale(out["total_loss"] / int(cfg.optim.grad_accum)).backward()
        acc["micro"] += 1
        # accumulated on the device: the only host sync is the finiteness check at the step
        acc["loss"] += torch.stack([out["total_loss"].detach(), out["contrastive_loss"].detach(),
                                    out["classification_loss"].detach(), out["order_loss"].detach()]).double()
        n, secs = batch["size"], float(batch["audio_lengths"].sum()) / SR
        acc["samples"] += n
        acc["audio"] += secs
        st.counters["samples"] += n
        st.counters["audio_seconds"] += secs

    def _finish_step(self, st: TrainState, acc: dict) -> str | None:
        """The optimizer step (or its skip), then logging, validation and checkpoint when due; at a stop request
        a checkpoint, and the signal's name is returned. Every rank takes the same decisions."""
        cfg = self.cfg
        applied, stop = self._optimizer_step(acc)
        if applied:
            st.step += 1
            st.nonfinite_streak = 0
            self.log.add_step(acc["loss"], acc["micro"], acc["samples"], acc["audio"])
            self.log.after_step(st, self.model, self.scheduler, len(self.data.sampler) if self.data.sampler else None)
            val_every, ck_every = int(cfg.validation.every_n_steps or 0), int(cfg.checkpoint.every_n_steps or 0)
            if val_every and st.step % val_every == 0:
                self.validate(st.step)
            if ck_every and st.step % ck_every == 0:
                self.save(st)
        else:
            self._skipped(st)
        if not stop:
            return None
        if st.last_saved != st.step:
            self.save(st)
        return self.stop.name or "a stop request on another rank"

    def _optimizer_step(self, acc: dict) -> tuple[bool, bool]:
        """(applied, stop): skip the step when the loss or the gradient is not finite on any rank; with fp16 the
        grad scaler handles non-finite gradients itself (it skips and lowers the scale), so only the loss counts."""
        cfg, opt, scaler = self.cfg, self.optimizer, self.scaler
        accum, micro = int(cfg.optim.grad_accum), acc["micro"]
        grads = [p.grad for p in self.params if p.grad is not None]
        if micro != accum:
            for g in grads:
                g.mul_(accum / micro)
        finite = torch.isfinite(acc["loss"]).all()
        if not scaler.is_enabled() and grads:
            finite = finite & torch.isfinite(torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(g.detach(), 2.0) for g in grads]), 2.0)).to(finite.device)
        bad, stop = agree([int(not bool(finite)), int(self.stop.received is not None)], self.dist)
        if bad:
            opt.zero_grad(set_to_none=True)
            return False, bool(stop)
        if cfg.optim.grad_clip:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(self.params, float(cfg.optim.grad_clip))
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        self.scheduler.step()
        with torch.no_grad():
            self.model.log_logit_scale.clamp_(0.0, self.max_log_scale)
        return True, bool(stop)

    def _skipped(self, st: TrainState) -> None:
        limit = int(self.cfg.optim.max_nonfinite_steps)
        st.nonfinite_streak += 1
        st.counters["nonfinite_steps"] = st.counters.get("nonfinite_steps", 0) + 1
        logger.warning("non-finite loss or gradient after step %d: optimizer step skipped (%d in a row; the run "
                       "stops at optim.max_nonfinite_steps=%d)", st.step, st.nonfinite_streak, limit)
        if st.nonfinite_streak >= limit:
            last = f"the last checkpoint is step {st.last_saved}" if st.last_saved >= 0 else "no checkpoint was written"
            raise NonFiniteError(
                f"{st.nonfinite_streak} optimizer steps in a row had a non-finite loss or gradient "
                f"(optim.max_nonfinite_steps={limit}); stopped at step {st.step} without saving ({last}). "
                f"Lower optim.lr, set optim.grad_clip, or check the data")

    def _finish(self, st: TrainState, stopped: str | None) -> dict:
        cfg, dist = self.cfg, self.dist
        self.log.close()
        result = {"step": st.step, "epoch": st.epoch, "counters": st.counters, "run_dir": str(self.run_dir),
                  "validation": None, "stopped": stopped}
        if stopped:
            result["resume_command"] = resume_command(self.run_dir, dist)
            if dist.is_main:
                logger.warning("stopped by %s at step %d; checkpoint saved. Resume with: %s", stopped, st.step,
                               result["resume_command"])
        else:
            val_every = int(cfg.validation.every_n_steps or 0)
            if cfg.validation.data and (not val_every or st.step % val_every):
                result["validation"] = self.validate(st.step)
            if st.last_saved != st.step:
                self.save(st)
            if dist.is_main:
                logger.info("done: %d steps, %d samples, %.2f h of audio, %d unreadable items skipped, %d non-finite "
                            "steps skipped; checkpoints in %s", st.step, st.counters["samples"],
                            st.counters["audio_seconds"] / 3600, st.counters["bad_items"],
                            st.counters.get("nonfinite_steps", 0), C.checkpoint_root(self.run_dir))
        result["checkpoint"] = str(C.latest_checkpoint(self.run_dir)) if dist.is_main else None
        return result

    # ------------------------------------------------------------------ checkpoints
    def save(self, st: TrainState) -> None:
        """Collective: every rank's RNG state is gathered; rank 0 writes; a failure on rank 0 fails every rank."""
        dist = self.dist
        rng = C.rng_state()
        rngs = L.gather_objects(rng) if dist.distributed else [rng]
        state = None
        if dist.is_main:
            state = dict(st.to_dict(), world_size=dist.world_size, rng=rngs, config=self.cfg.to_dict(),
                         optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                         scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None,
                         sampler=self.data.sampler.state_dict() if self.data.sampler else {"epoch": st.epoch,
                                                                                 "position": st.position})
        path = self.ckpt.save(st.step, self.model, state)
        st.last_saved = st.step
        if path is not None:
            logger.info("checkpoint: %s", path)

    # ------------------------------------------------------------------ validation
    def validate(self, step: int) -> dict | None:
        """Collective when validation data is set; rank 0 logs and returns the row, other ranks get None."""
        if not self.cfg.validation.data:
            return None
        row = self.validator(self.model, step)
        if row is not None:
            self.log.log_row(row, kind="val")
            logger.info("validation at step %d: loss %.4f, R@1 a2t %.2f, t2a %.2f (%d items)", step, row["val_loss"],
                        row["R@1_A2T"], row["R@1_T2A"], row["items"])
        return row


# ============================================================================================ entry point
def train(recipe: str | os.PathLike | None = "intrinsic", overrides: Sequence[str] = (), *,
          resume: str | os.PathLike | None = None, model: torch.nn.Module | None = None, fork: bool = False) -> dict:
    """Python entry point: ``train("intrinsic", ["data.audio_root=/data"])``; ``resume=`` a run folder (its newest
    checkpoint that loads) or a checkpoint folder; ``fork=True`` continues from it in a new run folder.

    Returns a summary; ``result["stopped"]`` names the signal when SIGTERM/SIGINT stopped the run early (a
    checkpoint was saved; ``result["resume_command"]`` continues it)."""
    from .config import CONFIG_DIR, _read, deep_merge, load_config

    preloaded = None
    if resume:
        preloaded = C.load_first_good(C.resume_candidates(resume))
    if resume and recipe is None:
        ck, saved, _ = preloaded
        cfg = deep_merge(_read(CONFIG_DIR / "base.yaml"), saved["config"])  # keys added since it was saved
        if C.run_dir_of(ck) is not None:  # the folder the checkpoint is in now (run folders may move)
            cfg["run"]["output_dir"] = str(C.run_dir_of(ck))
        cfg = apply_overrides(cfg, list(overrides))
        validate(cfg)
        cfg = _wrap(cfg)
    else:
        cfg = load_config(recipe or "intrinsic", overrides)
        if resume and not cfg.run.get("output_dir") and C.run_dir_of(preloaded[0]) is not None:
            cfg.run.output_dir = str(C.run_dir_of(preloaded[0]))
    return Trainer(cfg, resume=resume, model=model, fork=fork, preloaded=preloaded).run()
