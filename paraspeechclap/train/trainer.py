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
import importlib
import json
import logging
import math
import os
import random
import shlex
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .. import fileio
from .. import losses as L
from ..data import schema
from ..data.collate import Collator, concat
from ..data.dataset import ParaSpeechCapsDataset, StreamingParaSpeechCapsDataset
from ..data.samplers import BalancedBatchSampler, ShuffleBatchSampler
from ..data.sources import Table, load_sources
from ..evaluate import metrics as M
from ..prompts import fill_template
from . import checkpointing as C
from . import distributed as D
from .config import Config, ConfigError, apply_overrides, dump, validate, _wrap
from .logs import LOG_FILES, RunLogger, copy_log_rows
from .order import OrderLoss
from .state import StopSignals, TrainState, agree, worker_ignore_signals

logger = logging.getLogger("paraspeechclap.train")

BUILTIN_TEMPLATES = Path(__file__).resolve().parents[1] / "configs" / "synonym_templates.json"
SR = 16000


class DataError(RuntimeError):
    """The run stopped because of its data (unreadable audio with data.on_bad_audio=error, too many bad items)."""


class NonFiniteError(RuntimeError):
    """optim.max_nonfinite_steps optimizer steps in a row had a non-finite loss or gradient."""


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
    """One prompt per tag for this step: a random synonym sentence, or ``template`` filled with the tag."""
    rng = random.Random(f"{seed}:{step}:{column}")
    return [rng.choice(templates[t]) if t in templates else fill_template(template, t) for t in vocab]


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


#: modules that ``model.factory`` (in a config, or in the config a checkpoint carries) may name
IMPORT_ALLOW_LIST = ("paraspeechclap",)
IMPORT_ALLOW_ENV = "PARASPEECHCLAP_ALLOW_IMPORTS"


def allowed_modules() -> tuple[str, ...]:
    """The import allow-list: ``paraspeechclap`` and its submodules, plus the comma-separated module names in
    ``$PARASPEECHCLAP_ALLOW_IMPORTS`` (each with its submodules)."""
    extra = [m.strip() for m in os.environ.get(IMPORT_ALLOW_ENV, "").split(",") if m.strip()]
    return IMPORT_ALLOW_LIST + tuple(extra)


def _import(path: str):
    """``pkg.module.attr`` (or ``pkg.module:attr``), from an allowed module only: a config or checkpoint must not
    be able to run arbitrary code by naming a module."""
    mod, _, attr = str(path).replace(":", ".").rpartition(".")
    allowed = allowed_modules()
    if not mod or not any(mod == a or mod.startswith(a + ".") for a in allowed):
        raise ConfigError(f"{path!r}: module {mod or path!r} is not on the import allow-list ({', '.join(allowed)}); "
                          f"add a trusted module with {IMPORT_ALLOW_ENV}=module[,module...]")
    return getattr(importlib.import_module(mod), attr)


def build_model(mcfg: dict) -> torch.nn.Module:
    """``model.factory`` (dotted path to a callable taking the model config) or ParaSpeechCLAP."""
    if mcfg.get("factory"):
        return _import(mcfg["factory"])(mcfg)
    from .. import ParaSpeechCLAP

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


def _encode_prompts(inner, prompts: Sequence[str], device, autocast, max_length: int) -> torch.Tensor:
    """Unnormalised text embeddings of class prompts (the classification heads' and the order loss')."""
    tokens = _to(inner.tokenize(list(prompts), max_length=max_length), device)
    with autocast():
        return inner.encode_text(tokens, normalize=False)


def training_loss(model, inner, batch: dict, *, device, heads: Sequence[HeadSpec] = (), step: int = 0,
                  seed: int = 0, classification_weight: float = 1.0, autocast=contextlib.nullcontext,
                  max_length: int = 512, order: tuple | None = None) -> dict:
    """Forward one (local) batch and compute the global-batch loss (gathering across ranks).

    ``model`` is what to call for the forward (a DDP wrapper or the model itself), ``inner`` the
    unwrapped model (tokenizer, tag-prompt embeddings). ``order``: ``(OrderLoss, first row, table indices, groups)``
    when the batch ends with order groups (:mod:`.order`)."""
    audio = batch["audio"].to(device, non_blocking=True)
    mask = batch["audio_attention_mask"].to(device, non_blocking=True)
    tokens = _to(inner.tokenize(list(batch["text"]), max_length=max_length), device)
    with autocast():
        text_emb, speech_emb, logit_scale = model(audio, tokens, audio_attention_mask=mask)
    text_emb, speech_emb = text_emb.float(), speech_emb.float()
    all_text = L.gather_features(text_emb)
    all_audio = L.gather_features(speech_emb[: text_emb.shape[0]])  # order rows without captions come last
    head_objs = []
    for h in heads:
        local_tags = batch["tags"].get(h.column)
        if local_tags is None or not h.vocab:
            continue
        tags = [t for part in L.gather_objects(local_tags) for t in part]
        tags = [[t for t in row if t in h.tag_to_idx] for row in tags]
        prompts = step_prompts(h.vocab, h.templates, h.template, seed, step, h.column)
        tag_emb = _encode_prompts(inner, prompts, device, autocast, max_length)
        head_objs.append(L.ClassificationHead(tag_emb.float(), tags, h.tag_to_idx, name=h.column))
    out = L.multitask_loss(all_text, all_audio, logit_scale.float(), head_objs,
                           classification_weight=classification_weight)
    out["order_loss"] = torch.zeros((), device=speech_emb.device)
    if order is not None:
        rule, start, indices, groups = order
        with torch.no_grad():  # the order loss holds its prompts fixed: no graph for them
            prompt_emb = _encode_prompts(inner, rule.prompts, device, autocast, max_length)
        out["order_loss"] = rule.loss(speech_emb[start:], prompt_emb, logit_scale, indices, groups)
        out["total_loss"] = out["total_loss"] + rule.weight * out["order_loss"]
    out["logit_scale"] = logit_scale.detach()
    out["global_batch"] = all_audio.shape[0]
    return out


