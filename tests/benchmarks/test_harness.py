"""The benchmark harness (benchmarks/harness.py) and its scenario scripts, on the tiny and small models.

Numbers are checked for sense, never for speed: no test asserts a timing. Everything here passes on CPUs with and
without native bf16 (the precision-dependent parts are checked under both settings of
``PARASPEECHCLAP_NATIVE_BF16``).
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: torch on one thread, as in tests/kernels


@pytest.fixture(scope="module")
def H():
    # importable by name, so that spawned worker processes find their entry points too
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module("harness")


@pytest.fixture(scope="module")
def speed(H):
    return importlib.import_module("inference_speed")


@pytest.fixture(scope="module")
def long_file(H):
    return importlib.import_module("long_file_memory")


def test_harness_does_not_reach_into_tests(H):
    import os
    import re

    for script in ("harness.py", "inference_speed.py", "long_file_memory.py", "gpu_parity.py", "train_throughput.py"):
        source = (BENCHMARKS / script).read_text()
        assert not re.search(r"^\s*(from|import) (reference_fixture|conftest|tests)\b", source, re.M), script
        assert not re.search(r"sys\.path.*tests", source), script
    assert H.FIXTURE == REPO / "tests" / "fixtures" / "reference-tiny" or "PARASPEECHCLAP_FIXTURE" in os.environ


def test_workload_is_seeded_and_speech_like(H):
    a, b = H.make_clips(3, 0.5, 1.0, seed=4), H.make_clips(3, 0.5, 1.0, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(x.dtype == np.float32 and 8000 <= len(x) <= 16000 and 0 < np.abs(x).max() <= 0.1 + 1e-6 for x in a)
    captions = H.make_captions(30, seed=0)
    assert len(set(captions)) == 30 and captions == H.make_captions(30, seed=0)
    assert len(H.STYLE_TAGS) == 21 == len(set(H.STYLE_TAGS))


def test_long_flac_is_48k_stereo_of_the_asked_length(H, tmp_path):
    import soundfile as sf

    path = H.write_long_flac(tmp_path / "x.flac", 61.5, seed=0)
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.format, info.frames) == (48000, 2, "FLAC", 61.5 * 48000)


def test_agreement_metric_catches_swaps_and_ignores_the_shared_direction(H):
    rng = np.random.default_rng(0)
    shared = rng.standard_normal(32) * 10  # every row points nearly the same way, as with random weights
    reference = shared + rng.standard_normal((6, 32))
    close = reference + 0.01 * rng.standard_normal((6, 32))
    good = H.agreement(reference, close)
    assert good["centred_min_cos"] > 0.999 and good["nn_preserved"] and good["nn_kept"] == 6
    assert 0 < good["max_abs_diff"] < 0.1
    bad = H.agreement(reference, close[[1, 0, 2, 3, 4, 5]])
    assert not bad["nn_preserved"] and bad["nn_kept"] == 4
    assert bad["raw_min_cos"] > 0.95 > bad["centred_min_cos"]  # the raw cosine alone would not notice the swap
    assert H.agreement(reference, reference)["max_abs_diff"] == 0.0
    ranks = H.ranking_agreement(np.array([[0.1, 0.5, 0.2]]), np.array([[0.2, 0.4, 0.1]]))
    assert ranks["top1_same"] == 1.0 and ranks["spearman_mean"] == pytest.approx(0.5)


@pytest.mark.parametrize("kind", ["tiny", "small"])
def test_analytic_flops_equal_the_flop_counter(H, kind):
    model = H.build_model(kind, "fp32", seed=0)
    wave = H.make_clips(1, 0.7, 0.7, seed=3)[0]
    assert H.counted_flops(model, wave) == H.speech_tower_flops(len(wave), model.audio_branch.base.config)


def test_small_and_paper_configs_are_paper_shaped(H):
    assert H.SMALL_SPEECH["conv_stride"] == H.WAVLM_LARGE["conv_stride"]
    # WavLM-Large: ~384 GFLOP for 10 s (BENCHMARKS.md), counted on the config alone (no model is built)
    assert H.speech_tower_flops(160000, H.WAVLM_LARGE) == pytest.approx(384.05e9, rel=1e-3)


def test_matmul_peaks_are_measured_for_each_precision(H):
    for dtype in ("fp32", "bf16", "int8"):
        assert H.matmul_gflops(dtype, size=128, repeats=2) > 0


@pytest.mark.parametrize("forced", ["0", "1"])
def test_machine_info_reports_the_precision_policy(H, monkeypatch, forced):
    import torch

    from paraspeechclap.inference.precision import cpu_flags

    monkeypatch.setenv("PARASPEECHCLAP_NATIVE_BF16", forced)
    info = H.machine_info(threads=1)
    assert info["native_bf16"] is (forced == "1") and info["native_bf16_override"] == forced
    assert info["avx512_bf16"] == ("avx512_bf16" in cpu_flags()) and info["amx_bf16"] == ("amx_bf16" in cpu_flags())
    assert info["torch"] == torch.__version__ and info["device"] == "cpu"
    assert f"native bf16 on cpu: {forced == '1'}" in H.machine_line(info)


def test_results_are_written_atomically_with_a_revision_in_the_name(H, tmp_path):
    json_path, md_path = H.write_results(tmp_path / "out", "r", {"x": np.float32(1.5), "a": np.arange(2)}, "# t\n")
    assert json.loads(json_path.read_text()) == {"x": 1.5, "a": [0, 1]} and md_path.read_text() == "# t\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["r.json", "r.md"]  # no temporaries left
    again, _ = H.write_results(tmp_path / "out", "r", {"x": 2}, "# u\n")  # a second run keeps the first one's files
    assert again.name == "r-2.json" and json.loads(json_path.read_text())["x"] == 1.5
    stem = H.result_stem("inference", None, "quick", "")
    assert stem.startswith("inference-") and stem.endswith("-quick") and "+" not in stem
    assert H.result_stem("x", "given") == "given"
    assert H.markdown_table(["a", "b"], [[1, None]], [False, True]) == ["| a | b |", "|---|---:|", "| 1 |  |"]


def test_worker_process_holds_the_same_model_and_reports_its_memory(H, speed):
    spec = H.WorkerSpec("check", "tiny", "fp32", seed=0, threads=1, memory_limit_gb=4)
    worker = H.Worker(spec)
    try:
        waves = H.make_clips(2, 0.3, 0.8, seed=2)
        reply = worker.call(speed.cmd_audio, waves=waves, mode="single", stock=True)
        local = H.build_model("tiny", "fp32")
        H.set_stock_paths(local, True)
        expected = speed.cmd_audio(local, waves, "single", stock=True)["embeddings"]
        np.testing.assert_allclose(reply["embeddings"], expected, atol=1e-6)
        assert worker.info["fingerprint"] == H.weights_fingerprint(local) and worker.info["precision"] == "fp32"
        assert reply["seconds"] > 0 and reply["peak_rss_mb"] > 0
        with pytest.raises(RuntimeError, match="unknown audio mode"):
            worker.call(speed.cmd_audio, waves=waves, mode="nonsense")
        assert worker.alive  # an error is reported, the worker keeps serving
    finally:
        closing = worker.close()
    assert closing["process_peak_rss_mb"] > 0 and not worker.alive


def test_inference_speed_quick_tiny_writes_its_table(speed, tmp_path):
    """The whole script under this machine's own bf16 setting."""
    from paraspeechclap.inference.precision import native_bf16

    import torch

    native = native_bf16(torch.device("cpu"))
    assert speed.main(["--quick", "--tiny", "--inline", "--threads", "1", "--out", str(tmp_path), "--name", "t"]) == 0
    markdown = (tmp_path / "t.md").read_text()
    result = json.loads((tmp_path / "t.json").read_text())
    assert "| path | precision | audio-s/s | x best ref | x OpenVINO | speech GFLOP/s | % peak of its precision |" in markdown
    assert "| target (issues 11 and 30) | measured | met |" in markdown and result["git_revision"]
    rows = {row["key"]: row for row in result["paths"]}
    assert list(rows) == ["a", "b", "c", "fp32", "bf16-1", "bf16", "int8", "ov", "ov-tput"]
    assert result["workload"]["scenario"] == "standard"
    assert result["default_precision"] == rows["c"]["precision"] == ("bf16" if native else "fp32")
    assert [rows[k]["precision"] for k in ("a", "b", "fp32", "bf16-1", "bf16", "int8")] == \
        ["fp32", "fp32", "fp32", "bf16", "bf16", "int8"]
    assert rows["a"]["max_abs_diff"] == 0.0
    for key in ("b", "fp32"):  # the same fp32 maths: masks and SDPA do not change the answers
        assert rows[key]["max_abs_diff"] <= 1e-5 and rows[key]["nn_preserved"]
    for key in ("bf16-1", "bf16", "int8", "ov", "ov-tput"):  # the tiny fixture's own tolerance for reduced precision
        assert rows[key]["centred_min_cos"] >= 0.99 and rows[key]["nn_preserved"]
    for key in ("ov", "ov-tput"):  # OpenVINO picks its own precision; its pooled states are held to (a)'s
        assert rows[key]["precision"] == result["openvino"]["precision"][rows[key]["hint"]]
        assert rows[key]["pooled_vs_a"]["centred_min_cos"] >= 0.99 and rows[key]["pooled_vs_a"]["nn_preserved"]
    best = max(rows["ov"]["audio_seconds_per_s"], rows["ov-tput"]["audio_seconds_per_s"])
    assert rows["c"]["ratio_to_best_openvino"] == pytest.approx(rows["c"]["audio_seconds_per_s"] / best)
    for row in rows.values():
        assert row["audio_seconds_per_s"] > 0 and row["peak_rss_mb"] > 0 and row["gflops"] > 0
        assert row["share_of_precision_peak"] > 0 and row["share_of_bf16_peak"] > 0
    peaks = result["matmul_peaks"]
    assert peaks["size"] == 2048 and peaks["bf16_size"] == (2048 if native else 256)
    assert peaks["fp32_gflops"] > 0 and peaks["bf16_gflops"] > 0 and peaks["int8_gops_dynamic_linear"] > 0
    assert rows["bf16"]["peak_of_precision_gflops"] == peaks["bf16_gflops"]
    assert result["flop_check"]["counted"] == result["flop_check"]["analytic"]
    assert result["machine"]["native_bf16"] is native
    assert result["text"]["fp32"]["captions_per_s"] > 0
    assert result["classify"]["candidates"] == 21 and result["classify"]["ratio_warm_to_alone"] > 0
    names = [t["target"] for t in result["targets"]]
    assert any(n.startswith("native bf16" if native else "fp32-only") for n in names)
    assert any(n.startswith("classify") for n in names)
    assert any(n.startswith("issue 30: default path >= 1.5x the OpenVINO") for n in names)
    assert "OpenVINO 20" in markdown and "pooled states against (a)'s" in markdown


