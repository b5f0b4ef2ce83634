"""The one road: parity through the engine, batching, the text cache, the bulk loop, streamed decoding."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from paraspeechclap.audio import AudioError, load_audio

REPO = Path(__file__).resolve().parents[2]


def test_parity_through_arrays_files_and_bytes(tiny_model, golden, golden_waveforms, tmp_path):
    arrays = [(w, 16000) for w in golden_waveforms]
    files, blobs = [], []
    for i, wave in enumerate(golden_waveforms):
        path = tmp_path / f"{i}.wav"
        sf.write(path, wave, 16000, subtype="FLOAT")
        files.append(str(path))
        blobs.append(path.read_bytes())
    for inputs in (arrays, files, blobs):
        np.testing.assert_allclose(tiny_model.embed_audio(inputs), golden["audio_emb_single"], atol=1e-5)


def test_batched_equals_single_in_fp32(tiny_model, golden_waveforms):
    arrays = [(w, 16000) for w in golden_waveforms]
    single = np.concatenate([tiny_model.embed_audio(a, batch_size=1) for a in arrays])
    for batch_size in (2, 4, 8):
        np.testing.assert_allclose(tiny_model.embed_audio(arrays, batch_size=batch_size, max_batch_seconds=60),
                                   single, atol=1e-5)


def test_batched_equals_single_in_bf16_within_its_tolerance(tiny_model_factory, golden_waveforms):
    model = tiny_model_factory(precision="bf16")
    arrays = [(w, 16000) for w in golden_waveforms]
    single = np.concatenate([model.embed_audio(a, batch_size=1) for a in arrays])
    batched = model.embed_audio(arrays, batch_size=8, max_batch_seconds=60)
    assert (single * batched).sum(1).min() >= 0.999  # padding changes bf16 rounding, not the answer


def test_attention_scratch_is_shared_within_a_call_and_let_go_after_it(tiny_model, golden_waveforms, monkeypatch):
    """The layers (and windows) of one call share one gated-bias tensor; after the call none is held."""
    import paraspeechclap.kernels.attention as attention
    import paraspeechclap.kernels.scratch as scratch

    seen = []
    gated_bias = attention.gated_bias
    monkeypatch.setattr(attention, "gated_bias", lambda *args: seen.append(gated_bias(*args)) or seen[-1])
    tiny_model.embed_audio([(golden_waveforms[0], 16000)])
    assert len(seen) >= 2 and len({t.data_ptr() for t in seen}) == 1
    assert getattr(scratch._SCRATCH, "bias", None) is None


def test_text_cache_follows_the_weights_after_load_state_dict(tiny_model_factory):
    model = tiny_model_factory()
    before = model.embed_text(["a calm voice"])
    other = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        other["text_projection.linear1.weight"].mul_(-1.0)
    model.load_state_dict(other)  # in eval mode: no train() call clears anything
    after = model.embed_text(["a calm voice"])
    assert not np.allclose(before, after)
    with torch.no_grad():
        expected = model.encode_text(model.tokenize(["a calm voice"])).numpy()
    np.testing.assert_allclose(after, expected, atol=1e-6)


def test_text_cache_is_thread_safe(tiny_model):
    texts = [f"voice number {i}" for i in range(40)]
    expected = tiny_model.embed_text(texts)
    tiny_model.engine.text_cache.clear()
    results, errors = {}, []

    def work(k):
        try:
            results[k] = tiny_model.embed_text(texts[k % 5::3])
        except Exception as err:  # pragma: no cover - surfaced below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k, rows in results.items():
        np.testing.assert_allclose(rows, expected[k % 5::3], atol=1e-6)


def test_bulk_loop_reports_and_skips_bad_items(tiny_model, golden_waveforms, tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, golden_waveforms[0], 16000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt garbage")
    short = (np.zeros(10, np.float32), 16000)
    items = [str(good), str(corrupt), short, str(tmp_path / "missing.wav"), (golden_waveforms[1], 16000)]
    results = list(tiny_model.engine.embed_many(items))
    assert [r.index for r in results] == list(range(5))
    assert [r.ok for r in results] == [True, False, False, False, True]
    assert "corrupt" in results[1].error and "too short" in results[2].error and "not found" in results[3].error
    np.testing.assert_allclose(results[4].embedding, tiny_model.embed_audio((golden_waveforms[1], 16000))[0],
                               atol=1e-5)
    with pytest.raises(AudioError, match="corrupt"):
        tiny_model.embed_audio(items[:2])


def test_a_failing_batch_is_retried_one_window_at_a_time(tiny_model_factory, golden_waveforms, monkeypatch):
    """An encoder failure on one input (injected: any batch holding a 0.3 s window raises) fails only that input."""
    model = tiny_model_factory()
    expected = model.embed_audio([(w, 16000) for w in golden_waveforms], batch_size=1)
    pool = model.audio_branch.pool

    def flaky(values, mask=None):
        if mask is not None and int(mask.sum(-1).min()) == 4800 or values.shape[-1] == 4800:
            raise RuntimeError("injected failure")
        return pool(values, mask)

    monkeypatch.setattr(model.audio_branch, "pool", flaky)
    results = list(model.engine.embed_many([(w, 16000) for w in golden_waveforms], batch_size=8,
                                           max_batch_seconds=60))
    assert [r.ok for r in results] == [True, True, False, True]
    assert "injected failure" in results[2].error
    for r in results:
        if r.ok:
            np.testing.assert_allclose(r.embedding, expected[r.index], atol=1e-5)


def test_streamed_decoding_equals_whole_file_decoding(tmp_path):
    import soxr

    rng = np.random.default_rng(0)
    stereo = (0.1 * rng.standard_normal((48000 * 50 + 123, 2))).astype(np.float32)
    path = tmp_path / "long.flac"
    sf.write(path, stereo, 48000, subtype="PCM_24")
    decoded, rate = sf.read(path, dtype="float32")
    whole = soxr.resample(decoded.mean(axis=1, dtype=np.float32), rate, 16000, quality="HQ")
    streamed = load_audio(path, block_seconds=3.0)  # 17 blocks, each mixed and resampled as it comes
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-5)
    np.testing.assert_allclose(load_audio(path.read_bytes(), block_seconds=7.0), whole, atol=1e-5)


def test_cli_classify_runs_through_the_loop_and_records_provenance(tmp_path, golden_waveforms, fixture_dir):
    from paraspeechclap.cli import main

    for i, wave in enumerate(golden_waveforms[:2]):
        sf.write(tmp_path / f"{i}.wav", wave, 16000)
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(b'{"path": "%s"}\n[1, 2]\n{"nopath": 1}\nnot json\n\xff\xfe\n{"path": "%s"}\n'
                         % (str(tmp_path / "0.wav").encode(), str(tmp_path / "1.wav").encode()))
    out = tmp_path / "out.json"
    args = ["classify", str(manifest), "--candidates", "deep", "shrill", "--json", "--out", str(out),
            "--model", str(fixture_dir / "checkpoint.pth.tar"), "--speech-model", str(fixture_dir / "speech"),
            "--text-model", str(fixture_dir / "text"), "--embedding-dim", "24", "--precision", "fp32"]
    assert main(args) == 1  # four bad rows: reported, skipped, and the exit code says so
    doc = json.loads(out.read_text())
    assert [r["path"] for r in doc["results"]] == [str(tmp_path / "0.wav"), str(tmp_path / "1.wav")]
    assert sorted(doc["failed"]) == [f"{manifest}:{n}" for n in (2, 3, 4, 5)]
    assert doc["provenance"]["precision"] == "fp32" and doc["provenance"]["device"] == "cpu"
    assert len(doc["provenance"]["identity"]) == 16


def test_embed_outputs_commit_paths_and_provenance_together(tmp_path, golden_waveforms, fixture_dir):
    import pyarrow.parquet as pq

    from paraspeechclap.cli import main

    for i, wave in enumerate(golden_waveforms):
        sf.write(tmp_path / f"{i}.wav", wave, 16000)
    model_args = ["--model", str(fixture_dir / "checkpoint.pth.tar"), "--speech-model", str(fixture_dir / "speech"),
                  "--text-model", str(fixture_dir / "text"), "--embedding-dim", "24", "--precision", "fp32"]
    assert main(["embed", str(tmp_path), "--out", str(tmp_path / "e.parquet"), *model_args]) == 0
    table = pq.read_table(tmp_path / "e.parquet")
    assert table.num_rows == 4 and json.loads(table.schema.metadata[b"paraspeechclap"])["precision"] == "fp32"
    assert main(["embed", str(tmp_path / "0.wav"), "--out", str(tmp_path / "e.npz"), *model_args]) == 0
    with np.load(tmp_path / "e.npz") as saved:
        assert saved["embeddings"].shape == (1, 24) and list(saved["paths"]) == [str(tmp_path / "0.wav")]
    before = (tmp_path / "0.wav").read_bytes()
    assert main(["embed", str(tmp_path / "0.wav"), "--out", str(tmp_path / "0.wav"), *model_args]) == 2  # suffix
    assert main(["score", str(tmp_path / "0.wav"), "--text", "calm", "--out", str(tmp_path / "0.wav"),
                 "--overwrite", *model_args]) == 1  # an input is never an output, even with --overwrite
    assert main(["embed", str(tmp_path / "0.wav"), "--out", str(tmp_path / "e.npz"), *model_args]) == 1  # exists
    assert (tmp_path / "0.wav").read_bytes() == before


FIVE_MINUTES = r"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
sys.path.insert(0, sys.argv[2])
from reference_fixture import load_tiny
model = load_tiny()
emb = model.embed_audio(sys.argv[1])
# VmHWM belongs to this program's address space, which execve made new; ru_maxrss would be inherited from the forked
# pytest process (Linux keeps it across execve) and so measure the test runner, not this run
status = open("/proc/self/status").read()
peak = int(status.split("VmHWM:")[1].split()[0]) / 1024
print(emb.shape, round(peak))
assert peak <= 2048, peak
"""


