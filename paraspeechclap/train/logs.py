"""Training logs: ``train_log.csv`` / ``val_log.csv`` in the run folder, TensorBoard and Weights & Biases when
available, a tqdm bar, and the per-window throughput numbers."""

from __future__ import annotations

import csv
import io
import logging
import time
from pathlib import Path

import torch

from .. import fileio
from . import distributed as D

logger = logging.getLogger("paraspeechclap.train")

CSV_FIELDS = ["step", "epoch", "loss", "contrastive_loss", "classification_loss", "order_loss", "logit_scale", "lr",
              "samples_per_s", "audio_hours_per_hour", "skipped_items", "time"]
LOG_FILES = ("train_log.csv", "val_log.csv")


def copy_log_rows(src: Path, dst: Path, up_to_step: int) -> None:
    """Write the rows of CSV log ``src`` with step <= ``up_to_step`` to ``dst`` (``src`` may be ``dst``): a resumed
    run drops what was logged after its checkpoint, a fork starts with its parent's history."""
    if not src.exists():
        return
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    keep = [r for r in rows if r.get("step") and int(float(r["step"])) <= up_to_step]
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0].keys()))
    w.writeheader()
    w.writerows(keep)
    fileio.atomic_write_text(dst, out.getvalue())


class RunLogger:
    """Rank 0 writes; every rank takes part in the window reduction (an all-reduce per logged step)."""

    def __init__(self, cfg, dist, run_dir: Path, *, resumed_step: int | None, total: int | None, initial_step: int):
        self.cfg, self.dist, self.run_dir = cfg, dist, Path(run_dir)
        self.every = max(1, int(cfg.logging.every_n_steps))
        self.total = total
        self.history: list[dict] = []
        self.csv_path = self.run_dir / "train_log.csv"
        self.val_csv_path = self.run_dir / "val_log.csv"
        self._tb = self._wandb = self.bar = None
        self.reset_window()
        if dist.is_main:
            if resumed_step is not None:
                for p in (self.csv_path, self.val_csv_path):
                    copy_log_rows(p, p, resumed_step)
            self._open_backends(resumed_step)
            if cfg.logging.tqdm:
                try:
                    from tqdm.auto import tqdm

                    self.bar = tqdm(total=total, initial=initial_step, desc="train", dynamic_ncols=True, unit="step")
                except ImportError:
                    self.bar = None

    def _open_backends(self, resumed_step: int | None) -> None:
        lc = self.cfg.logging
        if lc.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=resumed_step)
            except Exception as e:  # noqa: BLE001 - tensorboard is optional
                logger.info("TensorBoard logging off (%s)", e)
        if lc.wandb:
            try:
                import wandb
            except ImportError:
                logger.warning("logging.wandb=true but wandb is not installed; not logging to Weights & Biases")
            else:
                self._wandb = wandb.init(project=lc.wandb_project, entity=lc.wandb_entity, name=self.cfg.run.name,
                                         dir=str(self.run_dir), config=self.cfg.to_dict(), resume="allow")

    def reset_window(self) -> None:
        self.win = {"t": time.perf_counter(), "samples": 0, "audio": 0.0,
                    "loss": torch.zeros(4, dtype=torch.float64), "n": 0}

    def add_step(self, losses: torch.Tensor, n_micro: int, samples: int, audio_seconds: float) -> None:
        """Account one applied optimizer step: summed [total, contrastive, classification] over its micro-batches."""
        w = self.win
        w["loss"] = w["loss"].to(losses.device) + losses.double()  # stays on the device until a log step
        w["n"] += n_micro
        w["samples"] += samples
        w["audio"] += audio_seconds

    def after_step(self, state, model, scheduler, sampler_len: int | None) -> None:
        if self.bar is not None:
            self.bar.update(1)
        step = state.step
        if step % self.every and not (self.total and step >= self.total):
            return
        now = time.perf_counter()
        w = self.win
        elapsed = max(now - w["t"], 1e-9)
        g = D.all_reduce_sum([w["samples"], w["audio"], *w["loss"].tolist(), w["n"]], self.dist.device)
        samples, audio_s, l_tot, l_con, l_cls, l_ord, n = g[0], g[1], g[2], g[3], g[4], g[5], max(g[6], 1)
        epoch = round(state.epoch + state.position / max(sampler_len, 1), 4) if sampler_len else state.epoch
        row = {
            "step": step, "epoch": epoch, "loss": l_tot / n, "contrastive_loss": l_con / n,
            "classification_loss": l_cls / n, "order_loss": l_ord / n, "logit_scale": float(model.log_logit_scale.detach().exp()),
            "lr": scheduler.get_last_lr()[0], "samples_per_s": samples / elapsed,
            "audio_hours_per_hour": audio_s / elapsed, "skipped_items": state.counters.get("bad_items", 0),
            "time": time.time(),
        }
        self.reset_window()
        if not self.dist.is_main:
            return
        self.history.append(row)
        self.log_row(row)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{row['loss']:.4f}", sps=f"{row['samples_per_s']:.1f}",
                                 ah_h=f"{row['audio_hours_per_hour']:.1f}", scale=f"{row['logit_scale']:.1f}",
                                 refresh=False)
        else:
            logger.info("step %d: loss %.4f (contrastive %.4f, classification %.4f, order %.4f), scale %.2f, lr %.3g, "
                        "%.1f samples/s, %.1f audio-h/h", step, row["loss"], row["contrastive_loss"],
                        row["classification_loss"], row["order_loss"], row["logit_scale"], row["lr"],
                        row["samples_per_s"], row["audio_hours_per_hour"])

    def log_row(self, row: dict, *, kind: str = "train") -> None:
        path = self.csv_path if kind == "train" else self.val_csv_path
        fields = CSV_FIELDS if kind == "train" else list(row.keys())
        new = not path.exists() or path.stat().st_size == 0
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
        step = int(row["step"])
        scalars = {f"{kind}/{k}": v for k, v in row.items() if k not in ("step", "time") and isinstance(v, (int, float))}
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, v, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