# ============================================================================================ trainer
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
        self.run_dir = self._prepare_run_dir(base, broken)
        self._build_model()
        self._build_data(self.model)
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

    def _prepare_run_dir(self, base: Path | None, broken: Sequence[Path]) -> Path:
        """The folder this run writes to; refuses to clobber checkpoints (see :func:`plan_run_dir`)."""
        cfg, dist = self.cfg, self.dist
        configured = Path(cfg.run.output_dir) if cfg.run.get("output_dir") else Path(cfg.run.output_root) / cfg.run.name
        plan: tuple = (None, None, None)
        if dist.is_main:
            try:
                plan = (str(plan_run_dir(configured, base, broken, fork=self.fork,
                                         overwrite=bool(cfg.run.get("overwrite")))), None, None)
            except FileExistsError as e:  # every rank raises it, none waits for the others
                plan = (None, type(e).__name__, str(e))
        where, err, msg = D.broadcast_object(plan)
        if err is not None:
            raise (ResumeConflict if err == "ResumeConflict" else FileExistsError)(msg)
        run_dir = Path(where)
        cfg.run.output_dir = str(run_dir)
        if dist.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            fileio.atomic_write_text(run_dir / "config.yaml", dump(cfg))
            if base is not None and C.run_dir_of(base) is not None and C.run_dir_of(base).resolve() != run_dir.resolve():
                step = int(C.read_marker(base).get("step", 0))
                for name in LOG_FILES:  # a fork starts with its parent's history
                    copy_log_rows(C.run_dir_of(base) / name, run_dir / name, step)
                logger.info("forked from %s into %s", base, run_dir)
        D.barrier()
        return run_dir

    def _build_model(self) -> None:
        cfg = self.cfg
        model = self._model_override if self._model_override is not None else build_model(cfg.model)
        frozen = _freeze(model, list(cfg.model.freeze or []))
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
        o, device = self.cfg.optim, self.dist.device
        opt_cls = torch.optim.AdamW if o.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = opt_cls(self.params, lr=float(o.lr), betas=tuple(float(b) for b in o.betas),
                                 eps=float(o.eps), weight_decay=float(o.weight_decay))
        self.total = self._total_steps()
        if o.schedule != "constant" and not self.total:
            raise ValueError("optim.schedule needs a known number of steps: set optim.max_steps")
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(o.schedule, int(o.warmup_steps), self.total, float(o.min_lr_ratio)))
        amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(o.precision)
        self.scaler = torch.amp.GradScaler(device.type, enabled=o.precision == "fp16")
        self.autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext

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

    # ------------------------------------------------------------------ data
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
        self.order = None
        if cfg.loss.order.data:
            self.order = OrderLoss.from_config(
                cfg.loss.order, audio_root=d.audio_root, crop_seconds=d.crop_seconds, random_crop=bool(d.random_crop),
                mask_padding=bool(d.mask_padding), normalize=self.normalize, caption_column=d.caption_column,
                tag_columns=wanted_tags, template=cfg.loss.prompt_template, seed=int(cfg.run.seed))
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
        kw: dict[str, Any] = dict(num_workers=nw, collate_fn=self.collator, worker_init_fn=worker_ignore_signals,
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
        for batch in self._loader(st.epoch, st.position):
            st.position += 1
            self._account_errors(batch, st.counters)
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
        if self.order is not None:
            extra = self.order.batch(st.step * int(cfg.optim.grad_accum) + acc["micro"], self.dist.rank,
                                     self.collator)
            self._account_errors(extra, st.counters)
            order = (self.order, batch["size"], extra.get("indices", []), extra["order_groups"])
            batch = concat(batch, extra, audio_only=not self.order.joint)
        with ctx:
            out = training_loss(self.ddp, self.model, batch, device=self.dist.device, heads=self.heads, step=st.step,
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
            self.log.after_step(st, self.model, self.scheduler, len(self.sampler) if self.sampler else None)
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
                         sampler=self.sampler.state_dict() if self.sampler else {"epoch": st.epoch,
                                                                                 "position": st.position})
        path = self.ckpt.save(st.step, self.model, state)
        st.last_saved = st.step
        if path is not None:
            logger.info("checkpoint: %s", path)

    # ------------------------------------------------------------------ bad items
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
        except OSError as e:  # the paths are in the log above; the run itself is not at stake
            logger.warning("could not append to %s (%s)", path, e)

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
                                             worker_init_fn=worker_ignore_signals,
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
        self.log.log_row(row, kind="val")
        logger.info("validation at step %d: loss %.4f, R@1 a2t %.2f, t2a %.2f (%d items)", step, row["val_loss"],
                    row["R@1_A2T"], row["R@1_T2A"], len(A))
        return row




def retrieval_r1(audio: torch.Tensor, text: torch.Tensor, captions: Sequence[str]) -> dict:
    """R@1 (percent) both ways over exact-unique captions, with ``evaluate``'s metric functions (so validation and
    ``paraspeechclap evaluate`` agree, ties included: a tie counts against the correct item). Rows L2-normalised."""
    unique, targets = M.deduplicate_captions(list(captions))
    first = [int(np.flatnonzero(targets == j)[0]) for j in range(len(unique))]
    sim = (audio.double() @ text[first].double().t()).numpy()
    a2t = M.audio_to_text_ranks(sim, targets)
    t2a = M.text_to_audio_ranks(sim, targets)
    return {"R@1_A2T": float(100.0 * np.mean(a2t <= 1)), "R@1_T2A": float(100.0 * np.mean(t2a <= 1))}


# ============================================================================================ run folders
class ResumeConflict(FileExistsError):
    """Resuming would write into a run folder that holds newer checkpoints (use --fork)."""


def fork_dir(src: Path, base: Path) -> Path:
    """A new folder beside ``src`` for a branch off checkpoint ``base``: ``{src}-fork-{base}`` (``-2``, ``-3`` ...
    when taken)."""
    cand = src.parent / f"{src.name}-fork-{base.name}"
    n = 2
    while cand.exists():
        cand = src.parent / f"{src.name}-fork-{base.name}-{n}"
        n += 1
    return cand


def _same_dir(a: Path | None, b: Path | None) -> bool:
    return a is not None and b is not None and Path(a).resolve() == Path(b).resolve()


def plan_run_dir(configured: Path, base: Path | None, broken: Sequence[Path] = (), *, fork: bool = False,
                 overwrite: bool = False) -> Path:
    """Where a run writes, or an error when that would clobber checkpoints.

    * fresh run: ``configured``; one that already holds checkpoints is refused (``run.overwrite=true`` deletes
      them);
    * resume from the head of its own run folder (the checkpoint written last, or the newest one that loads):
      that folder;
    * resume from an older checkpoint of ``configured``: refused (its newer checkpoints would be abandoned and
      pruned) unless ``fork``; a fork writes to a new folder (:func:`fork_dir`) and leaves the old one untouched;
    * resume into another folder (``run.output_dir=...``): that folder, which must hold no checkpoints."""
    configured = Path(configured)
    src = C.run_dir_of(base) if base is not None else None
    if base is not None and fork and (src is None or _same_dir(configured, src)):
        return fork_dir(configured, base)
    if base is not None and not fork and _same_dir(configured, src):
        cks = C.list_checkpoints(src)
        names = [p.name for p in cks]
        bad = {Path(p).name for p in broken}
        newer = [p.name for p in cks[names.index(base.name) + 1:] if p.name not in bad] if base.name in names else []
        if newer:
            raise ResumeConflict(
                f"{base} is older than the newest checkpoint of {src} ({newer[-1]}); resuming into the same folder "
                f"would abandon {', '.join(newer)}. Continue the newest with --resume {src}, or branch off this "
                f"checkpoint with --resume {base} --fork (writes to a new run folder)")
        return configured
    if C.list_checkpoints(configured):
        if base is None and overwrite:
            _clear_run(configured)
            return configured
        hint = (f"continue it with --resume {configured}, or start afresh elsewhere (run.output_dir=...) or with "
                f"run.overwrite=true") if base is None else "choose another run.output_dir, or use --fork"
        raise FileExistsError(f"{configured} already holds checkpoints: {hint}")
    return configured


def _clear_run(run_dir: Path) -> None:
    """run.overwrite=true: delete this project's checkpoints and logs in ``run_dir`` (nothing else)."""
    for p in C.list_checkpoints(run_dir):
        C.remove_checkpoint(p)
    C.clean_temporaries(C.checkpoint_root(run_dir))
    (C.checkpoint_root(run_dir) / C.LATEST).unlink(missing_ok=True)
    for f in (*LOG_FILES, "bad_audio.tsv"):
        (run_dir / f).unlink(missing_ok=True)


def resume_command(run_dir: Path, dist) -> str:
    """The command that continues this run (the saved config holds every override)."""
    where = shlex.quote(str(run_dir))
    if dist.distributed:
        return f"torchrun --nproc_per_node={dist.world_size} -m paraspeechclap train --resume {where}"
    return f"paraspeechclap train --resume {where}"


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