def test_inference_speed_without_native_bf16_stays_fp32_and_exact(speed, tmp_path, monkeypatch):
    """Where bf16 is not native, ``auto`` is fp32 and the default path agrees with the reference within 1e-5."""
    monkeypatch.setenv("PARASPEECHCLAP_NATIVE_BF16", "0")
    argv = ["--quick", "--tiny", "--inline", "--threads", "1", "--paths", "a,b,c", "--clips", "3", "--captions", "5",
            "--matmul-size", "256", "--out", str(tmp_path), "--name", "nb"]
    assert speed.main(argv) == 0
    result = json.loads((tmp_path / "nb.json").read_text())
    rows = {row["key"]: row for row in result["paths"]}
    assert list(rows) == ["a", "b", "c"] and result["default_precision"] == "fp32" == rows["c"]["precision"]
    assert rows["c"]["max_abs_diff"] <= 1e-5
    assert list(result["workers"]) == ["fp32"]  # auto shares the fp32 worker
    targets = {t["target"]: t for t in result["targets"]}
    exact = targets["fp32-only machine: default path within 1e-5 of (a)"]
    assert exact["met"] is True
    assert "fp32-only machine: default path >= 1.3x the faster of (a) and (b)" in targets


def _result(native: bool, speedup: float, share: float, cos: float, diff: float, ratio: float) -> dict:
    row = {"key": "c", "speedup_vs_best_reference": speedup, "share_of_bf16_peak": share, "gflops": 10.0,
           "precision": "bf16" if native else "fp32", "centred_min_cos": cos, "nn_kept": 4, "nn_preserved": True,
           "max_abs_diff": diff}
    return {"machine": {"native_bf16": native}, "paths": [row], "workload": {"clips": 4},
            "matmul_peaks": {"bf16_size": 2048, "bf16_gflops": 100.0},
            "classify": {"warm_ms": 100 * ratio, "alone_ms": 100.0, "ratio_warm_to_alone": ratio}}


