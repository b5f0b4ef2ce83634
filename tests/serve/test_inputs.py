"""Request inputs: a file whose header says it is too long is refused before it is decoded."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from serve_helpers import wav_bytes

from paraspeechclap.serve.inputs import ApiError, decode


def test_too_long_by_its_header_is_refused_without_decoding():
    def never(source):
        pytest.fail("decoded a file whose header was already too long")

    model = SimpleNamespace(engine=SimpleNamespace(decode=never, sampling_rate=16000))
    with pytest.raises(ApiError) as caught:
        decode(model, wav_bytes(60.0), max_seconds=3.0)
    assert caught.value.status == 413 and caught.value.code == "audio_too_long" and "60.0 s" in str(caught.value)


def test_base64_decoding_to_more_than_the_upload_limit_is_refused_before_decoding():
    from paraspeechclap.serve.config import ServeConfig
    from paraspeechclap.serve.inputs import audio_source

    config = ServeConfig(max_upload_bytes=3_000_000)
    with pytest.raises(ApiError) as caught:       # not base64 at all: decoding would have said 'bad_base64'
        audio_source({"base64": "!!!!" * 1_000_001}, config)
    assert caught.value.status == 413 and caught.value.code == "too_large"
    data = wav_bytes(2.0)
    import base64

    decoded = audio_source({"base64": memoryview(base64.b64encode(data * 20))}, config)   # over one piece
    assert bytes(decoded) == data * 20


def test_a_file_in_a_bytearray_is_read_without_a_copy_and_decodes_the_same():
    import io

    import numpy as np
    import soundfile as sf

    from paraspeechclap.audio import file_info, load_audio

    buffer = io.BytesIO()
    sf.write(buffer, (np.random.default_rng(0).standard_normal((4800, 2)) * 0.1).astype(np.float32), 48000,
             format="FLAC")
    data = buffer.getvalue()
    assert np.array_equal(load_audio(bytearray(data)), load_audio(data))
    assert file_info(bytearray(data)) == file_info(data)


def test_decoding_is_charged_by_the_samples_it_reads(make_client):
    import io

    import numpy as np
    import soundfile as sf

    from serve_helpers import b64
    from paraspeechclap.serve.admission import DECODE_COST, decode_cost
    from paraspeechclap.serve.config import ServeConfig
    from paraspeechclap.serve.inputs import probe

    def flac(seconds, rate, channels):
        buffer = io.BytesIO()
        sf.write(buffer, np.zeros((int(seconds * rate), channels), np.int16), rate, format="FLAC")
        return buffer.getvalue()

    wide = flac(2.0, 96_000, 8)
    header = probe(wide, ServeConfig(), 60.0)
    assert header.samples == 2 * 96_000 * 8 and decode_cost(16_000) == DECODE_COST
    assert header.cost == pytest.approx(2.0 + DECODE_COST * 96)          # 96 times a 16 kHz mono second
    client = make_client(max_request_cost=10.0)
    captions = ["A deep voice.", "A high voice."]
    refused = client.post("/v1/score", json={"audio": b64(wide), "captions": captions})
    assert refused.status_code == 413 and refused.json()["code"] == "too_costly"
    assert client.post("/v1/score", json={"audio": b64(flac(2.0, 16_000, 1)), "captions": captions}).status_code == 200


def test_a_decode_with_a_stop_check_ends_within_one_block_and_otherwise_matches_the_engine(mini):
    import numpy as np

    from paraspeechclap.audio import BLOCK_SECONDS

    data = wav_bytes(3.5 * BLOCK_SECONDS)   # four blocks
    calls = []

    def stop():
        calls.append(1)
        if len(calls) == 1:   # the request ended while its first block was decoded
            raise ApiError(504, "timeout", "the request is over")

    with pytest.raises(ApiError) as caught:
        decode(mini, data, max_seconds=120.0, stop=stop)
    assert caught.value.status == 504 and len(calls) == 1
    wave, rate = decode(mini, data, max_seconds=120.0, stop=lambda: None)
    expected, _ = decode(mini, data, max_seconds=120.0)
    assert rate == 16000 and wave.dtype == np.float32 and np.array_equal(wave, expected)
