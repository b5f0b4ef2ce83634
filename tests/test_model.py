"""The inference API: batching invariance, classification probabilities, caching, long audio."""
from __future__ import annotations

import numpy as np
import pytest


def random_clips(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(n).astype(np.float32) * 0.1, 16000) for n in lengths]


def test_batched_equals_one_at_a_time(tiny_model):
    clips = random_clips([16000, 4000, 23000, 800, 12000, 16000, 5000])
    batched = tiny_model.embed_audio(clips, batch_size=4)
    single = np.concatenate([tiny_model.embed_audio(c) for c in clips])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    # a tight sample budget forces different batch compositions: same answers
    np.testing.assert_allclose(tiny_model.embed_audio(clips, batch_size=3, max_batch_seconds=2.0), single, atol=1e-5)


def test_cpu_default_batches_at_most_one_window(tiny_model_factory, monkeypatch):
    model = tiny_model_factory()
    model.config.window_seconds, model.config.window_overlap_seconds = 1.0, 0.25
    assert model.default_max_batch_seconds == 1.0  # on CPU: one window's worth of padded audio per forward
    widths = []
    pool = model.audio_branch.pool
    monkeypatch.setattr(model.audio_branch, "pool", lambda values, mask=None: widths.append(values.shape) or pool(values, mask))
    clips = random_clips([16000 * 3, 4000, 4000, 4000, 3000])
    default = model.embed_audio(clips, batch_size=8)
    assert max(rows * length for rows, length in widths) <= 16000, widths  # long clip: one window per pass
    assert any(rows > 1 for rows, _ in widths)  # short clips still share a batch
    np.testing.assert_allclose(default, model.embed_audio(clips, batch_size=8, max_batch_seconds=240), atol=1e-5)


def test_similarity_is_cosine(tiny_model):
    clips = random_clips([8000, 9000])
    texts = ["a deep voice", "a high voice", "a whisper"]
    sims = tiny_model.similarity(clips, texts)
    expected = tiny_model.embed_audio(clips) @ tiny_model.embed_text(texts).T
    np.testing.assert_allclose(sims, expected, atol=1e-6)
    assert sims.shape == (2, 3)


def test_classify_uses_logit_scale(tiny_model):
    clips = random_clips([8000])
    candidates = ["deep", "shrill", "nasal"]
    probs = tiny_model.classify(clips, candidates)[0]
    audio = tiny_model.embed_audio(clips)[0]
    text = tiny_model.embed_text([f"A person is speaking in a {c} style." for c in candidates])
    logits = tiny_model.logit_scale * (text @ audio)
    expected = np.exp(logits - logits.max())
    expected /= expected.sum()
    np.testing.assert_allclose([probs[c] for c in candidates], expected, atol=1e-6)
    assert sum(probs.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="duplicate"):
        tiny_model.classify(clips, ["deep", "deep"])


def test_template_averaging_and_validation(tiny_model):
    one = tiny_model.embed_prompts(["deep"], "A {} voice.")
    two = tiny_model.embed_prompts(["deep"], ["A {} voice.", "Someone speaks in a {} way."])
    assert one.shape == two.shape == (1, tiny_model.config.embedding_dim)
    assert not np.allclose(one, two)
    with pytest.raises(ValueError, match="must contain"):
        tiny_model.embed_prompts(["deep"], "no placeholder")


def test_text_cache_returns_same_embeddings(tiny_model):
    texts = ["a calm voice", "an angry voice"]
    first = tiny_model.embed_text(texts)
    assert all(t in tiny_model.engine.text_cache for t in texts)
    np.testing.assert_array_equal(tiny_model.embed_text(texts[::-1]), first[::-1])
    with pytest.raises(ValueError, match="empty"):
        tiny_model.embed_text(["ok", "  "])


