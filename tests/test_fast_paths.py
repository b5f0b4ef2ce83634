"""Fast inference paths keep the answers of fp32 (correctness only, no timing asserts), and the inference
benchmark script (benchmarks/inference_speed.py) runs end to end on the tiny fixture model.

Tolerances (centred = after subtracting the fp32 reference's mean embedding, see ``agreement``):
* fp32 with SDPA attention, batched with masks, vs the stock attention one clip at a time: centred cosine
  >= 0.9999 (same maths; float rounding only);
* int8 dynamic quantization vs fp32: centred cosine >= 0.99 (the issue-6 bar) and every clip's nearest fp32
  neighbour is itself, on a paper-shaped but shallow random tower (WavLM-Large conv stack, 4 x 256 layers).
  The full 24 x 1024 random tower does not meet 0.99 under int8 (0.88, see BENCHMARKS.md): these tests guard the
  int8 path against regressions, they do not claim the paper-size model meets the bar.
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    # importable by name, so that the benchmark's spawned worker processes find their entry point too
    if str(REPO / "benchmarks") not in sys.path:
        sys.path.insert(0, str(REPO / "benchmarks"))
    return importlib.import_module("inference_speed")


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_agreement_metric_catches_swaps_and_ignores_the_shared_direction(bench):
    rng = np.random.default_rng(0)
    shared = rng.standard_normal(32) * 10  # every row points nearly the same way, as with random weights
    reference = shared + rng.standard_normal((6, 32))
    close = reference + 0.01 * rng.standard_normal((6, 32))
    result = bench.agreement(reference, close)
    assert result["centred_min_cos"] > 0.999 and result["nn_preserved"] and result["nn_kept"] == 6
    swapped = close[[1, 0, 2, 3, 4, 5]]
    bad = bench.agreement(reference, swapped)
    assert not bad["nn_preserved"] and bad["nn_kept"] == 4
    assert bad["raw_min_cos"] > 0.95 > bad["centred_min_cos"]  # the raw cosine alone would not notice the swap
    ranks = bench.ranking_agreement(np.array([[0.1, 0.5, 0.2]]), np.array([[0.2, 0.4, 0.1]]))
    assert ranks["top1_same"] == 1.0 and ranks["spearman_mean"] == pytest.approx(0.5)


@pytest.fixture(scope="module")
def small_models(bench):
    """A paper-shaped speech tower (WavLM-Large conv stack, 4 x 256 transformer) with random weights:
    fp32 with the stock attention, fp32 with this project's default path, and int8."""
    stock = bench.build_model("small", "fp32", seed=0)
    assert bench.use_stock_attention(stock) == 4
    default = bench.build_model("small", "auto", seed=0)
    int8 = bench.build_model("small", "int8", seed=0)
    assert default.precision == "fp32" or default.precision == "bf16"
    assert int8.precision == "int8"
    assert bench.weights_fingerprint(stock) == bench.weights_fingerprint(default)
    waves = bench.make_clips(6, 0.5, 2.0, seed=1)
    return stock, default, int8, waves


def reference_single(model, waves):
    import torch

    with torch.no_grad():
        return np.concatenate([model.encode_audio(model.prepare_audio([w])[0], None).numpy() for w in waves])


def test_default_path_matches_stock_attention_one_clip_at_a_time(bench, small_models):
    stock, default, _, waves = small_models
    reference = reference_single(stock, waves)
    fast = default.embed_audio([(w, 16000) for w in waves], batch_size=8)
    result = bench.agreement(reference, fast)
    assert result["centred_min_cos"] >= 0.9999, result
    assert result["nn_preserved"]
    if default.precision == "fp32":
        np.testing.assert_allclose(fast, reference, atol=2e-5)


def test_int8_keeps_centred_embeddings_and_rankings_on_a_paper_shaped_tower(bench, small_models):
    stock, _, int8, waves = small_models
    reference = reference_single(stock, waves)
    for batch_size in (1, 8):
        quantized = int8.embed_audio([(w, 16000) for w in waves], batch_size=batch_size)
        result = bench.agreement(reference, quantized)
        assert result["centred_min_cos"] >= 0.99, (batch_size, result)
        assert result["nn_preserved"], (batch_size, result)
    # audio -> text rankings over the 21 classify candidates survive quantization of both towers
    prompts = [f"A person is speaking in a {tag} style." for tag in bench.STYLE_TAGS]
    scores_fp32 = reference @ stock.embed_text(prompts).T
    scores_int8 = quantized @ int8.embed_text(prompts).T
    ranks = bench.ranking_agreement(scores_fp32, scores_int8)
    assert ranks["top1_same"] == 1.0, ranks
    assert ranks["spearman_min"] >= 0.9, ranks


