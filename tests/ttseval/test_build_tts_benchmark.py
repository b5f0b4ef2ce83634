"""scripts/build_tts_benchmark.py on a few prompts: what it builds (exact adherence subsets, labels that match the
captions, degraded copies) and what its evaluation writes."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import soundfile as sf

from tts_helpers import needs_espeak

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from repo_scripts import load_script  # noqa: E402

pytestmark = needs_espeak


@pytest.fixture(scope="module")
def script():
    return load_script("build_tts_benchmark")


def test_flips_move_every_named_attribute(script):
    import numpy as np

    prompt = {"labels": {"gender": "male", "pitch": "medium-pitched", "rate": "slow"},
              "_attrs": {"gender": "male", "pitch": "medium", "rate": "slow", "range": "singsong", "quality": "normal",
                         "delivery": "flowing"}}
    for seed in range(5):
        style = script.rendered_style(prompt, False, np.random.default_rng(seed))
        assert style["gender"] == "female" and style["pitch"] in ("low", "high") and style["rate"] == "fast"
        assert (style["range"], style["quality"], style["delivery"]) == ("singsong", "normal", "flowing")
    assert script.rendered_style(prompt, True, np.random.default_rng(0)) == prompt["_attrs"]


def test_a_small_benchmark_is_built_and_evaluated(script, tmp_path):
    out, results = tmp_path / "bench", tmp_path / "results"
    assert script.main(["--out", str(out), "--prompts", "8", "--workers", "2", "--evaluate",
                        "--results", str(results)]) == 0
    doc = json.loads((out / "benchmark.json").read_text())
    assert [s["rate"] for s in doc["systems"].values()] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert [len(s["adherent"]) for s in doc["systems"].values()] == [8, 6, 4, 2, 0]
    from paraspeechclap.ttseval.counterfactual import packaged_table

    for line in (out / "prompts.jsonl").read_text().splitlines():
        prompt = json.loads(line)
        assert set(prompt["labels"]) == set(packaged_table().parse(prompt["caption"]).classes)
        for name in doc["systems"]:
            assert (out / "systems" / name / "clips" / f"{prompt['id']}.wav").is_file()
    phone = sf.info(str(next((out / "systems-telephone" / "adh100" / "clips").glob("*.wav"))))
    assert phone.samplerate == 8000 and phone.subtype == "ULAW"
    summary = json.loads(next(results.glob("tts-eval-*.json")).read_text())
    assert set(summary["runs"]) == {"clean", "telephone", "noise"}
    checks = summary["runs"]["clean"]["all"]["contrastive"]
    assert -1 <= checks["spearman"] <= 1 and len(checks["neighbours_overlap"]) == 4
    assert summary["timing"]["clips"] == 40 and len(summary["robustness"]["perturbations"]) == 7
    assert (out / "reports" / "clean" / "index.html").is_file()
    assert script.main(["--out", str(out), "--prompts", "8"]) == 0  # a finished build is reused, not redone