@pytest.mark.parametrize("native", [True, False])
def test_targets_follow_the_machine(speed, native):
    passing = {t["target"]: t["met"] for t in speed.targets(_result(native, 2.5, 0.7, 0.995, 1e-6, 1.1))}
    failing = {t["target"]: t["met"] for t in speed.targets(_result(native, 1.2, 0.5, 0.98, 1e-3, 1.3))}
    assert all(passing.values()) and not any(failing.values())
    assert len(passing) == (4 if native else 3)
    assert all(t.startswith("native bf16") == native for t in passing if not t.startswith("classify"))


@pytest.mark.parametrize("ratio, met", [(1.6, True), (1.2, False)])
def test_the_openvino_ratio_target_appears_with_the_anchor(speed, ratio, met):
    result = _result(True, 2.5, 0.7, 0.995, 1e-6, 1.1)
    targets = {t["target"]: t["met"] for t in speed.targets(result)}
    assert not any("OpenVINO" in t for t in targets)  # no anchor in the run: no target
    result["paths"][0]["ratio_to_best_openvino"] = ratio
    openvino = {t: m for t, m in ((t["target"], t["met"]) for t in speed.targets(result)) if "OpenVINO" in t}
    assert list(openvino.values()) == [met]


def test_long_file_memory_quick_tiny_estimates_the_five_minute_target(long_file, tmp_path):
    """In its own process (as the real runs), the peak of the 5-minute file estimated from 8 s."""
    argv = ["--tiny", "--quick", "--threads", "1", "--precision", "fp32", "--memory-limit-gb", "6",
            "--out", str(tmp_path), "--name", "lf"]
    assert long_file.main(argv) == 0
    result = json.loads((tmp_path / "lf.json").read_text())
    assert (result["rate"], result["channels"], result["target"]) == (48000, 2, {"seconds": 300.0, "peak_mb": 2048.0})
    assert result["inline"] is False
    rows = result["rows"]
    assert [r["precision"] for r in rows] == ["fp32"]
    for r in rows:
        assert r["finite"] and r["decoded_seconds"] == pytest.approx(8.0, abs=1e-3) and r["windows"] >= 1
        assert r["target_peak_estimated"] and r["target_peak_mb"] > r["inference_peak_rss_mb"] > 0
        assert r["buffer_mb_per_audio_second"] >= 2 * 4 * 16000 / 2**20  # at least the two float32 copies
    markdown = (tmp_path / "lf.md").read_text()
    assert "5-min file (GB)" in markdown and "(estimated from 8 s)" in markdown


