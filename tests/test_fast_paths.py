"""The fast inference paths keep the answers of the reference (correctness only, no timings). Every model here asks
for its precision explicitly, so the tests mean the same on CPUs with and without native bf16.

On a paper-shaped but shallow random speech tower (the WavLM-Large conv stack, 4 x 256 transformer layers; the
reference-tiny fixture's text tower), against WavLM's stock attention in fp32, one clip at a time, no mask:
* fp32, SDPA attention and the copy-free conv layers, batched with masks through ``embed_audio``: within 2e-5;
* bf16 (weights converted once): centred cosine >= 0.99 and every clip's nearest reference neighbour kept (also on
  the reference-tiny fixture; the paper-shaped tower only where bf16 is native, emulated bf16 takes minutes there);
* int8 dynamic quantization: centred cosine >= 0.99, nearest neighbours kept, audio->text rankings kept.
"Centred" = after subtracting the reference's mean embedding: with random weights all raw embeddings point nearly
the same way (raw cosine ~0.99 between different clips), so only the centred part tells clips apart. The full
24 x 1024 random tower does not meet 0.99 under int8 (BENCHMARKS.md): these tests guard the paths against
regressions; they do not claim the paper-size model meets the bar.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reference_fixture import FIXTURE

from paraspeechclap.fast import use_stock_paths

SMALL_SPEECH = {
    "model_type": "wavlm", "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
    "intermediate_size": 1024, "feat_extract_norm": "layer", "conv_bias": False, "do_stable_layer_norm": True,
    "conv_dim": [512] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16, "num_buckets": 320,
    "max_bucket_distance": 800,
}
PROMPTS = [f"A person is speaking in a {tag} style." for tag in
           ["angry", "happy", "sad", "calm", "whispered", "shouted", "fast", "slow", "deep", "high-pitched", "husky"]]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


@pytest.fixture(scope="module")
def reference():
    """fp32, WavLM's stock attention and conv layers, one clip at a time, no mask (the authors' CLI), and its text scores."""
    model = small_model("fp32")
    assert use_stock_paths(model) >= 4 + 7  # attention layers, conv layers (and linear layers)
    waves = clips()
    with torch.no_grad():
        audio = np.concatenate([model.encode_audio(model.prepare_audio([w])[0], None).numpy() for w in waves])
    return waves, audio, audio @ model.embed_text(PROMPTS).T


def test_fp32_sdpa_batched_with_masks_matches_stock_attention_one_clip_at_a_time(reference):
    waves, expected, _ = reference
    model = small_model("fp32")
    assert model.precision == "fp32"
    for batch_size in (1, 8):
        got = model.embed_audio([(w, 16000) for w in waves], batch_size=batch_size, max_batch_seconds=60)
        np.testing.assert_allclose(got, expected, atol=2e-5)


@pytest.fixture(scope="module")
def tiny_reference():
    """The reference-tiny fixture in fp32, stock WavLM modules, one clip at a time (cheap even where bf16 is emulated)."""
    from reference_fixture import load_tiny

    model = load_tiny(precision="fp32")
    assert use_stock_paths(model) >= 2 + 3
    waves = clips()
    with torch.no_grad():
        return waves, np.concatenate([model.encode_audio(model.prepare_audio([w])[0], None).numpy() for w in waves])


def native_bf16_cpu() -> bool:
    from paraspeechclap.inference.precision import native_bf16

    return native_bf16(torch.device("cpu"))


@pytest.mark.parametrize("tower", ["tiny", "small"])
def test_bf16_keeps_centred_embeddings_and_neighbours(request, tower):
    """bf16 weights and activations (8 mantissa bits): the stated tolerance is the issue's accuracy bar, centred
    cosine >= 0.99 with every nearest neighbour kept; raw cosines stay above 0.999."""
    if tower == "small":
        if not native_bf16_cpu():
            pytest.skip("bf16 is emulated on this CPU: the paper-shaped tower would take minutes (the tiny one runs)")
        waves, expected, _ = request.getfixturevalue("reference")
        model = small_model("bf16")
    else:
        from reference_fixture import load_tiny

        waves, expected = request.getfixturevalue("tiny_reference")
        model = load_tiny(precision="bf16")
    assert model.precision == "bf16"
    assert next(model.audio_branch.base.parameters()).dtype == torch.bfloat16
    assert model.audio_projection.linear1.weight.dtype == torch.float32  # the heads stay fp32
    got = model.embed_audio([(w, 16000) for w in waves], max_batch_seconds=60)
    assert got.dtype == np.float32 and np.isfinite(got).all()
    cos, kept = centred(expected, got)
    assert cos >= 0.99 and kept, cos
    assert (got * expected).sum(axis=1).min() >= 0.999


def test_int8_keeps_centred_embeddings_and_rankings(reference):
    waves, expected, scores = reference
    model = small_model("int8")
    assert model.precision == "int8"
    for batch_size in (1, 8):
        got = model.embed_audio([(w, 16000) for w in waves], batch_size=batch_size, max_batch_seconds=60)
        cos, kept = centred(expected, got)
        assert cos >= 0.99 and kept, (batch_size, cos)
    from scipy.stats import spearmanr

    quantized = got @ model.embed_text(PROMPTS).T  # the text tower stays fp32 under int8
    assert (quantized.argmax(1) == scores.argmax(1)).all()
    assert min(spearmanr(a, b).statistic for a, b in zip(scores, quantized)) >= 0.9
