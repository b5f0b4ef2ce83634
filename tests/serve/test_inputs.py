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
