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
  skipped, or stops the run (``data.on_bad_audio=error``).
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import json
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .. import losses as L
from ..data import schema
from ..data.collate import Collator
from ..data.dataset import ParaSpeechCapsDataset, StreamingParaSpeechCapsDataset
from ..data.samplers import BalancedBatchSampler, ShuffleBatchSampler
from ..data.sources import Table, load_sources
from . import checkpointing as C
from . import distributed as D
from .config import Config, apply_overrides, dump, validate, _wrap

logger = logging.getLogger("paraspeechclap.train")

DEFAULT_TEMPLATE = "A person is speaking in a {} style."
BUILTIN_TEMPLATES = Path(__file__).resolve().parents[1] / "configs" / "synonym_templates.json"
SR = 16000


class DataError(RuntimeError):
    """The run stopped because of its data (unreadable audio with data.on_bad_audio=error, too many bad items)."""


# ============================================================================================ helpers
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


def load_synonym_templates(spec: str | os.PathLike | None) -> dict[str, list[str]]:
    """``builtin`` -> the packaged 44-tag file; a path -> that file; ``None``/``""`` -> no synonyms.
    A missing or malformed file is an error (the reference silently fell back)."""
    if spec in (None, "", "none", "null", False):
        return {}
    path = BUILTIN_TEMPLATES if spec == "builtin" else Path(spec)
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"synonym templates {path}: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"synonym templates {path}: expected a mapping tag -> list of prompts")
    out = {}
    for tag, prompts in data.items():
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
            raise ValueError(f"synonym templates {path}: {tag!r} needs a non-empty list of prompt strings")
        out[str(tag).strip().lower()] = list(prompts)
    return out


def step_prompts(vocab: Sequence[str], templates: dict[str, list[str]], template: str, seed: int, step: int,
                 column: str = "") -> list[str]:
    """One prompt per tag for this step: a random synonym sentence, or ``template.format(tag)``."""
    rng = random.Random(f"{seed}:{step}:{column}")
    return [rng.choice(templates[t]) if t in templates else template.format(t) for t in vocab]


def _freeze(model: torch.nn.Module, prefixes: Sequence[str]) -> int:
    n = 0
    hit = {p: 0 for p in prefixes}
    for name, p in model.named_parameters():
        for pre in prefixes:
            if name == pre or name.startswith(pre.rstrip(".") + "."):
                p.requires_grad_(False)
                hit[pre] += 1
                n += p.numel()
    for pre, k in hit.items():
        if not k:
            logger.info("freeze: no parameter under %r", pre)
    return n


def _import(path: str):
    mod, _, attr = path.replace(":", ".").rpartition(".")
    return getattr(importlib.import_module(mod), attr)


def build_model(mcfg: dict) -> torch.nn.Module:
    """``model.factory`` (dotted path to a callable taking the model config) or ParaSpeechCLAP."""
    if mcfg.get("factory"):
        return _import(mcfg["factory"])(mcfg)
    from ..model import ParaSpeechCLAP

    if mcfg["init"] == "pretrained":
        src = str(mcfg["source"])
        kwargs = {}
        if src.endswith((".pth.tar", ".pth", ".pt")):
            kwargs = dict(speech_model=mcfg["speech_model"], text_model=mcfg["text_model"],
                          embedding_dim=mcfg["embedding_dim"])
        model = ParaSpeechCLAP.from_pretrained(src, device="cpu", precision="fp32", **kwargs)
        if mcfg.get("projection_dropout") is not None:
            for proj in (model.audio_projection, model.text_projection):
                for m in proj.modules():
                    if isinstance(m, torch.nn.Dropout):
                        m.p = float(mcfg["projection_dropout"])
        return model
    kw = {}
    if mcfg.get("projection_dropout") is not None:
        kw["projection_dropout"] = float(mcfg["projection_dropout"])
    return ParaSpeechCLAP.from_encoders(mcfg["speech_model"], mcfg["text_model"], embedding_dim=mcfg["embedding_dim"],
                                        pretrained_encoders=bool(mcfg["pretrained_encoders"]), **kw)


