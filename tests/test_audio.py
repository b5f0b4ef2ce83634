"""Audio front end: decoding, resampling, downmixing, normalisation, padding, windows, bad input."""
from __future__ import annotations


import numpy as np
import pytest
import soundfile as sf

from paraspeechclap.audio import AudioError, load_audio, normalize_waveform, pad_batch
from paraspeechclap.inference.plan import window_spans


def tone(seconds=0.5, rate=16000, freq=220.0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_decodes_files_and_bytes(tmp_path, fmt, subtype):
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, tone(), 16000, format=fmt, subtype=subtype)
    from_path = load_audio(path)
    from_bytes = load_audio(path.read_bytes())
    assert from_path.dtype == np.float32 and abs(len(from_path) - 8000) < 200
    np.testing.assert_array_equal(from_path, from_bytes)


def test_resamples_and_downmixes():
    stereo = np.stack([tone(1.0, 44100), np.zeros(44100, np.float32)], axis=1)
    out = load_audio((stereo, 44100))
    assert len(out) == 16000
    assert np.abs(out).max() == pytest.approx(0.15, abs=0.01)  # mean of the tone and silence
    channels_first = load_audio((stereo.T.copy(), 44100))
    np.testing.assert_allclose(out, channels_first)


def test_normalisation_matches_feature_extractor():
    from transformers import Wav2Vec2FeatureExtractor

    wave = tone(0.3) + 0.1
    ours = normalize_waveform(wave)
    theirs = Wav2Vec2FeatureExtractor(do_normalize=True)(wave, sampling_rate=16000).input_values[0]
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert np.all(np.isfinite(normalize_waveform(np.zeros(100, np.float32))))  # silence stays finite


def test_pad_batch_masks_padding():
    values, mask = pad_batch([np.ones(3, np.float32), np.ones(5, np.float32)])
    assert values.shape == (2, 5) and mask.dtype == np.int64
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]] and values[0, 3:].tolist() == [0, 0]


@pytest.mark.parametrize("source,problem", [
    ("missing.wav", "file not found"),
    ((np.zeros(0, np.float32), 16000), "zero-length"),
    ((np.array([0.0, np.nan], np.float32), 16000), "NaN or Inf"),
    ((np.array([0.0, np.inf], np.float32), 16000), "NaN or Inf"),
    ((np.zeros(10, np.float32), 0), "sample rate"),
    (b"definitely not audio", "unreadable or corrupt"),
])
def test_bad_input_names_the_problem(tmp_path, source, problem):
    if source == "missing.wav":
        source = str(tmp_path / source)
    with pytest.raises(AudioError, match=problem) as info:
        load_audio(source)
    if isinstance(source, str):
        assert source in str(info.value)


def test_corrupt_bytes_are_described_in_words():
    with pytest.raises(AudioError) as info:
        load_audio(b"definitely not audio" * 8)
    message = str(info.value)   # libsndfile's reason (e.g. "Format not recognised."), no object repr
    assert message.startswith("<160 bytes>: unreadable or corrupt audio (") and "object at 0x" not in message


def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(AudioError, match="broken.wav: unreadable or corrupt"):
        load_audio(path)


def test_too_short_for_receptive_field(tiny_model):
    with pytest.raises(AudioError, match="too short"):
        tiny_model.embed_audio((np.zeros(tiny_model.min_audio_samples - 1, np.float32), 16000))
    ok = tiny_model.embed_audio((np.zeros(tiny_model.min_audio_samples, np.float32), 16000))
    assert np.all(np.isfinite(ok))  # silence is valid input


def test_window_spans_cover_signal():
    assert window_spans(100, 200, 20) == [(0, 100)]
    spans = window_spans(1000, 300, 50)
    assert spans[0] == (0, 300) and spans[-1] == (700, 1000)
    assert all(e - s == 300 for s, e in spans)
    covered = np.zeros(1000, bool)
    for s, e in spans:
        covered[s:e] = True
    assert covered.all()
    with pytest.raises(ValueError):
        window_spans(1000, 300, 300)


def test_stream_audio_blocks_are_load_audio_in_pieces(tmp_path):
    from paraspeechclap.audio import file_seconds, stream_audio

    rng = np.random.default_rng(3)
    path = tmp_path / "s.flac"
    sf.write(path, (0.1 * rng.standard_normal((44100 * 7 + 5, 2))).astype(np.float32), 44100)
    blocks = list(stream_audio(path, 16000, block_seconds=2.0))
    assert len(blocks) >= 4 and all(b.dtype == np.float32 for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), load_audio(path, block_seconds=2.0))
    assert file_seconds(path) == pytest.approx(7 + 5 / 44100)
    assert file_seconds(path.read_bytes()) == pytest.approx(7 + 5 / 44100)
    assert file_seconds((np.zeros(10, np.float32), 16000)) is None
    with pytest.raises(AudioError, match="not found"):
        file_seconds(tmp_path / "missing.wav")


