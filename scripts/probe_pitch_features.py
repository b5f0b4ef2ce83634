#!/usr/bin/env python
"""Would a frozen pretrained speech encoder help `mini` order pitch on recorded speech? A linear-probe check.

    .venv/bin/python scripts/probe_pitch_features.py [--model mini] [--clips 8] [--out reports/pitch-probe]

For each feature set, a ridge regression from the clip features to the pitch shift (cents) is fitted on versions of
recorded clips of the *training* speakers and read out on versions of clips of the *held-out* speakers, both made
exactly as ``scripts/eval_real_speech.py`` makes them (-500..+500 cents in five steps, sox and WORLD, full and
telephone band). The readout is scored like that script's "deep" minus "high-pitched": pairwise order at -500 / 0 /
+500 cents and the share of clips that rise at every step. Feature sets:

- ``mini``: the model's own speech embedding (what its text prompts read);
- ``resemblyzer``: the speaker encoder shipped inside the PyPI package Resemblyzer (GE2E, trained on thousands of
  real speakers; ``pip install -e ".[probe]"``), frozen;
- ``mini+resemblyzer``: both, concatenated (each standardised on the training versions).

A probe is an upper bound on what a linear readout can find, not what the zero-shot prompts give. If the pretrained
features do not beat the model's own under the same probe, feeding them to the speech tower cannot be expected to
help pitch order. Writes ``probe.json`` and ``probe.md`` to ``--out``.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_real_speech import pick_clips, summarise, version_sets  # noqa: E402
from real_speech import HELDOUT, load_manifest  # noqa: E402


def version_waves(clips: list[dict]) -> tuple[list[dict], list[np.ndarray]]:
    """One record per (clip, pitch method, band) and the flat list of its five waveforms, in order."""
    records, waves = [], []
    for record, ws in version_sets(clips):
        if record["kind"].startswith("pitch"):
            records.append(record)
            waves += ws
    return records, waves


def features(name: str, waves: list[np.ndarray], model) -> np.ndarray:
    if name == "mini":
        return np.asarray(model.embed_waveforms(waves, batch_size=16), dtype=np.float64)
    from resemblyzer import VoiceEncoder

    encoder = VoiceEncoder("cpu", verbose=False)
    return np.stack([encoder.embed_utterance(w.astype(np.float32)) for w in waves]).astype(np.float64)


def ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Weights (with bias as the last row) of ridge regression y ~ [x, 1]."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    reg = alpha * np.eye(xb.shape[1])
    reg[-1, -1] = 0.0
    return np.linalg.solve(xb.T @ xb + reg, xb.T @ y)


def probe(train_x, train_y, test_x, alpha: float) -> np.ndarray:
    mean, std = train_x.mean(0), train_x.std(0) + 1e-8
    w = ridge((train_x - mean) / std, train_y, alpha)
    return np.hstack([(test_x - mean) / std, np.ones((len(test_x), 1))]) @ w


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mini")
    ap.add_argument("--manifest", default="data/real-speech/manifest.jsonl")
    ap.add_argument("--clips", type=int, default=8, help="clips per speaker, training and held-out")
    ap.add_argument("--alpha", type=float, nargs="+", default=[10.0, 100.0, 1000.0, 10000.0],
                    help="ridge penalties to try (features standardised); each gets its rows")
    ap.add_argument("--out", type=Path, default=Path("reports/pitch-probe"))
    args = ap.parse_args(argv)
    from paraspeechclap import ParaSpeechCLAP
    from paraspeechclap.fileio import atomic_write_text

    rows = load_manifest(args.manifest)
    train_speakers = sorted({r["speaker"] for r in rows if r["split"] == "train"} - set(HELDOUT))
    train_clips = pick_clips([r for r in rows if r["split"] == "train"], args.clips, train_speakers)
    test_clips = pick_clips([r for r in rows if r["split"] == "heldout"], args.clips)
    model = ParaSpeechCLAP.from_pretrained(args.model, device="cpu", precision="fp32")
    train_recs, train_w = version_waves(train_clips)
    test_recs, test_w = version_waves(test_clips)
    train_y = np.concatenate([r["levels"] for r in train_recs]).astype(np.float64)
    feats = {}
    for name in ("mini", "resemblyzer"):  # one pass over both sets: the encoder is loaded once
        both = features(name, train_w + test_w, model)
        feats[name] = (both[:len(train_w)], both[len(train_w):])
    feats["mini+resemblyzer"] = tuple(np.hstack([feats["mini"][i], feats["resemblyzer"][i]]) for i in (0, 1))
    lines = [f"### Linear pitch probe: {len(train_clips)} training-speaker clips -> {len(test_clips)} held-out clips "
             f"(model {args.model})", "",
             "| features | dims | ridge alpha | band | pitch order (pairs) | clips rising at every step: sox / WORLD |",
             "|---|---|---|---|---|---|"]
    result = {"model": args.model, "train_clips": len(train_clips),
              "test_clips": len(test_clips), "features": {}}
    for (name, (tr, te)), alpha in itertools.product(feats.items(), args.alpha):
        pred = probe(tr, train_y, te, alpha)
        recs = [{**r, "score": pred[5 * i:5 * i + 5].tolist()} for i, r in enumerate(test_recs)]
        bands = summarise(recs)["bands"]
        result["features"][f"{name} alpha={alpha:g}"] = {
            b: {k: bands[b][k] for k in ("pitch_order", "pitch_monotone_sox", "pitch_monotone_world")} for b in bands}
        for band, entry in bands.items():
            order, pairs = entry["pitch_order"]
            lines.append(f"| {name} | {tr.shape[1]} | {alpha:g} | {band} | {100 * order:.1f} ({pairs}) | "
                         f"{100 * entry['pitch_monotone_sox']:.1f} / {100 * entry['pitch_monotone_world']:.1f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "probe.md", table)
    atomic_write_text(args.out / "probe.json", json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