def test_long_file_memory_measures_the_streamed_road_past_the_threshold(long_file, tmp_path, monkeypatch):
    """A file past the streaming threshold: the decode-only cost is the engine's two streamed passes, measured between
    two files that are past it too, and the estimate takes no two-copy floor."""
    from paraspeechclap.inference import engine, stream

    monkeypatch.setattr(stream, "STREAM_SECONDS", 10.0)
    monkeypatch.setattr(engine, "STREAM_SECONDS", 10.0)
    argv = ["--tiny", "--seconds", "24", "--inline", "--threads", "1", "--precision", "fp32",
            "--out", str(tmp_path), "--name", "lf"]
    assert long_file.main(argv) == 0
    result = json.loads((tmp_path / "lf.json").read_text())
    (row,) = result["rows"]
    assert row["streamed"] is True and row["finite"] and row["slope_seconds"] == [50.0, 100.0]
    per_second = max(0.0, (row["slope_buffer_mb"][1] - row["slope_buffer_mb"][0]) / 50.0)
    assert row["buffer_mb_per_audio_second"] == pytest.approx(per_second)
    assert row["target_peak_mb"] == pytest.approx(
        max(row["process_peak_rss_mb"], row["inference_peak_rss_mb"]) + per_second * (300 - 24))
    assert "(streamed)" in (tmp_path / "lf.md").read_text()