def model_normalizes(model) -> bool | None:
    """Does the model's speech preprocessor normalise per utterance? None when it does not say."""
    v = getattr(getattr(model, "config", None), "do_normalize", None)
    if isinstance(v, bool):
        return v
    for obj in (model, getattr(model, "audio_branch", None)):
        if obj is None:
            continue
        for attr in ("do_normalize", "normalize_audio"):
            v = getattr(obj, attr, None)
            if isinstance(v, bool):
                return v
        for attr in ("feature_extractor", "processor", "preprocessor"):
            fe = getattr(obj, attr, None)
            v = getattr(fe, "do_normalize", None)
            if isinstance(v, bool):
                return v
    return None


def enable_gradient_checkpointing(model) -> None:
    for branch in ("audio_branch", "text_branch"):
        base = getattr(getattr(model, branch, None), "base", None)
        if base is not None and hasattr(base, "gradient_checkpointing_enable"):
            try:
                base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            except (ValueError, TypeError) as e:
                logger.warning("gradient checkpointing not available for %s (%s)", branch, e)


def lr_lambda(schedule: str, warmup: int, total: int | None, min_ratio: float):
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant" or not total:
            return 1.0
        prog = min(1.0, (step - warmup) / max(1, total - warmup))
        if schedule == "cosine":
            return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * prog))
        return min_ratio + (1 - min_ratio) * (1 - prog)
    return f


def _to(batch_tokens: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch_tokens.items()}


# ============================================================================================ the step
class HeadSpec:
    """A classification head's fixed parts: the column, its sorted vocabulary, prompt sources."""

    def __init__(self, column: str, vocab: Sequence[str], templates: dict, template: str):
        self.column = column
        self.vocab = list(vocab)
        self.tag_to_idx = {t: i for i, t in enumerate(self.vocab)}
        self.templates = templates
        self.template = template


def training_loss(model, inner, batch: dict, *, device, heads: Sequence[HeadSpec] = (), step: int = 0,
                  seed: int = 0, classification_weight: float = 1.0, autocast=contextlib.nullcontext,
                  max_length: int = 512) -> dict:
    """Forward one (local) batch and compute the global-batch loss (gathering across ranks).

    ``model`` is what to call for the forward (a DDP wrapper or the model itself), ``inner`` the
    unwrapped model (tokenizer, tag-prompt embeddings)."""
    audio = batch["audio"].to(device, non_blocking=True)
    mask = batch["audio_attention_mask"].to(device, non_blocking=True)
    tokens = _to(inner.tokenize(list(batch["text"]), max_length=max_length), device)
    with autocast():
        text_emb, speech_emb, logit_scale = model(audio, tokens, audio_attention_mask=mask)
    text_emb, speech_emb = text_emb.float(), speech_emb.float()
    all_text = L.gather_features(text_emb)
    all_audio = L.gather_features(speech_emb)
    head_objs = []
    for h in heads:
        local_tags = batch["tags"].get(h.column)
        if local_tags is None or not h.vocab:
            continue
        tags = [t for part in L.gather_objects(local_tags) for t in part]
        tags = [[t for t in row if t in h.tag_to_idx] for row in tags]
        prompts = step_prompts(h.vocab, h.templates, h.template, seed, step, h.column)
        ptoks = _to(inner.tokenize(prompts, max_length=max_length), device)
        with autocast():
            tag_emb = inner.encode_text(ptoks, normalize=False)
        head_objs.append(L.ClassificationHead(tag_emb.float(), tags, h.tag_to_idx, name=h.column))
    out = L.multitask_loss(all_text, all_audio, logit_scale.float(), head_objs,
                           classification_weight=classification_weight)
    out["logit_scale"] = logit_scale.detach()
    out["global_batch"] = all_audio.shape[0]
    return out