def test_wave_stats_seen_block_by_block_give_the_whole_clip_normalisation():
    from paraspeechclap.audio import WaveStats, normalize_with

    rng = np.random.default_rng(4)
    wave = (0.5 + 0.01 * rng.standard_normal(160_003)).astype(np.float32)  # a DC offset far above the signal
    whole = normalize_waveform(wave)
    stats = WaveStats()
    for start in range(0, len(wave), 16000):
        stats.update(wave[start:start + 16000])
    mean, scale = stats.mean_and_scale()
    assert stats.count == len(wave) and mean.dtype == scale.dtype == np.float32
    np.testing.assert_allclose(normalize_with(wave, mean, scale), whole, atol=2e-5)  # float32 rounding of mean/scale
    np.testing.assert_array_equal(normalize_with(wave, wave.mean(), np.sqrt(wave.var() + 1e-7)), whole)
    silence = WaveStats()
    silence.update(np.zeros(100, np.float32))
    assert np.isfinite(normalize_with(np.zeros(100, np.float32), *silence.mean_and_scale())).all()
    with pytest.raises(ValueError, match="no samples"):
        WaveStats().mean_and_scale()


def test_rate_and_channel_ceilings_are_refused_before_decoding(tmp_path):
    from paraspeechclap.audio import MAX_CHANNELS, MAX_SAMPLE_RATE, check_format, file_info

    # the decode bomb in small: an 8-channel 655,350 Hz FLAC of silence (0.2 s here)
    bomb = tmp_path / "bomb.flac"
    sf.write(bomb, np.zeros((131_070, 8), np.int16), 655_350, format="FLAC")
    for source in (bomb, bomb.read_bytes()):
        with pytest.raises(AudioError, match=f"655350 Hz is over the limit of {MAX_SAMPLE_RATE} Hz"):
            load_audio(source)
        with pytest.raises(AudioError, match="over the limit"):
            file_info(source)
    many = tmp_path / "many.wav"
    sf.write(many, np.zeros((100, MAX_CHANNELS + 1), np.int16), 16000)
    with pytest.raises(AudioError, match=f"{MAX_CHANNELS + 1} channels is over the limit of {MAX_CHANNELS}"):
        load_audio(many)
    with pytest.raises(AudioError, match="over the limit"):
        load_audio((np.zeros(100, np.float32), MAX_SAMPLE_RATE + 1))
    with pytest.raises(AudioError, match="channels is over the limit of 2"):
        check_format("x", 16000, 3, max_channels=2)     # a caller (the service) may set tighter ceilings
    assert file_info((np.zeros(10, np.float32), 16000)) is None       # arrays have no header


def test_blocks_are_bounded_in_bytes_and_normal_files_keep_their_blocks(tmp_path):
    from paraspeechclap.audio import BLOCK_BYTES, BLOCK_SECONDS, block_frames, file_info, stream_audio

    assert block_frames(48000, 2) == int(BLOCK_SECONDS * 48000)    # usual files: 20 s blocks, as before
    assert block_frames(384_000, 32) * 32 * 4 <= BLOCK_BYTES          # the worst case: a few MB per block
    assert block_frames(384_000, 8) * 8 * 4 <= BLOCK_BYTES and block_frames(1, 1) == 20
    rng = np.random.default_rng(5)
    path = tmp_path / "wide.wav"
    data = (0.1 * rng.standard_normal((192_000 * 3, 6))).astype(np.float32)
    sf.write(path, data, 192_000, subtype="FLOAT")
    assert file_info(path) == file_info(path.read_bytes()) and file_info(path).channels == 6
    blocks = list(stream_audio(path, 16000))
    assert len(blocks) >= 2                                           # 3 s at 192 kHz x 6 ch is over 8 MiB
    np.testing.assert_array_equal(np.concatenate(blocks), load_audio(path))
    import soxr

    expected = soxr.resample(data.mean(axis=1, dtype=np.float32), 192_000, 16000, quality="HQ")
    np.testing.assert_allclose(np.concatenate(blocks), expected, atol=1e-4)   # streamed = resampled whole


def test_load_audio_stops_between_blocks_when_asked(tmp_path):
    """``stop()`` runs after each decoded block (the server's way to free a lane once a request is over)."""
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(16000 * 50, np.float32), 16000)   # 50 s: three 20 s blocks
    calls = []

    def stop():
        calls.append(1)
        raise TimeoutError("over")

    with pytest.raises(TimeoutError):
        load_audio(path, stop=stop)
    assert len(calls) == 1
    assert len(load_audio(path, stop=lambda: calls.append(1))) == 16000 * 50 and len(calls) == 4
