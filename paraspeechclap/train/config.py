"""Training configs: YAML recipes (``paraspeechclap/configs/train/*.yaml``) + ``key=value`` overrides.

A recipe file may say ``inherit: <recipe name or path>``; it is merged over that (recursively)
and everything is merged over ``base``. Overrides are dotted keys (``optim.lr=3e-5``); a bare leaf
name is accepted when exactly one leaf has it (``lr=3e-5``, ``freeze=[text_branch.base]``), or
exactly one outside the validation/logging/checkpoint/distributed sections (``batch_size=8``).
Values are parsed as YAML, plus plain numbers such as ``1e-5`` that YAML 1.1 reads as text.
Unknown keys are errors (with the nearest known key suggested).
"""

from __future__ import annotations

import copy
import difflib
import math
import os
from pathlib import Path
from typing import Any, Iterable

import yaml

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "train"
RECIPES = ("intrinsic", "situational", "combined")
#: sections a bare leaf name resolves to last (``batch_size`` means optim.batch_size, not validation's)
SECONDARY = ("validation", "logging", "checkpoint", "distributed")


class ConfigError(ValueError):
    pass


class Config(dict):
    """A dict with attribute access for nested sections (``cfg.optim.lr``)."""

    def __getattr__(self, name):
        try:
            v = self[name]
        except KeyError:
            raise AttributeError(name) from None
        return v

    def __setattr__(self, name, value):
        self[name] = value

    def __deepcopy__(self, memo):
        return _wrap(copy.deepcopy(_unwrap(self), memo))

    def to_dict(self) -> dict:
        return _unwrap(self)


def _wrap(x):
    if isinstance(x, dict):
        return Config({k: _wrap(v) for k, v in x.items()})
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _unwrap(x):
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_unwrap(v) for v in x]
    return x


def recipe_path(name_or_path: str | os.PathLike) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.exists():
            raise ConfigError(f"config file not found: {p}")
        return p
    cand = CONFIG_DIR / f"{name_or_path}.yaml"
    if cand.exists():
        return cand
    known = sorted(x.stem for x in CONFIG_DIR.glob("*.yaml"))
    raise ConfigError(f"unknown recipe {str(name_or_path)!r}; recipes: {', '.join(known)} (or give a .yaml path)")


def _read(path: Path, seen: tuple = ()) -> dict:
    if path in seen:
        raise ConfigError(f"config inheritance loop through {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping")
    parent = data.pop("inherit", None)
    if parent is None and path.resolve() != (CONFIG_DIR / "base.yaml").resolve():
        parent = "base"
    if parent is None:
        return data
    ppath = recipe_path(parent) if not os.path.isabs(str(parent)) and not str(parent).endswith((".yaml", ".yml")) \
        else Path(parent if os.path.isabs(str(parent)) else path.parent / parent)
    return deep_merge(_read(ppath, seen + (path,)), data)


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _leaves(d: dict, prefix: str = "") -> Iterable[str]:
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            yield from _leaves(v, key + ".")
        else:
            yield key


def parse_value(text: str) -> Any:
    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(v, str):
        try:
            f = float(v)
            if math.isfinite(f) and v.strip().lower() not in ("nan", "inf", "-inf", "infinity"):
                return f
        except ValueError:
            pass
    return v


def apply_overrides(cfg: dict, overrides: Iterable[str], *, schema: dict | None = None) -> dict:
    cfg = copy.deepcopy(cfg)
    schema = schema if schema is not None else cfg
    leaves = list(_leaves(schema))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, text = item.split("=", 1)
        key = key.strip().lstrip("-")
        if key not in leaves:
            sections = {k.split(".")[0] for k in leaves}
            matches = [l for l in leaves if l.split(".")[-1] == key]
            primary = [l for l in matches if l.split(".")[0] not in SECONDARY]
            if len(matches) > 1 and len(primary) == 1:
                matches = primary
            if len(matches) == 1 and key not in sections:
                key = matches[0]
            elif len(matches) > 1:
                raise ConfigError(f"override key {key!r} is ambiguous: {', '.join(matches)}")
            else:
                near = difflib.get_close_matches(key, leaves, n=3)
                hint = f" (did you mean {', '.join(near)}?)" if near else ""
                raise ConfigError(f"unknown config key {key!r}{hint}")
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = parse_value(text)
    return cfg


def _check_known(cfg: dict, schema: dict, where: str = "") -> None:
    for k, v in cfg.items():
        if k not in schema:
            near = difflib.get_close_matches(k, list(schema), n=3)
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            raise ConfigError(f"unknown config key {where}{k!r}{hint}")
        if isinstance(v, dict) and isinstance(schema[k], dict):
            _check_known(v, schema[k], f"{where}{k}.")


def validate(cfg: dict) -> None:
    o, d, s, l = cfg["optim"], cfg["data"], cfg["sampler"], cfg["loss"]
    if not (o.get("epochs") or o.get("max_steps")):
        raise ConfigError("set optim.epochs or optim.max_steps (at least one, > 0)")
    if not d.get("train"):
        raise ConfigError("set data.train (a dataset name, a save_to_disk folder or a manifest)")
    checks = [
        ("optim.optimizer", o["optimizer"], ("adam", "adamw")),
        ("optim.schedule", o["schedule"], ("constant", "cosine", "linear")),
        ("optim.precision", o["precision"], ("fp32", "bf16", "fp16")),
        ("data.mixing", d["mixing"], ("interleave", "concatenate")),
        ("data.stopping_strategy", d["stopping_strategy"], ("all_exhausted", "first_exhausted")),
        ("data.on_bad_audio", d["on_bad_audio"], ("skip", "error")),
        ("sampler.weighting", s["weighting"], ("inverse_frequency", "sqrt_inverse", "log_inverse")),
        ("model.init", cfg["model"]["init"], ("fresh", "pretrained")),
        ("distributed.backend", cfg["distributed"]["backend"], ("auto", "nccl", "gloo")),
    ]
    for name, v, allowed in checks:
        if v not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, not {v!r}")
    if int(o["batch_size"]) < 1 or int(o["grad_accum"]) < 1:
        raise ConfigError("optim.batch_size and optim.grad_accum must be >= 1")
    if int(o.get("max_nonfinite_steps", 1)) < 1:
        raise ConfigError("optim.max_nonfinite_steps must be >= 1")
    if cfg["model"]["init"] == "pretrained" and not cfg["model"].get("source"):
        raise ConfigError("model.init=pretrained needs model.source")
    if s.get("balanced") and not (s.get("tag_column") or l.get("tag_columns")):
        raise ConfigError("sampler.balanced needs sampler.tag_column (or loss.tag_columns)")
    if l.get("classification") and not l.get("tag_columns"):
        raise ConfigError("loss.classification needs loss.tag_columns")
    if isinstance(cfg["model"].get("freeze"), str):
        cfg["model"]["freeze"] = [cfg["model"]["freeze"]]
    for key in ("tag_columns",):
        if isinstance(l.get(key), str):
            l[key] = [l[key]]


def load_config(recipe: str | os.PathLike = "intrinsic", overrides: Iterable[str] = ()) -> Config:
    """Recipe name or YAML path + overrides -> validated :class:`Config`."""
    schema = _read(CONFIG_DIR / "base.yaml")
    cfg = _read(recipe_path(recipe))
    _check_known(cfg, schema)
    cfg = apply_overrides(cfg, list(overrides), schema=schema)
    validate(cfg)
    return _wrap(cfg)


def dump(cfg: dict) -> str:
    return yaml.safe_dump(_unwrap(cfg), sort_keys=False)
