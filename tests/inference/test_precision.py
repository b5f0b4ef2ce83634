"""The precision policy: detection forced both ways, bf16 converted once, fp32 exact."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from paraspeechclap.inference import precision as P


@pytest.fixture(autouse=True)
def no_override(monkeypatch):
    monkeypatch.delenv("PARASPEECHCLAP_NATIVE_BF16", raising=False)


@pytest.mark.parametrize("flags, native", [
    ({"avx2", "avx512f", "avx512_bf16"}, True),  # Zen 4 / Cooper Lake and later
    ({"avx2", "amx_bf16", "amx_tile"}, True),     # Sapphire Rapids AMX
    ({"avx2", "avx512f", "avx512bw"}, False),     # AVX-512 without BF16: oneDNN only emulates bf16
    ({"avx2", "fma"}, False),                     # Zen 3
])
def test_cpu_detection_reads_the_isa_flags(monkeypatch, flags, native):
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    assert P.cpu_native_bf16(frozenset(flags)) is native
    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset(flags))
    assert P.native_bf16(torch.device("cpu")) is native
    assert P.resolve_precision("auto", torch.device("cpu")) == ("bf16" if native else "fp32")


def test_arm_detection(monkeypatch):
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    assert P.cpu_native_bf16(frozenset({"fp", "asimd", "bf16"}))
    assert not P.cpu_native_bf16(frozenset({"fp", "asimd"}))


@pytest.mark.parametrize("capability, native", [((7, 5), False), ((8, 0), True), ((9, 0), True)])
def test_cuda_detection_needs_compute_capability_8(monkeypatch, capability, native):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert P.native_bf16(torch.device("cuda")) is native


def test_environment_override_and_validation(monkeypatch):
    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset({"avx2"}))
    monkeypatch.setenv("PARASPEECHCLAP_NATIVE_BF16", "1")
    assert P.resolve_precision("auto", torch.device("cpu")) == "bf16"
    monkeypatch.setenv("PARASPEECHCLAP_NATIVE_BF16", "0")
    assert P.resolve_precision("auto", torch.device("cpu")) == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        P.resolve_precision("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="CPU only"):
        P.resolve_precision("int8", torch.device("cuda"))


def test_auto_follows_the_detection_on_the_fixture(tiny_model_factory, monkeypatch):
    monkeypatch.setenv("PARASPEECHCLAP_NATIVE_BF16", "0")
    assert tiny_model_factory(precision="auto").precision == "fp32"
    monkeypatch.setenv("PARASPEECHCLAP_NATIVE_BF16", "1")
    model = tiny_model_factory(precision="auto")
    assert model.precision == "bf16"
    assert model.provenance()["precision"] == "bf16"


def test_bf16_converts_the_tower_weights_once_and_stays_close(tiny_model_factory, golden, golden_waveforms):
    """bf16 tolerance on the fixture: every embedding within 1e-2 (cosine >= 0.999) of the reference fp32 ones."""
    model = tiny_model_factory(precision="bf16")
    assert {p.dtype for p in model.audio_branch.base.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.text_branch.base.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.audio_projection.parameters()} == {torch.float32}  # heads stay fp32
    emb = model.embed_audio([(w, 16000) for w in golden_waveforms])
    assert emb.dtype == np.float32
    np.testing.assert_allclose(emb, golden["audio_emb_single"], atol=1e-2)
    assert (emb * golden["audio_emb_single"]).sum(1).min() >= 0.999
    text = model.embed_text(list(golden["json"]["texts"]))
    assert (text * golden["text_emb"]).sum(1).min() >= 0.999


def test_fp32_is_exact_whatever_the_machine(tiny_model_factory, golden, golden_waveforms, monkeypatch):
    monkeypatch.setenv("PARASPEECHCLAP_NATIVE_BF16", "1")  # even where bf16 is native, fp32 asked is fp32
    model = tiny_model_factory(precision="fp32")
    np.testing.assert_allclose(model.embed_audio([(w, 16000) for w in golden_waveforms]),
                               golden["audio_emb_single"], atol=1e-5)


def test_mel_tower_keeps_fp32_weights_under_auto(monkeypatch):
    from paraspeechclap import ParaSpeechCLAP

    monkeypatch.setenv("PARASPEECHCLAP_NATIVE_BF16", "1")
    mini = ParaSpeechCLAP.from_pretrained("mini", device="cpu")
    assert mini.precision == "fp32"  # its STFT front end needs fp32 and bf16 would not pay on a tower this small