def test_five_minute_file_through_the_fixture_model_under_an_address_space_limit(tmp_path):
    """30 s windows of the stride-20 fixture tower would need gigabytes of attention each; the engine's windows are
    bounded by attention cost, so the whole file fits in 2 GB (4 GB of address space)."""
    rng = np.random.default_rng(1)
    path = tmp_path / "five.flac"
    sf.write(path, (0.1 * rng.standard_normal((48000 * 300, 2))).astype(np.float32), 48000)
    done = subprocess.run([sys.executable, "-c", FIVE_MINUTES, str(path), str(REPO / "tests")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("(1, 24)")


def test_timeline_scores_each_window_as_a_clip(tiny_model, golden_waveforms, tmp_path):
    wave = np.concatenate(golden_waveforms)  # 5.3 s
    result = tiny_model.timeline((wave, 16000), ["a calm voice", "a shout"], window_seconds=1.0, hop_seconds=0.5)
    assert result["start"][0] == 0.0 and result["end"][-1] == pytest.approx(len(wave) / 16000)
    scores = np.asarray(result["scores"])
    assert scores.shape == (len(result["start"]), 2)
    a, b = int(result["start"][3] * 16000), int(result["end"][3] * 16000)
    expected = tiny_model.embed_audio((wave[a:b], 16000)) @ tiny_model.embed_text(["a calm voice", "a shout"]).T
    np.testing.assert_allclose(scores[3], expected[0], atol=1e-5)
    from paraspeechclap.cli import main

    sf.write(tmp_path / "long.wav", wave, 16000)
    fixture = REPO / "tests" / "fixtures" / "reference-tiny"
    model_args = ["--model", str(fixture / "checkpoint.pth.tar"), "--speech-model", str(fixture / "speech"),
                  "--text-model", str(fixture / "text"), "--embedding-dim", "24", "--precision", "fp32"]
    for name in ("t.json", "t.png"):
        assert main(["timeline", str(tmp_path / "long.wav"), "--captions", "calm", "loud", "--window", "1",
                     "--out", str(tmp_path / name), *model_args]) == 0
    assert json.loads((tmp_path / "t.json").read_text())["captions"] == ["calm", "loud"]
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cpu_batch_default_follows_the_tower(tiny_model):
    from paraspeechclap import ParaSpeechCLAP

    assert tiny_model.default_batch_size == 1  # transformer towers: one clip at a time on CPU (BENCHMARKS.md)
    assert ParaSpeechCLAP.from_pretrained("mini", device="cpu").default_batch_size == 8  # the log-mel tower asks for 8


@pytest.mark.parametrize("amx", [False, True])
def test_cpu_batches_short_clips_in_bf16_only_where_amx_is(tiny_model_factory, golden_waveforms, monkeypatch, amx):
    """bf16 on a CPU with AMX: up to 8 clips within 16 s of padded audio (the window, if shorter); otherwise one
    clip per forward pass. fp32 and towers with their own batch size keep theirs. Detection forced both ways; the
    batches give the single-clip answers within bf16's tolerance."""
    import paraspeechclap.inference.engine as engine_module
    from paraspeechclap import ParaSpeechCLAP

    monkeypatch.setattr(engine_module, "cpu_has_amx", lambda: amx)
    bf16 = tiny_model_factory(precision="bf16")
    window = bf16.engine.window / bf16.engine.sampling_rate
    assert bf16.default_batch_size == (8 if amx else 1)
    assert bf16.default_max_batch_seconds == (min(window, 16.0) if amx else window)
    fp32 = tiny_model_factory(precision="fp32")
    assert (fp32.default_batch_size, fp32.default_max_batch_seconds) == (1, window)
    mini = ParaSpeechCLAP.from_pretrained("mini", device="cpu", precision="bf16")
    assert mini.default_batch_size == 8 and mini.precision == "bf16" and not mini.engine._amx_batches
    clips = [(w[: 4000 + 800 * i], 16000) for i, w in enumerate(golden_waveforms)]
    single = np.concatenate([bf16.embed_audio(c, batch_size=1) for c in clips])
    assert (bf16.embed_audio(clips) * single).sum(1).min() >= 0.999


@pytest.mark.parametrize("native, amx", [(True, False), (True, True), (False, False)])
def test_cpu_lanes_default_follows_precision_and_tower(tiny_model_factory, monkeypatch, native, amx):
    """fp32 on CPU, and bf16 where bf16 is native without AMX: min(torch threads, CPU_LANES_MAX) lanes; bf16 with
    AMX (batches instead) or emulated, int8 and towers with their own batch size: 1; the option fixes it and is
    validated. Detection forced each way."""
    import paraspeechclap.inference.engine as engine_module
    from paraspeechclap import ParaSpeechCLAP

    monkeypatch.setenv("PARASPEECHCLAP_NATIVE_BF16", "1" if native else "0")
    monkeypatch.setattr(engine_module, "cpu_has_amx", lambda: amx)
    lanes = max(1, min(torch.get_num_threads(), engine_module.CPU_LANES_MAX))
    fp32 = tiny_model_factory(precision="fp32")
    assert fp32.engine.cpu_lanes == lanes
    bf16 = tiny_model_factory(precision="bf16")
    assert bf16.engine.cpu_lanes == (lanes if native and not amx else 1)
    assert bf16.engine.default_batch_size == (8 if amx else 1)  # AMX: short clips share passes instead
    assert tiny_model_factory(precision="int8").engine.cpu_lanes == 1
    assert ParaSpeechCLAP.from_pretrained("mini", device="cpu").engine.cpu_lanes == 1  # asks for batches instead
    assert fp32.prepare_for_inference("cpu", "fp32", cpu_lanes=3).engine.cpu_lanes == 3
    with pytest.raises(ValueError, match="cpu_lanes"):
        fp32.prepare_for_inference("cpu", "fp32", cpu_lanes=0)


def test_bf16_lanes_give_the_one_lane_answers_within_bf16_tolerance(tiny_model_factory, golden_waveforms):
    """bf16 in two lanes (one torch thread each) against one lane on all threads: the same clips, the answers
    within bf16's rounding (raw cosine >= 0.9999 per clip)."""
    model = tiny_model_factory(precision="bf16")
    clips = [(w[: 3000 + 700 * i], 16000) for i, w in enumerate(golden_waveforms)]
    one_lane = model.prepare_for_inference("cpu", "bf16", cpu_lanes=1).embed_audio(clips)
    two_lanes = model.prepare_for_inference("cpu", "bf16", cpu_lanes=2).embed_audio(clips)
    assert model.engine.cpu_lanes == 2 and two_lanes.shape == one_lane.shape
    assert (one_lane * two_lanes).sum(1).min() >= 0.9999


def test_cpu_lanes_give_the_one_lane_answers_and_keep_long_windows_alone(tiny_model_factory, golden_waveforms,
                                                                         monkeypatch):
    """Two lanes: short windows run in lane threads (one torch thread each), a window longer than a lane's share of
    the batch budget runs alone on the caller's thread; the embeddings equal one lane's within 1e-5, a bad input is
    still reported and skipped, and torch's thread count is restored after the call."""
    model = tiny_model_factory(precision="fp32")
    window = model.engine.window
    clips = [(w[: 3000 + 700 * i], 16000) for i, w in enumerate(golden_waveforms)]
    long_clip = (np.tile(golden_waveforms[0], 1 + window // len(golden_waveforms[0]))[: int(window * 0.8)], 16000)
    items = [*clips, (np.zeros(10, np.float32), 16000), long_clip]
    model.prepare_for_inference("cpu", "fp32", cpu_lanes=1)
    one_lane = list(model.engine.embed_many(items))
    seen = []
    pool_with_retry = model.engine._pool_with_retry
    threads = torch.get_num_threads()
    model.prepare_for_inference("cpu", "fp32", cpu_lanes=2)
    engine = model.engine

    def spy(segments):
        seen.append((threading.current_thread().name, max(len(s) for s in segments), torch.get_num_threads()))
        return pool_with_retry(segments)

    monkeypatch.setattr(engine, "_pool_with_retry", spy)
    two_lanes = list(engine.embed_many(items))
    assert torch.get_num_threads() == threads
    assert [r.ok for r in two_lanes] == [r.ok for r in one_lane] == [True] * len(clips) + [False, True]
    for a, b in zip(one_lane, two_lanes):
        if a.ok:
            np.testing.assert_allclose(b.embedding, a.embedding, atol=1e-5)
    in_lanes = [s for s in seen if s[0].startswith("paraspeechclap-lane")]
    alone = [s for s in seen if not s[0].startswith("paraspeechclap-lane")]
    assert len(in_lanes) == len(clips) and all(n == 1 for *_, n in in_lanes)
    assert [length for _, length, _ in alone] == [len(long_clip[0])]
