"""The reward against the real veRL (0.9.x, in its own venv: it pins another transformers): veRL's reward loop
(``RewardLoopManager`` on a local Ray instance, the registered ``naive`` reward manager) calls our ``compute_score``
on decoded rollouts, turned into audio by the ``to_audio`` hook or read as paths; veRL's GRPO advantage normalises
the rewards per prompt group. ``verl_check.py`` runs there; this test checks its numbers against this venv's model.

The venv is built once by ``make verl-venv`` (``make test`` depends on it and sets
PARASPEECHCLAP_REQUIRE_VERL=1, so there a missing venv fails instead of skipping)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import speech_tokens

ROOT = Path(__file__).resolve().parents[2]
VERL_PYTHON = ROOT / ".venv-verl" / "bin" / "python"
CHECK = Path(__file__).with_name("verl_check.py")
KEYS = {"score", "cosine", "logit", "guard_ok", "failed"}


@pytest.fixture(scope="module")
def verl_result(tmp_path_factory, reward_service):
    if not VERL_PYTHON.is_file():
        if os.environ.get("PARASPEECHCLAP_REQUIRE_VERL") == "1":
            pytest.fail(f"{VERL_PYTHON} is missing: run `make verl-venv`")
        pytest.skip("no .venv-verl (veRL's own venv): `make verl-venv` builds it")
    work = tmp_path_factory.mktemp("verl")
    (work / "wav").mkdir()
    for k, freq in enumerate([110.0, 180.0, 260.0, 340.0]):
        t = np.arange(int(16000 * (0.8 + 0.1 * k))) / 16000
        sf.write(work / "wav" / f"c{k}.wav", (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "RAY_DEDUP_LOGS": "0"}
    run = subprocess.run([str(VERL_PYTHON), str(CHECK), "--work", str(work), "--url", reward_service,
                          "--out", str(work / "result.json")], env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads((work / "result.json").read_text())


@pytest.fixture(scope="module")
def mini():
    from paraspeechclap import ParaSpeechCLAP

    return ParaSpeechCLAP.from_pretrained("mini", precision="fp32", device="cpu")


def _grpo(scores, groups):
    """GRPO's advantage as veRL computes it: per group (score - mean) / (unbiased std + 1e-6)."""
    scores, out = np.asarray(scores, np.float64), np.zeros(len(scores))
    for g in set(groups):
        rows = [i for i, x in enumerate(groups) if x == g]
        out[rows] = (scores[rows] - scores[rows].mean()) / (scores[rows].std(ddof=1) + 1e-6)
    return out


def test_verl_reward_loop_calls_compute_score_with_the_to_audio_hook(verl_result, mini):
    from paraspeechclap.rerank import reward

    assert verl_result["versions"]["verl"].startswith("0.9.")
    assert "naive" in verl_result["registered"] and "batch" not in verl_result["registered"]
    # docs/rerank.md's YAML block was the configuration: its manager and advantage estimator ran
    assert {(r["manager"], r["estimator"]) for r in (verl_result["hook_in_process"], verl_result["path_in_process"])} == {
        ("naive", "grpo")}
    speech = [[i - 3 for i in row if 3 <= i < len(speech_tokens.VOCAB)] for row in verl_result["speech"]]
    assert verl_result["decoded"] == [" ".join(f"s{k}" for k in row) for row in speech]  # what veRL hands over
    captions = ["A deep voice speaking slowly."] * 4 + ["A high-pitched voice talking fast."] * 4
    expected = reward(mini, [(speech_tokens.wave(row), 16000) for row in speech], captions)
    local, remote = verl_result["hook_in_process"], verl_result["hook_http"]
    for route in (local, remote):
        assert route["at_last_token"]  # one reward per rollout, on its last response token, as veRL places it
        assert set(route["extra"]) == KEYS and route["extra"]["failed"] == [0.0] * 8
        # veRL's venv runs transformers 5.10, this one 5.25: the same model within float32 rounding
        np.testing.assert_allclose(route["scores"], expected, atol=1e-5)
        np.testing.assert_allclose(route["extra"]["cosine"], route["scores"], atol=1e-7)
    np.testing.assert_allclose(remote["scores"], local["scores"], atol=1e-6)  # over HTTP: the same numbers


def test_verl_responses_that_are_paths(verl_result, mini):
    from paraspeechclap.rerank import reward

    route = verl_result["path_in_process"]
    expected = reward(mini, verl_result["paths"], ["A deep voice speaking slowly."] * 4)
    np.testing.assert_allclose(route["scores"], expected, atol=1e-5)
    assert route["extra"]["failed"] == [0.0] * 4


def test_verl_grpo_advantage_normalises_per_prompt_group(verl_result):
    for name, groups in [("hook_in_process", ["p0"] * 4 + ["p1"] * 4), ("path_in_process", ["q"] * 4)]:
        route = verl_result[name]
        np.testing.assert_allclose(route["advantages"], _grpo(route["scores"], groups), rtol=1e-5, atol=1e-5)
        for g in set(groups):
            rows = [i for i, x in enumerate(groups) if x == g]
            assert abs(sum(route["advantages"][i] for i in rows)) < 1e-4