# ============================================================================================ trainer
class Trainer:
    def __init__(self, cfg: Config, *, resume: str | os.PathLike | None = None, model: torch.nn.Module | None = None):
        self.cfg = cfg
        self.resume_from = resume
        self._model_override = model

    # ------------------------------------------------------------------ set-up
    def _setup_run_dir(self) -> Path:
        r = self.cfg.run
        run_dir = Path(r.output_dir) if r.get("output_dir") else Path(r.output_root) / r.name
        return run_dir

    def _build_data(self, model):
        cfg, dist = self.cfg, self.dist
        d = cfg.data
        tag_cols = list(cfg.loss.tag_columns or []) if cfg.loss.classification else []
        sampler_col = cfg.sampler.tag_column or (cfg.loss.tag_columns or [None])[0]
        wanted_tags = sorted(set(tag_cols) | ({sampler_col} if cfg.sampler.balanced and sampler_col else set()))
        data = load_sources(d.train, split=d.split, streaming=bool(d.streaming), audio_root=d.audio_root,
                            mode=d.mixing, probabilities=d.probabilities, stopping_strategy=d.stopping_strategy,
                            seed=int(cfg.run.seed))
        norm = d.normalize
        if norm == "auto":
            v = model_normalizes(model)
            norm = True if v is None else v
        self.normalize = bool(norm)
        items = ParaSpeechCapsDataset(
            data if isinstance(data, Table) else None, audio_root=d.audio_root, train=True,
            crop_seconds=d.crop_seconds, random_crop=bool(d.random_crop), mask_padding=bool(d.mask_padding),
            normalize=self.normalize, caption_column=d.caption_column, tag_columns=wanted_tags, seed=int(cfg.run.seed))
        self.collator = Collator(mask_padding=bool(d.mask_padding), tag_columns=wanted_tags)
        B = int(cfg.optim.batch_size)
        self.heads: list[HeadSpec] = []
        if isinstance(data, Table):
            schema.check_columns(data.column_names, tag_columns=wanted_tags, caption_column=d.caption_column,
                                 where=f"training data {getattr(data, 'name', '')}")
            self.table = data
            if tag_cols:
                templates = load_synonym_templates(cfg.loss.synonym_templates)
                for col in tag_cols:
                    vocab = schema.build_vocabulary(data.column(col))
                    vocab = D.broadcast_object(vocab)
                    if not vocab:
                        logger.warning("tag column %s has no tags; its head is skipped", col)
                        continue
                    missing = [t for t in vocab if t not in templates]
                    if missing:
                        logger.info("%s: %d tag(s) without synonym templates use %r: %s", col, len(missing),
                                    cfg.loss.prompt_template, ", ".join(missing))
                    self.heads.append(HeadSpec(col, vocab, templates, cfg.loss.prompt_template))
                if not self.heads:
                    raise ValueError("classification is on but every tag vocabulary is empty")
            if cfg.sampler.balanced:
                self.sampler = BalancedBatchSampler(
                    data.column(sampler_col), B, world_size=dist.world_size, rank=dist.rank, seed=int(cfg.run.seed),
                    weighting=cfg.sampler.weighting, min_rare_per_batch=int(cfg.sampler.min_rare_per_batch),
                    rare_tag_threshold=float(cfg.sampler.rare_tag_threshold), num_samples=cfg.sampler.num_samples)
                logger.info("balanced sampling on %s: %d tags, %d rare (< %.3g), %d rare rows", sampler_col,
                            len(self.sampler.stats.counts), len(self.sampler.rare), cfg.sampler.rare_tag_threshold,
                            len(self.sampler.rare_rows))
            else:
                self.sampler = ShuffleBatchSampler(len(data), B, world_size=dist.world_size, rank=dist.rank,
                                                   seed=int(cfg.run.seed), shuffle=bool(cfg.sampler.shuffle))
            self.dataset = items
            self.streaming = False
        else:
            if cfg.sampler.balanced:
                raise ValueError("sampler.balanced needs a map-style dataset (data.streaming=false)")
            if tag_cols:
                raise ValueError("loss.classification needs the tag vocabulary: use a map-style dataset")
            self.table = None
            self.sampler = None
            self.dataset = StreamingParaSpeechCapsDataset(data, items, rank=dist.rank, world_size=dist.world_size,
                                                          seed=int(cfg.run.seed), shuffle_buffer=int(d.shuffle_buffer))
            self.dataset.batch_size = B
            self.streaming = True

    def _loader(self, epoch: int, position: int):
        d = self.cfg.data
        nw = int(d.num_workers)
        kw: dict[str, Any] = dict(num_workers=nw, collate_fn=self.collator,
                                  pin_memory=self.dist.device.type == "cuda",
                                  generator=torch.Generator().manual_seed(int(self.cfg.run.seed) + epoch))
        if nw > 0:
            kw["prefetch_factor"] = int(d.prefetch_factor)
        if self.streaming:
            self.dataset.set_epoch(epoch)
            self.dataset.skip_batches = position
            return torch.utils.data.DataLoader(self.dataset, batch_size=int(self.cfg.optim.batch_size), **kw)
        self.sampler.set_epoch(epoch)
        self.sampler.set_position(position)
        return torch.utils.data.DataLoader(self.dataset, batch_sampler=self.sampler, **kw)

    def _steps_per_epoch(self) -> int | None:
        if self.streaming:
            return None
        return math.ceil(len(self.sampler) / int(self.cfg.optim.grad_accum))

    def _total_steps(self) -> int | None:
        o = self.cfg.optim
        spe = self._steps_per_epoch()
        cands = []
        if o.max_steps:
            cands.append(int(o.max_steps))
        if o.epochs and spe:
            cands.append(int(o.epochs) * spe)
        return min(cands) if cands else None

    # ------------------------------------------------------------------ run
    def run(self) -> dict:
        cfg = self.cfg
        ckpt_path = None
        state = None
        if self.resume_from:
            ckpt_path = C.resolve_resume(self.resume_from)
            state = C.load_training_state(ckpt_path)
            if not cfg.run.get("output_dir"):
                cfg.run.output_dir = str(ckpt_path.parent.parent)
        self.dist = dist = D.setup(cfg.run.device, cfg.distributed.backend, cfg.distributed.timeout_minutes)
        setup_logging(cfg.run.log_level, dist.rank)
        try:
            return self._run(ckpt_path, state)
        finally:
            if getattr(self, "_tb", None) is not None:
                self._tb.close()
            if getattr(self, "_wandb", None) is not None:
                self._wandb.finish()
            D.cleanup(dist)

    def _run(self, ckpt_path, state) -> dict:
        cfg, dist = self.cfg, self.dist
        seed = int(cfg.run.seed)
        if cfg.run.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        seed_everything(seed + dist.rank)
        self.run_dir = run_dir = self._setup_run_dir()
        if ckpt_path is None and C.list_checkpoints(run_dir):
            if not cfg.run.get("overwrite"):
                raise FileExistsError(f"{run_dir} already holds checkpoints: continue it with --resume {run_dir}, "
                                      f"or start afresh elsewhere (run.output_dir=...) or with run.overwrite=true")
            D.barrier()
            if dist.is_main:
                import shutil

                shutil.rmtree(C.checkpoint_root(run_dir), ignore_errors=True)
                for f in ("train_log.csv", "val_log.csv", "bad_audio.tsv"):
                    (run_dir / f).unlink(missing_ok=True)
        if dist.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(dump(cfg))
        D.barrier()
        device = dist.device

        # model
        model = self._model_override if self._model_override is not None else build_model(cfg.model)
        frozen = _freeze(model, list(cfg.model.freeze or []))
        if cfg.model.gradient_checkpointing:
            enable_gradient_checkpointing(model)
        model.to(device)
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        logger.info("model: %.1fM trainable parameters, %.1fM frozen", n_train / 1e6, frozen / 1e6)
        self.model = model
        if not hasattr(model, "log_logit_scale"):
            raise AttributeError("the model has no log_logit_scale parameter")
        self.max_log_scale = math.log(float(cfg.model.max_logit_scale))

        self._build_data(model)

        # optimisation
        o = cfg.optim
        params = [p for p in model.parameters() if p.requires_grad]
        opt_cls = torch.optim.AdamW if o.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = opt = opt_cls(params, lr=float(o.lr), betas=tuple(float(b) for b in o.betas), eps=float(o.eps),
                                       weight_decay=float(o.weight_decay))
        total = self._total_steps()
        if o.schedule != "constant" and not total:
            raise ValueError("optim.schedule needs a known number of steps: set optim.max_steps")
        self.scheduler = sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lr_lambda(o.schedule, int(o.warmup_steps), total, float(o.min_lr_ratio)))
        amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(o.precision)
        self.scaler = scaler = torch.amp.GradScaler(device.type, enabled=o.precision == "fp16")
        autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext

        step, epoch, position = 0, 0, 0
        counters = {"bad_items": 0, "items_read": 0, "samples": 0, "audio_seconds": 0.0}
        self._counters = counters
        if state is not None:
            model.load_state_dict(C.load_model_state(ckpt_path, map_location=device))
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            step, epoch, position = int(state["step"]), int(state["epoch"]), int(state["position"])
            counters.update(state.get("counters", {}))
            if int(state.get("world_size", 1)) != dist.world_size:
                logger.warning("resuming a %d-process run on %d processes: the data order changes",
                               state.get("world_size", 1), dist.world_size)
            logger.info("resumed from %s: step %d, epoch %d, batch %d", ckpt_path, step, epoch + 1, position)

        ddp = model
        if dist.distributed:
            ddp = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None,
                # eval-mode towers leave e.g. WavLM's masked_spec_embed unused
                find_unused_parameters=bool(cfg.distributed.find_unused_parameters or cfg.model.disable_dropout))
        self._init_loggers(resumed_step=step if state is not None else None)

        if state is not None:
            rs = state["rng"][dist.rank] if isinstance(state["rng"], list) and len(state["rng"]) > dist.rank else state["rng"]
            if isinstance(rs, list):
                rs = rs[0]
            C.set_rng_state(rs)

        max_steps = int(o.max_steps) if o.max_steps else None
        max_epochs = int(o.epochs) if o.epochs else None
        accum = int(o.grad_accum)
        train_mode = not bool(cfg.model.disable_dropout)
        log_every = max(1, int(cfg.logging.every_n_steps))
        ck_every = int(cfg.checkpoint.every_n_steps or 0)
        val_every = int(cfg.validation.every_n_steps or 0)
        last_saved = step if state is not None else -1

        def done() -> bool:
            return bool((max_steps and step >= max_steps) or (max_epochs and epoch >= max_epochs))

        def finish_step(micro_batches: int) -> None:
            """One optimizer step over the accumulated micro-batches, then log, validate and checkpoint when due."""
            nonlocal step, last_saved
            step = self._optimizer_step(step, micro_batches, accum)
            self._after_step(step, epoch, position, win, bar, log_every, total)
            if val_every and step % val_every == 0:
                self.validate(step)
            if ck_every and step % ck_every == 0:
                self.save(step, epoch, position, counters)
                last_saved = step

        bar = None
        if dist.is_main and cfg.logging.tqdm:
            try:
                from tqdm.auto import tqdm

                bar = tqdm(total=total, initial=step, desc="train", dynamic_ncols=True, unit="step")
            except ImportError:
                bar = None

        win = {"t": time.perf_counter(), "samples": 0, "audio": 0.0, "loss": torch.zeros(3, dtype=torch.float64),
               "n": 0, "valid": 0}
        self.history: list[dict] = []
        while not done():
            model.train(train_mode)
            loader = self._loader(epoch, position)
            started_at = position
            micro, got = 0, 0
            for batch in loader:
                position += 1
                self._account_errors(batch, counters)
                n_local = batch["size"]
                if D.all_reduce_min(n_local, device) == 0:
                    logger.warning("skipping a batch: a rank has no readable item")
                    continue
                sync = (micro + 1 == accum)
                ctx = ddp.no_sync() if (dist.distributed and not sync) else contextlib.nullcontext()
                with ctx:
                    out = training_loss(ddp, model, batch, device=device, heads=self.heads, step=step, seed=seed,
                                        classification_weight=float(cfg.loss.classification_weight), autocast=autocast)
                    loss = out["total_loss"] / accum
                    scaler.scale(loss).backward()
                micro += 1
                got += 1
                # accumulated on the device: no host sync until a log step
                win["loss"] = win["loss"].to(device) + torch.stack([
                    out["total_loss"].detach(), out["contrastive_loss"].detach(),
                    out["classification_loss"].detach()]).double()
                win["n"] += 1
                win["samples"] += n_local
                secs = float(batch["audio_lengths"].sum()) / SR
                win["audio"] += secs
                counters["samples"] += n_local
                counters["audio_seconds"] += secs
                if micro < accum:
                    continue
                finish_step(micro)
                micro = 0
                if max_steps and step >= max_steps:
                    break
            else:
                if micro:  # leftover micro-batches at the end of the epoch: one (rescaled) step
                    finish_step(micro)
                    micro = 0
                epoch += 1
                position = 0
                if got == 0 and started_at == 0:
                    raise RuntimeError("an epoch produced no usable batch (all audio unreadable?)")
                continue
            break  # max_steps reached inside the epoch

        if bar is not None:
            bar.close()
        final_val = None
        if cfg.validation.data and (not val_every or step % val_every):
            final_val = self.validate(step)
        if last_saved != step:
            self.save(step, epoch, position, counters)
        if dist.is_main:
            logger.info("done: %d steps, %d samples, %.2f h of audio, %d unreadable items skipped; checkpoints in %s",
                        step, counters["samples"], counters["audio_seconds"] / 3600, counters["bad_items"],
                        C.checkpoint_root(run_dir))
        return {"step": step, "epoch": epoch, "counters": counters, "run_dir": str(run_dir),
                "checkpoint": str(C.latest_checkpoint(run_dir)) if dist.is_main else None, "validation": final_val}

    # ------------------------------------------------------------------ step pieces
    def _optimizer_step(self, step: int, micro: int, accum: int) -> int:
        cfg, opt, scaler = self.cfg, self.optimizer, self.scaler
        if micro != accum:
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.mul_(accum / micro)
        if cfg.optim.grad_clip:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad],
                                           float(cfg.optim.grad_clip))
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        self.scheduler.step()
        with torch.no_grad():
            self.model.log_logit_scale.clamp_(0.0, self.max_log_scale)
        return step + 1

    def _account_errors(self, batch: dict, counters: dict) -> None:
        errs = batch.get("errors") or []
        counters["items_read"] += batch["size"] + len(errs)
        bad_flag = 0
        if errs:
            counters["bad_items"] += len(errs)
            for path, reason in errs:
                logger.warning("unreadable item skipped: %s (%s)", path, reason)
            self._bad_log(errs)
            if self.cfg.data.on_bad_audio == "error":
                bad_flag = 1
        frac = float(self.cfg.data.max_bad_fraction or 0)
        if frac and counters["items_read"] >= 20 and counters["bad_items"] > frac * counters["items_read"]:
            bad_flag = 2
        if self.dist.distributed:
            t = torch.tensor([bad_flag], device=self.dist.device)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            bad_flag = int(t.item())
        if bad_flag == 1:
            where = f"{errs[0][0]} ({errs[0][1]})" if errs else "on another rank"
            raise DataError(f"unreadable audio: {where}; data.on_bad_audio=error stops the run "
                               f"(use data.on_bad_audio=skip to skip such items)")
        if bad_flag == 2:
            raise DataError(f"{counters['bad_items']} of {counters['items_read']} items were unreadable "
                               f"(more than data.max_bad_fraction={frac}); check data.audio_root")

    def _bad_log(self, errs) -> None:
        path = self.run_dir / ("bad_audio.tsv" if self.dist.rank == 0 else f"bad_audio.rank{self.dist.rank}.tsv")
        try:
            with open(path, "a") as f:
                for p, reason in errs:
                    f.write(f"{p}\t{str(reason).replace(chr(9), ' ').replace(chr(10), ' ')}\n")
        except OSError:
            pass

    def _after_step(self, step, epoch, position, win, bar, log_every, total) -> None:
        if bar is not None:
            bar.update(1)
        if step % log_every and not (total and step >= total):
            return
        dist = self.dist
        now = time.perf_counter()
        elapsed = max(now - win["t"], 1e-9)
        g = D.all_reduce_sum([win["samples"], win["audio"], *win["loss"].tolist(), win["n"]], dist.device)
        samples, audio_s, l_tot, l_con, l_cls, n = g[0], g[1], g[2], g[3], g[4], max(g[5], 1)
        row = {
            "step": step, "epoch": round(epoch + position / max(len(self.sampler), 1), 4) if self.sampler else epoch,
            "loss": l_tot / n, "contrastive_loss": l_con / n, "classification_loss": l_cls / n,
            "logit_scale": float(self.model.log_logit_scale.detach().exp()), "lr": self.scheduler.get_last_lr()[0],
            "samples_per_s": samples / elapsed, "audio_hours_per_hour": audio_s / elapsed,
            "skipped_items": self._counters.get("bad_items", 0), "time": time.time(),
        }
        win.update(t=now, samples=0, audio=0.0, loss=torch.zeros(3, dtype=torch.float64), n=0, valid=0)
        if not dist.is_main:
            return
        self.history.append(row)
        self._log_row(row)
        if bar is not None:
            bar.set_postfix(loss=f"{row['loss']:.4f}", sps=f"{row['samples_per_s']:.1f}",
                            ah_h=f"{row['audio_hours_per_hour']:.1f}", scale=f"{row['logit_scale']:.1f}", refresh=False)
        else:
            logger.info("step %d: loss %.4f (contrastive %.4f, classification %.4f), scale %.2f, lr %.3g, "
                        "%.1f samples/s, %.1f audio-h/h", step, row["loss"], row["contrastive_loss"],
                        row["classification_loss"], row["logit_scale"], row["lr"], row["samples_per_s"],
                        row["audio_hours_per_hour"])

    # ------------------------------------------------------------------ logging
    CSV_FIELDS = ["step", "epoch", "loss", "contrastive_loss", "classification_loss", "logit_scale", "lr",
                  "samples_per_s", "audio_hours_per_hour", "skipped_items", "time"]

    def _init_loggers(self, resumed_step: int | None) -> None:
        self._tb = None
        self._wandb = None
        if not self.dist.is_main:
            return
        self.csv_path = self.run_dir / "train_log.csv"
        self.val_csv_path = self.run_dir / "val_log.csv"
        if resumed_step is not None:  # drop rows logged after the checkpoint we resume from
            for p in (self.csv_path, self.val_csv_path):
                if p.exists():
                    with open(p) as f:
                        rows = list(csv.DictReader(f))
                    keep = [r for r in rows if r.get("step") and int(float(r["step"])) <= resumed_step]
                    if rows:
                        with open(p, "w", newline="") as f:
                            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
                            w.writeheader()
                            w.writerows(keep)
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

    def _log_row(self, row: dict, *, kind: str = "train") -> None:
        path = self.csv_path if kind == "train" else self.val_csv_path
        fields = self.CSV_FIELDS if kind == "train" else list(row.keys())
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

    # ------------------------------------------------------------------ checkpoints
    def save(self, step: int, epoch: int, position: int, counters: dict) -> None:
        dist = self.dist
        rng = C.rng_state()
        rngs = L.gather_objects(rng) if dist.distributed else [rng]
        if dist.is_main:
            state = {
                "step": step, "epoch": epoch, "position": position, "world_size": dist.world_size,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "sampler": self.sampler.state_dict() if self.sampler else {"epoch": epoch, "position": position},
                "rng": rngs, "counters": dict(counters), "config": self.cfg.to_dict(),
            }
            path = C.save_checkpoint(self.run_dir, step, self.model, state,
                                     save_pretrained=bool(self.cfg.checkpoint.save_pretrained),
                                     keep_last=self.cfg.checkpoint.keep_last)
            logger.info("checkpoint: %s", path)
        D.barrier()

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self, step: int) -> dict | None:
        cfg, dist, model = self.cfg, self.dist, self.model
        v = cfg.validation
        if not v.data:
            return None
        if not hasattr(self, "_val"):
            table = load_sources(v.data, split=v.split or cfg.data.split, audio_root=v.audio_root or cfg.data.audio_root)
            if not isinstance(table, Table):
                raise ValueError("validation data must be map-style (not streaming)")
            if v.max_items and len(table) > int(v.max_items):
                from ..data.sources import MixedTable

                table = MixedTable([table], np.stack([np.zeros(int(v.max_items), int), np.arange(int(v.max_items))], 1))
            ds = ParaSpeechCapsDataset(table, audio_root=v.audio_root or cfg.data.audio_root, train=False,
                                       normalize=self.normalize, caption_column=cfg.data.caption_column,
                                       max_seconds=v.max_seconds)
            sampler = ShuffleBatchSampler(len(table), int(v.batch_size), world_size=dist.world_size, rank=dist.rank,
                                          shuffle=False)
            self._val = (ds, sampler)
        ds, sampler = self._val
        was_training = model.training
        model.eval()
        loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, num_workers=min(2, int(cfg.data.num_workers)),
                                             collate_fn=Collator(mask_padding=True),
                                             generator=torch.Generator().manual_seed(0))
        idx, aud, txt, caps = [], [], [], []
        loss_sum, loss_n, bad = 0.0, 0, 0
        for batch in loader:
            bad += len(batch.get("errors") or [])
            if not batch["size"]:
                continue
            audio = batch["audio"].to(dist.device)
            mask = batch["audio_attention_mask"].to(dist.device)
            tokens = _to(model.tokenize(batch["text"], max_length=512), dist.device)
            t, a, s = model(audio, tokens, audio_attention_mask=mask)
            t, a = t.float(), a.float()
            if len(batch["text"]) > 1:
                loss_sum += float(L.clip_loss(t, a, s.float()))
                loss_n += 1
            idx += [int(i) for i in batch["indices"]]
            aud.append(torch.nn.functional.normalize(a, dim=-1).cpu())
            txt.append(torch.nn.functional.normalize(t, dim=-1).cpu())
            caps += list(batch["text"])
        model.train(was_training)
        parts = L.gather_objects((idx, torch.cat(aud) if aud else None, torch.cat(txt) if txt else None, caps,
                                  loss_sum, loss_n, bad))
        if not dist.is_main:
            return None
        seen, A, T, CAP = set(), [], [], []
        ls, ln, nbad = 0.0, 0, 0
        for i_, a_, t_, c_, s_, n_, b_ in parts:
            ls, ln, nbad = ls + s_, ln + n_, nbad + b_
            for k, i in enumerate(i_):
                if i in seen:
                    continue
                seen.add(i)
                A.append(a_[k])
                T.append(t_[k])
                CAP.append(c_[k])
        if not A:
            logger.warning("validation: no readable item")
            return None
        res = retrieval_r1(torch.stack(A), torch.stack(T), CAP)
        row = {"step": step, "val_loss": ls / max(ln, 1), **res, "items": len(A), "skipped_items": nbad}
        self._log_row(row, kind="val")
        logger.info("validation at step %d: loss %.4f, R@1 a2t %.2f, t2a %.2f (%d items)", step, row["val_loss"],
                    row["R@1_A2T"], row["R@1_T2A"], len(A))
        return row