def test_gpu_parity_script_passes_on_cpu(H, capsys):
    """The parity check gpu_check.sh runs on CUDA, here on CPU: the golden outputs within 1e-5 in fp32."""
    parity = importlib.import_module("gpu_parity")
    assert parity.main(["--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "fp32 on cpu, torch defaults:" in out and "PASS" in out and "bf16 on cpu (informational)" in out


def test_the_short_scenario_is_32_clips_of_one_to_three_seconds_unless_told_otherwise(speed):
    short = speed.parse_args(["--scenario", "short"])
    assert (short.clips, short.min_seconds, short.max_seconds) == (32, 1.0, 3.0)
    assert (speed.parse_args([]).clips, speed.parse_args([]).max_seconds) == (16, 15.0)
    assert speed.parse_args(["--scenario", "short", "--clips", "5"]).clips == 5
    assert "ov" in speed.parse_args([]).keys and "bf16-b8" not in speed.parse_args([]).keys
    with pytest.raises(SystemExit):
        speed.parse_args(["--scenario", "tiny-clips"])


def test_short_scenario_runs_batched_bf16_and_the_openvino_anchor(speed, tmp_path):
    """The short scenario's plumbing end to end on the tiny fixture: its workload, the batched bf16 path, the
    OpenVINO anchor asked for in fp32 (then within 1e-4 of (a)), and the issue-30 ratio target."""
    argv = ["--scenario", "short", "--tiny", "--inline", "--threads", "1", "--clips", "4", "--repeats", "2",
            "--statistic", "best", "--group-size", "2",
            "--paths", "a,c,bf16-b8,bf16-lanes,ov", "--openvino-precision", "f32", "--captions", "4", "--classify-repeats", "1",
            "--matmul-size", "256", "--out", str(tmp_path), "--name", "s"]
    assert speed.main(argv) == 0
    result = json.loads((tmp_path / "s.json").read_text())
    workload = result["workload"]
    assert workload["scenario"] == "short" and workload["clips"] == 4 and workload["max_seconds"] == 2.0
    rows = {row["key"]: row for row in result["paths"]}
    assert list(rows) == ["a", "c", "bf16-b8", "bf16-lanes", "ov"]
    assert (rows["bf16-b8"]["batch_size"], rows["bf16-b8"]["max_batch_seconds"]) == (8, 16.0)
    for row in rows.values():  # the time of each group's fastest repeat, summed; the medians kept beside it
        assert len(row["group_times_s"]) == 2 and all(len(times) == 2 for times in row["group_times_s"])
        assert row["seconds"] == row["best_s"] == pytest.approx(sum(map(min, zip(*row["group_times_s"]))))
        assert row["best_s"] <= row["median_s"] * (1 + 1e-9)
    assert rows["bf16-lanes"]["centred_min_cos"] >= 0.99 and rows["bf16-lanes"]["nn_preserved"]
    assert rows["ov"]["precision"] == "fp32" and rows["ov"]["pooled_vs_a"]["max_abs_diff"] <= 1e-4
    assert rows["ov"]["max_abs_diff"] <= 1e-4 and rows["ov"]["nn_preserved"]
    assert rows["a"]["ratio_to_best_openvino"] == pytest.approx(rows["a"]["audio_seconds_per_s"]
                                                                / rows["ov"]["audio_seconds_per_s"])
    assert "Workload (short): 4 seeded speech-like clips" in (tmp_path / "s.md").read_text()
    assert "each group's fastest of 2 round-robin repeats" in (tmp_path / "s.md").read_text()


def test_openvino_tower_takes_any_batch_and_length_and_both_hints_agree(H):
    """The converted tower has dynamic batch and length: in fp32 its pooled states are torch's (stock modules)
    within 1e-4 for clips of other lengths than the example and for a batch of two; the throughput hint's parallel
    requests return each clip's own row; an unknown hint is refused."""
    import torch

    model = H.build_model("tiny", "fp32")
    compiled, info = H.compile_openvino_tower(model, ["latency", "throughput"], precision="f32", threads=1)
    assert info["precision"] == {"latency": "fp32", "throughput": "fp32"} and info["convert_s"] > 0
    waves = [np.asarray(w, np.float32)[None] for w in H.make_clips(3, 0.4, 1.3, seed=7)]
    H.set_stock_paths(model, True)
    with torch.inference_mode():
        expected = np.concatenate([model.audio_branch(torch.from_numpy(w), None).numpy() for w in waves])
        pair = np.concatenate([waves[0][:, :6000], waves[1][:, :6000]])
        expected_pair = model.audio_branch(torch.from_numpy(pair), None).numpy()
    for hint in ("latency", "throughput"):
        np.testing.assert_allclose(H.openvino_pooled(compiled[hint], waves, hint), expected, atol=1e-4)
    np.testing.assert_allclose(compiled["latency"](pair)[0], expected_pair, atol=1e-4)
    with pytest.raises(ValueError, match="unknown OpenVINO hints"):
        H.compile_openvino_tower(model, ["fastest"])


def test_a_baseline_tree_runs_the_default_path_with_its_own_code(speed, tmp_path):
    """--baseline-tree: path c-base runs in a worker that imports the package from that tree (here a copy of this
    one, so its answers are the default path's own); refused without worker processes."""
    import shutil

    tree = tmp_path / "tree"
    shutil.copytree(REPO / "paraspeechclap", tree / "paraspeechclap", ignore=shutil.ignore_patterns("__pycache__"))
    argv = ["--tiny", "--threads", "1", "--clips", "3", "--repeats", "1", "--paths", "a,c", "--baseline-tree",
            str(tree), "--captions", "4", "--classify-repeats", "1", "--matmul-size", "128", "--out",
            str(tmp_path), "--name", "base"]
    assert speed.main(argv) == 0
    result = json.loads((tmp_path / "base.json").read_text())
    rows = {row["key"]: row for row in result["paths"]}
    assert list(rows) == ["a", "c", "c-base"] and rows["c-base"]["precision"] == rows["c"]["precision"]
    assert result["workers"]["base"]["package_file"] == str(tree / "paraspeechclap" / "__init__.py")
    assert result["workers"]["fp32"]["package_file"] != result["workers"]["base"]["package_file"]
    assert rows["c-base"]["max_abs_diff"] == pytest.approx(rows["c"]["max_abs_diff"], abs=1e-7)
    assert "Path (c-base) runs the default path with the code of" in (tmp_path / "base.md").read_text()
    with pytest.raises(SystemExit):
        speed.parse_args(["--inline", "--baseline-tree", str(tree)])
    with pytest.raises(SystemExit):
        speed.parse_args(["--paths", "a,c-base"])
