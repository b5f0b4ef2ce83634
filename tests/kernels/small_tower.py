"""A small paper-shaped model (the WavLM-Large conv stack under 4 x 256 layers, the fixture's text tower), speech-like
clips and the centred agreement metric, for the kernels tests that hold whole paths to the stock fp32 reference."""
from __future__ import annotations

import json

import numpy as np
import torch

from reference_fixture import FIXTURE

SMALL_SPEECH = {
    "model_type": "wavlm", "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
    "intermediate_size": 1024, "feat_extract_norm": "layer", "conv_bias": False, "do_stable_layer_norm": True,
    "conv_dim": [512] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16, "num_buckets": 320,
    "max_bucket_distance": 800,
}
PROMPTS = [f"A person is speaking in a {tag} style." for tag in
           ["angry", "happy", "sad", "calm", "whispered", "shouted", "fast", "slow", "deep", "high-pitched", "husky"]]


def small_model(precision: str):
    """The small paper-shaped model, seed 0, prepared on CPU in ``precision`` (never ``auto``)."""
    from transformers import PreTrainedTokenizerFast

    from paraspeechclap import ParaSpeechCLAP
    from paraspeechclap.model import ParaSpeechCLAPConfig

    text = json.loads((FIXTURE / "text" / "config.json").read_text())
    text = {k: text[k] for k in ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                 "intermediate_size", "max_position_embeddings", "type_vocab_size", "pad_token_id")}
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(FIXTURE / "text" / "tokenizer.json"), pad_token="<pad>",
                                        unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    torch.manual_seed(0)
    model = ParaSpeechCLAP(ParaSpeechCLAPConfig(speech_config=dict(SMALL_SPEECH), text_config=text, embedding_dim=64),
                           tokenizer=tokenizer)
    return model.prepare_for_inference(device="cpu", precision=precision)


def clips(count: int = 6, seed: int = 1) -> list[np.ndarray]:
    """Harmonic, syllable-modulated clips of 0.5-2 s (speech-like enough to tell apart)."""
    rng = np.random.default_rng(seed)
    out = []
    for seconds in rng.uniform(0.5, 2.0, size=count):
        t = np.arange(int(seconds * 16000)) / 16000
        f0 = rng.uniform(90, 230) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t))
        phase = 2 * np.pi * np.cumsum(f0) / 16000
        wave = sum(np.sin(k * phase) / k for k in range(1, 12)) * np.clip(np.sin(2 * np.pi * rng.uniform(3, 6) * t), 0, None)
        out.append((0.1 * wave / np.abs(wave).max() + 0.002 * rng.standard_normal(len(t))).astype(np.float32))
    return out


def centred(reference: np.ndarray, other: np.ndarray) -> tuple[float, bool]:
    """Minimum centred cosine to the reference and whether every row's nearest centred reference row is its own."""
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    mean = reference.mean(axis=0, keepdims=True)
    ref, oth = unit(reference - mean), unit(other - mean)
    return float((ref * oth).sum(axis=1).min()), bool(((oth @ ref.T).argmax(axis=1) == np.arange(len(ref))).all())