def test_analytic_flops_equal_the_flop_counter(bench, small_models):
    _, default, _, waves = small_models
    wave = waves[0]
    assert bench.counted_flops(default, wave) == bench.speech_tower_flops(len(wave), default.audio_branch.base.config)


def test_benchmark_script_quick_tiny_writes_its_table(bench, tmp_path):
    assert bench.main(["--quick", "--tiny", "--inline", "--out", str(tmp_path), "--name", "t"]) == 0
    markdown = (tmp_path / "t.md").read_text()
    result = json.loads((tmp_path / "t.json").read_text())
    assert "| path | precision | audio-s/s |" in markdown and "| issue-6 target |" in markdown
    keys = [row["key"] for row in result["paths"]]
    assert keys == ["a", "b", "c", "c1", "d:bs1/240s", "d:bs8/240s"]
    assert result["fastest_int8"] in keys and f"({result['fastest_int8']}) **(d)**" in markdown
    rows = {row["key"]: row for row in result["paths"]}
    assert rows["a"]["centred_min_cos"] == pytest.approx(1.0)
    for key in ("b", "c", "c1"):  # same fp32 maths: masks and SDPA do not change the answers
        assert rows[key]["centred_min_cos"] >= 0.9999 and rows[key]["nn_preserved"]
    for key in keys[4:]:
        assert rows[key]["precision"] == "int8"
        assert rows[key]["centred_min_cos"] >= 0.99 and rows[key]["nn_preserved"]
    for row in result["paths"]:
        assert row["audio_seconds_per_s"] > 0 and row["peak_rss_mb"] > 0 and row["gflops"] > 0
    assert result["flop_check"]["counted"] == result["flop_check"]["analytic"]
    assert result["matmul_peaks"]["fp32_gflops_2048"] > 0 and result["matmul_peaks"]["bf16_gflops_256"] > 0
    assert result["text"]["fp32"]["captions_per_s"] > 0 and result["text"]["int8"]["captions_per_s"] > 0
    assert result["classify"]["candidates"] == 21
    # the tiny model's long file uses 1-s windows (0.25 s overlap): 18.25 s fill a batch of 8 windows 3 times
    assert [(row["max_batch_seconds"], row["windows"], row["largest_batch"]) for row in result["long_file"]] == \
        [(240.0, 24, 8), (30.0, 24, 8)]
    assert all(row["finite"] and row["precision"] == "fp32" for row in result["long_file"])
    assert all(row["buffer_file_seconds"] == 1800 and row["buffer_mb"] > 0 for row in result["long_file"])
    assert all(row["peak_mb_at_30min_estimate"] > row["process_peak_rss_mb"] for row in result["long_file"])
    assert {t["target"] for t in result["targets"]} >= {"default path >= 3x the faster of (a) and (b)"}


def test_worker_process_holds_the_same_model(bench):
    """The spawned worker (the benchmark's default mode) builds the same seeded model and answers commands."""
    spec = bench.WorkerSpec("check", "tiny", "fp32", True, seed=0, threads=1, memory_limit_gb=4)
    worker = bench.Worker(spec)
    try:
        waves = bench.make_clips(2, 0.3, 0.8, seed=2)
        reply = worker.call("audio", waves=waves, mode="single", batch_size=8, max_batch_seconds=240)
        local = bench.build_model("tiny", "fp32", seed=0)
        bench.use_stock_attention(local)
        np.testing.assert_allclose(reply["embeddings"], reference_single(local, waves), atol=1e-6)
        assert worker.info["fingerprint"] == bench.weights_fingerprint(local)
        assert reply["seconds"] > 0 and reply["peak_rss_mb"] > 0
    finally:
        closing = worker.close()
    assert closing["process_peak_rss_mb"] > 0 and not worker.alive


def test_long_file_memory_script_covers_precisions_and_batch_limits(bench, tmp_path):
    long_file_memory = importlib.import_module("long_file_memory")
    argv = ["--tiny", "--inline", "--precision", "auto,int8", "--max-batch-seconds", "240,2", "--out", str(tmp_path),
            "--name", "lf"]
    assert long_file_memory.main(argv) == 0
    rows = json.loads((tmp_path / "lf.json").read_text())["rows"]
    # 1-s windows with 0.25 s overlap: 18.25 s fill a batch of 8 windows 3 times, 4.75 s a batch of 2 (2 s)
    assert [(r["precision"], r["max_batch_seconds"], r["windows"], r["largest_batch"]) for r in rows] == [
        ("fp32", 240.0, 24, 8), ("fp32", 2.0, 6, 2), ("int8", 240.0, 24, 8), ("int8", 2.0, 6, 2)]
    assert all(r["finite"] and r["peak_mb_at_30min_estimate"] > r["process_peak_rss_mb"] for r in rows)
    assert "| int8 | 4.75 s | 6 (2) | 2 |" in (tmp_path / "lf.md").read_text()