def test_long_audio_windows_are_deterministic_and_bounded(tiny_model_factory):
    model = tiny_model_factory()
    model.config.window_seconds = 1.0
    model.config.window_overlap_seconds = 0.25
    short, long = random_clips([12000, 16000 * 7 + 123], seed=3)
    # clips within one window are embedded exactly as before
    np.testing.assert_allclose(model.embed_audio(short), tiny_model_factory().embed_audio(short), atol=1e-6)
    first = model.embed_audio(long)
    np.testing.assert_array_equal(first, model.embed_audio(long))
    # the long clip's embedding is the projection of its windows' frame-weighted mean
    import torch

    from paraspeechclap.audio import normalize_waveform
    from paraspeechclap.inference.plan import window_spans

    wave = normalize_waveform(long[0])
    pooled = []
    for s, e in window_spans(len(wave), 16000, 4000):
        with torch.no_grad():
            p, n = model.audio_branch.pool(torch.from_numpy(wave[s:e])[None])
        pooled.append((p[0].double(), float(n[0])))
    mean = sum(p * n for p, n in pooled) / sum(n for _, n in pooled)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model.audio_projection(mean.float()[None]), dim=-1).numpy()
    np.testing.assert_allclose(first, expected, atol=1e-5)


def test_identity_changes_with_weights(tiny_model_factory):
    a, b = tiny_model_factory(), tiny_model_factory()
    assert a.identity() == b.identity()
    import torch

    with torch.no_grad():
        b.text_projection.layer_norm.bias.add_(0.01)  # in place: the identity must follow without a reset
    assert a.identity() != b.identity()


def test_raw_array_without_rate_is_rejected(tiny_model):
    with pytest.raises(TypeError, match="sample_rate"):
        tiny_model.embed_audio(np.zeros(16000, np.float32))


def test_sdpa_attention_matches_stock_wavlm_attention(tiny_model_factory):
    import types


    from paraspeechclap.kernels.attention import wavlm_attention_forward

    model = tiny_model_factory()
    attention = [m for m in model.modules() if type(m).__name__ == "WavLMAttention"]
    assert attention and all(isinstance(m.forward, types.MethodType)
                             and m.forward.__func__ is wavlm_attention_forward for m in attention)
    clips = random_clips([16000, 5000, 30000])
    fast = model.embed_audio(clips, batch_size=3)
    for module in attention:  # back to the stock implementation
        del module.forward
    np.testing.assert_allclose(model.embed_audio(clips, batch_size=3), fast, atol=1e-5)


def test_int8_precision_keeps_rankings(tiny_model_factory):
    fp32 = tiny_model_factory()
    int8 = tiny_model_factory(precision="int8")
    clips = random_clips([16000, 8000, 20000, 12000], seed=5)
    a, b = fp32.embed_audio(clips), int8.embed_audio(clips)
    centred_a, centred_b = a - a.mean(0), b - a.mean(0)
    cos = (centred_a * centred_b).sum(1) / np.linalg.norm(centred_a, axis=1) / np.linalg.norm(centred_b, axis=1)
    assert cos.min() > 0.9
    assert ((b @ a.T).argmax(1) == np.arange(len(clips))).all()


def test_toeplitz_bias_equals_the_stock_relative_position_bias(tiny_model):
    import torch

    from paraspeechclap.kernels.position_bias import toeplitz_bias

    attention = next(m for m in tiny_model.modules() if type(m).__name__ == "WavLMAttention"
                     and getattr(m, "has_relative_position_bias", True) and hasattr(m, "rel_attn_embed"))
    for length in (1, 2, 7, 50, 333, 1500):
        with torch.no_grad():
            stock = attention.compute_bias(length, length)[None]
            assert torch.equal(toeplitz_bias(attention, length), stock), length


def test_towers_built_under_inference_mode_still_embed(fixture_dir):
    """Inference tensors keep no version counter: the bias cache and the text cache must cope."""
    import torch

    from paraspeechclap import ParaSpeechCLAP

    with torch.inference_mode():
        model = ParaSpeechCLAP.from_pretrained(fixture_dir / "checkpoint.pth.tar", speech_model=fixture_dir / "speech",
                                               text_model=fixture_dir / "text", embedding_dim=24, device="cpu",
                                               precision="fp32")
        first = model.embed_audio((np.zeros(8000, np.float32) + 0.1, 16000))
        assert np.allclose(first, model.embed_audio((np.zeros(8000, np.float32) + 0.1, 16000)))
        assert model.embed_text(["calm"]).shape == (1, 24)
