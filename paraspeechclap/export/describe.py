"""The manifest's sections, read off a loaded torch model: where the weights came from, everything audio
preprocessing and windowing need (with the speech tower's conv-length rule as checked data), and the text side."""
from __future__ import annotations

from typing import Any

from .graphs import ExportError, text_inputs

# lengths on which the frame rule written to the manifest must equal the tower's own (short clips, every remainder
# of the strides, 30 s windows, an hour)
_RULE_CHECK = [*range(1, 4000), *range(4000, 40000, 97), 480000, 480001, 57600000 + 123]


def frame_steps(base) -> list[dict[str, int]]:
    """The tower's conv-length rule as steps ``{kernel, stride, padding}`` (see
    :func:`paraspeechclap.runtime.manifest.frame_rule`), checked against the tower's own rule."""
    from ..inference.plan import EncoderCost
    from ..runtime.manifest import frame_rule

    config = base.config
    if hasattr(config, "hop_length") and hasattr(config, "conv_strides"):  # this project's log-mel tower
        pad = int(config.conv_kernel) // 2
        steps = [{"kernel": 0, "stride": int(config.hop_length), "padding": 0}]
        steps += [{"kernel": int(config.conv_kernel), "stride": int(s), "padding": pad} for s in config.conv_strides]
    elif isinstance(getattr(config, "conv_kernel", None), (list, tuple)) and not getattr(config, "add_adapter", False):
        steps = [{"kernel": int(k), "stride": int(s), "padding": 0}
                 for k, s in zip(config.conv_kernel, config.conv_stride)]  # wav2vec2-style feature encoders
    else:
        raise ExportError(f"cannot write the frame rule of a {type(base).__name__} speech tower (known: the log-mel "
                          f"tower and wav2vec2-style conv feature encoders without an adapter)")
    ours, theirs = frame_rule(steps), EncoderCost.of(base)
    wrong = next((n for n in _RULE_CHECK if ours(n) != theirs.frames(n)), None)
    if wrong is not None:
        raise ExportError(f"the frame rule {steps} gives {ours(wrong)} frames for {wrong} samples; the tower's own "
                          f"rule gives {theirs.frames(wrong)}")
    return steps


def model_section(model, source: dict[str, Any] | None) -> dict:
    import torch
    import transformers

    from .._version import __version__

    versions = {"paraspeechclap": __version__, "torch": torch.__version__, "transformers": transformers.__version__}
    for package in ("onnx", "onnxruntime", "openvino"):
        try:
            versions[package] = __import__(package).__version__
        except ImportError:
            pass
    config = model.config
    return {"name": getattr(model, "name", None) or "unnamed", "identity": model.identity(),
            "embedding_dim": int(config.embedding_dim), "logit_scale": float(model.logit_scale),
            "speech_model": config.speech_model, "text_model": config.text_model,
            "source": dict(source or {}), "versions": versions}


def audio_section(model) -> dict:
    from ..inference.precision import tower_accepts_bf16_weights

    config, engine, base = model.config, model.engine, model.audio_branch.base
    return {"sampling_rate": int(config.sampling_rate), "do_normalize": bool(config.do_normalize),
            "window_seconds": float(config.window_seconds),
            "window_overlap_seconds": float(config.window_overlap_seconds),
            "attention_budget_bytes": int(engine.attention_budget), "attention_heads": int(engine.cost.heads),
            "frame_rule": frame_steps(base), "window_samples": int(engine.window),
            "overlap_samples": int(engine.overlap), "min_samples": int(engine.min_audio_samples),
            "hidden_size": int(model.audio_branch.hidden_size), "bf16_weights": tower_accepts_bf16_weights(base),
            "cpu_batch_size": getattr(base, "cpu_batch_size", None), "pooling": config.speech_pooling,
            "model_type": config.speech_config.get("model_type")}


def text_section(model) -> dict:
    config, tokenizer = model.config, model.tokenizer
    limit = config.max_text_length  # as ParaSpeechCLAPModel.tokenize truncates
    model_max = getattr(tokenizer, "model_max_length", limit) or limit
    if tokenizer.pad_token_id is None:
        raise ExportError("the tokenizer has no padding token")
    return {"pooling": config.text_pooling, "template": config.prompt_template, "max_length": int(min(limit, model_max)),
            "inputs": text_inputs(model), "pad_id": int(tokenizer.pad_token_id), "pad_token": str(tokenizer.pad_token),
            "pad_type_id": int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
            "padding_side": str(getattr(tokenizer, "padding_side", "right"))}