def retrieval_r1(audio: torch.Tensor, text: torch.Tensor, captions: Sequence[str]) -> dict:
    """R@1 (percent) both ways over unique captions (exact strings); audio and text rows L2-normalised."""
    uniq: dict[str, int] = {}
    first = []
    for i, c in enumerate(captions):
        if c not in uniq:
            uniq[c] = len(uniq)
            first.append(i)
    gt = torch.tensor([uniq[c] for c in captions])
    tu = text[first]
    sim = audio @ tu.t()
    a2t = (sim.argmax(1) == gt).float().mean().item() * 100
    top_audio = sim.argmax(0)
    t2a = (gt[top_audio] == torch.arange(len(first))).float().mean().item() * 100
    return {"R@1_A2T": a2t, "R@1_T2A": t2a}


def train(recipe: str | os.PathLike | None = "intrinsic", overrides: Sequence[str] = (), *,
          resume: str | os.PathLike | None = None, model: torch.nn.Module | None = None) -> dict:
    """Python entry point: ``train("intrinsic", ["data.audio_root=/data"])``."""
    from .config import load_config

    if resume and recipe is None:
        ck = C.resolve_resume(resume)
        saved = C.load_training_state(ck)["config"]
        cfg = apply_overrides(saved, list(overrides))
        validate(cfg)
        cfg = _wrap(cfg)
    else:
        cfg = load_config(recipe or "intrinsic", overrides)
    return Trainer(cfg, resume=resume, model=model).run()
