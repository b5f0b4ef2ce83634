"""scripts/probe_pitch_features.py: the ridge probe reads a linear pitch code out of standardised features."""
from __future__ import annotations

import numpy as np
from repo_scripts import load_script


def test_probe_recovers_a_linear_code_and_ranks_held_out_versions():
    script = load_script("probe_pitch_features")
    rng = np.random.default_rng(0)
    direction = np.concatenate([rng.normal(size=8), np.zeros(8)])  # pitch lives in the first 8 dimensions,
    offsets = np.hstack([np.zeros((40, 8)), rng.normal(scale=3.0, size=(40, 8))])  # each clip's voice in the rest
    cents = np.tile([-500.0, -250.0, 0.0, 250.0, 500.0], 40)
    speaker = np.repeat(offsets, 5, axis=0)  # a per-clip offset the probe must ignore
    x = speaker + np.outer(cents / 500.0, direction) + rng.normal(scale=0.05, size=(200, 16))
    pred = script.probe(x[:100], cents[:100], x[100:], alpha=1.0)
    assert np.corrcoef(pred, cents[100:])[0, 1] > 0.95
    per_clip = pred.reshape(-1, 5)
    assert (np.diff(per_clip, axis=1) > 0).mean() > 0.95  # versions of one clip rise with the shift
    # a huge penalty shrinks the readout towards the training mean
    flat = script.probe(x[:100], cents[:100], x[100:], alpha=1e9)
    assert np.abs(flat - cents[:100].mean()).max() < 1.0
