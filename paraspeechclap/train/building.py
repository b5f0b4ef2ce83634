"""What a run trains: the model named by the config (from an allow-listed factory), frozen parts, the optimizer."""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import os
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .config import ConfigError

logger = logging.getLogger("paraspeechclap.train")


def freeze(model: torch.nn.Module, prefixes: Sequence[str]) -> int:
    """Stops the gradient of every parameter under the dotted ``prefixes``; returns how many values it froze."""
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
    """Recompute the towers' activations in the backward pass (less memory, more time), where they support it."""
    for branch in ("audio_branch", "text_branch"):
        base = getattr(getattr(model, branch, None), "base", None)
        if base is not None and hasattr(base, "gradient_checkpointing_enable"):
            try:
                base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            except (ValueError, TypeError) as e:
                logger.warning("gradient checkpointing not available for %s (%s)", branch, e)


def lr_lambda(schedule: str, warmup: int, total: int | None, min_ratio: float):
    """The learning-rate factor per step: linear warm-up, then constant, cosine or linear decay to ``min_ratio``."""
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


@dataclass
class Optimization:
    """The optimizer, its learning-rate schedule, the fp16 grad scaler and the autocast context of the forward."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    autocast: Callable


def build_optimization(optim_cfg, params: Sequence[torch.nn.Parameter], total: int | None, device) -> Optimization:
    """``optim``'s optimizer over ``params``; a decaying schedule needs ``total`` (the known number of steps)."""
    o = optim_cfg
    opt_cls = torch.optim.AdamW if o.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(params, lr=float(o.lr), betas=tuple(float(b) for b in o.betas), eps=float(o.eps),
                        weight_decay=float(o.weight_decay))
    if o.schedule != "constant" and not total:
        raise ValueError("optim.schedule needs a known number of steps: set optim.max_steps")
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(o.schedule, int(o.warmup_steps), total, float(o.min_lr_ratio)))
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(o.precision)
    scaler = torch.amp.GradScaler(device.type, enabled=o.precision == "fp16")
    autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext
    return Optimization(optimizer, scheduler, scaler, autocast)
