"""Long files streamed twice (statistics, then windows) instead of decoded whole: same windows, same answers."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from paraspeechclap.audio import AudioError, load_audio, normalize_waveform
from paraspeechclap.inference import engine as engine_module
from paraspeechclap.inference.plan import window_spans
from paraspeechclap.inference.stream import LongAudio, measure, windows


def speechlike(seconds: float, rate: int, seed: int, channels: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    envelope = 0.5 + 0.5 * np.sin(np.linspace(0, 40 * np.pi, n))[:, None]
    return (0.05 + 0.1 * envelope * rng.standard_normal((n, channels))).astype(np.float32)  # with a DC offset


@pytest.fixture
def long_file(tmp_path):
    path = tmp_path / "long.flac"
    sf.write(path, speechlike(47.3, 48000, 0), 48000, subtype="PCM_24")
    return path


@pytest.mark.parametrize("window,overlap", [(16000 * 5, 16000), (16000 * 7, 0), (12345, 6000)])
def test_second_pass_windows_are_the_whole_clip_normalised_and_cut(long_file, window, overlap):
    whole = normalize_waveform(load_audio(long_file))
    audio = measure(long_file, 16000, "long")
    assert isinstance(audio, LongAudio) and audio.samples == len(whole)
    spans = window_spans(audio.samples, window, overlap)
    got = list(windows(audio, spans, 16000))
    assert len(got) == len(spans) > 1
    for (start, end), segment in zip(spans, got):
        np.testing.assert_allclose(segment, whole[start:end], atol=1e-5)
    raw = list(windows(audio, spans[:3], 16000, normalise=False))  # fewer spans than the file: the rest is read
    np.testing.assert_array_equal(raw[2], load_audio(long_file)[spans[2][0]:spans[2][1]])


def test_the_measuring_pass_stops_when_asked_between_blocks(long_file):
    """A server's request that is over (504, client gone) ends the first pass within one decoder block."""
    calls = []

    def stop():
        calls.append(1)
        if len(calls) == 2:
            raise TimeoutError("the request is over")

    with pytest.raises(TimeoutError):
        measure(long_file, 16000, "long", stop)
    assert len(calls) == 2                       # 47 s at 48 kHz is several blocks: stopped after the second
    checked = []
    assert measure(long_file, 16000, "long", lambda: checked.append(1)).samples == measure(long_file, 16000, "long").samples
    assert len(checked) > 2


def test_a_file_that_changes_between_the_passes_is_an_error(long_file):
    audio = measure(long_file, 16000, "long")
    sf.write(long_file, speechlike(20.0, 48000, 1), 48000)
    with pytest.raises(AudioError, match="changed while it was read"):
        list(windows(audio, window_spans(audio.samples, 16000 * 5, 16000), 16000))


def test_engine_streams_long_files_and_answers_as_for_the_decoded_array(tiny_model_factory, long_file, tmp_path,
                                                                        monkeypatch):
    model = tiny_model_factory()
    model.config.window_seconds, model.config.window_overlap_seconds = 6.0, 1.0
    engine = model.engine
    decoded = load_audio(long_file)
    expected = engine.embed_waveforms([decoded])[0]
    assert isinstance(engine._decode_for_embedding(str(long_file)), np.ndarray)  # 47 s: under STREAM_SECONDS
    monkeypatch.setattr(engine_module, "STREAM_SECONDS", 10.0)
    assert isinstance(engine._decode_for_embedding(str(long_file)), LongAudio)
    whole_decodes = []

    def load_audio_spy(source, *args, **kwargs):
        whole_decodes.append(source)
        return load_audio(source, *args, **kwargs)

    monkeypatch.setattr(engine_module, "load_audio", load_audio_spy)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt garbage")
    short = speechlike(2.0, 16000, 2, channels=1)[:, 0]
    monkeypatch.setattr(engine_module, "LONG_GROUP_SECONDS", 13.0)  # windows batched a few at a time
    results = list(engine.embed_many([(short, 16000), str(long_file), str(corrupt), long_file.read_bytes()]))
    assert [r.ok for r in results] == [True, True, False, True] and [r.index for r in results] == [0, 1, 2, 3]
    assert results[1].seconds == pytest.approx(len(decoded) / 16000)
    # the streamed mean is exact to float32 (float64 sums), numpy's float32 mean of the whole array may be an ulp off:
    # the project's fp32 tolerance
    np.testing.assert_allclose(results[1].embedding, expected, atol=1e-5)
    np.testing.assert_array_equal(results[3].embedding, results[1].embedding)
    np.testing.assert_allclose(results[0].embedding, engine.embed_waveforms([short])[0], atol=1e-6)
    assert "corrupt" in results[2].error
    assert len(whole_decodes) == 1 and isinstance(whole_decodes[0], tuple)  # the array only (corrupt: its header)


def test_a_streamed_file_shows_its_windows_progress(tiny_model_factory, long_file, monkeypatch, capsys):
    model = tiny_model_factory()
    model.config.window_seconds, model.config.window_overlap_seconds = 6.0, 1.0
    monkeypatch.setattr(engine_module, "STREAM_SECONDS", 10.0)
    spans = window_spans(len(load_audio(long_file)), model.engine.window, model.engine.overlap)
    model.embed_audio(str(long_file), progress=True)
    err = capsys.readouterr().err
    assert f"windows of {long_file}" in err and f"{len(spans)}/{len(spans)}" in err


def test_an_encoder_failure_in_a_streamed_file_is_reported_for_that_file(tiny_model_factory, long_file, monkeypatch):
    model = tiny_model_factory()
    model.config.window_seconds, model.config.window_overlap_seconds = 6.0, 1.0
    monkeypatch.setattr(engine_module, "STREAM_SECONDS", 10.0)
    calls = []

    def broken(values, mask=None):
        calls.append(values.shape)
        raise RuntimeError("injected failure")

    monkeypatch.setattr(model.audio_branch, "pool", broken)
    monkeypatch.setattr(engine_module, "LONG_GROUP_SECONDS", 13.0)
    results = list(model.engine.embed_many([str(long_file)]))
    assert not results[0].ok and "injected failure" in results[0].error
    group = -(-13 * 16000 // model.engine.window)  # windows in the first group (the last one reaches 13 s)
    assert len(calls) == group < len(window_spans(len(load_audio(long_file)), model.engine.window,
                                                  model.engine.overlap))  # no later group is encoded


def test_timeline_of_a_streamed_file_equals_the_decoded_one(tiny_model, long_file, monkeypatch):
    expected = tiny_model.engine.timeline(str(long_file), ["calm", "angry"], window_seconds=4.0, hop_seconds=3.0)
    monkeypatch.setattr(engine_module, "STREAM_SECONDS", 10.0)
    monkeypatch.setattr(engine_module, "CHUNK_ITEMS", 5)  # windows taken from the stream five at a time
    monkeypatch.setattr(engine_module, "load_audio", lambda *a, **k: pytest.fail("the long file was decoded whole"))
    streamed = tiny_model.engine.timeline(str(long_file), ["calm", "angry"], window_seconds=4.0, hop_seconds=3.0)
    assert len(streamed["start"]) == 16 and streamed["start"] == expected["start"] and streamed["end"] == expected["end"]
    assert streamed["seconds"] == expected["seconds"]
    # the same samples, each window normalised alone; chunks of 5 instead of 256 change how windows share threads
    np.testing.assert_allclose(streamed["scores"], expected["scores"], atol=1e-6)
