"""The reward API and best_of_n: batching, caption de-duplication, call forms, seeding, tie-break."""

from __future__ import annotations

import random
from itertools import combinations

import numpy as np
import pytest

from paraspeechclap.rerank import best_of_n, best_of_n_curve, expected_best_of_n, reward
from paraspeechclap.rerank.reward import embed_audio_safely


def _clip(level: float, sr: int = 16000) -> tuple[np.ndarray, int]:
    wave = np.full(sr // 10, 0.01, np.float32)
    wave[0] = level
    return wave, sr


def test_reward_embeds_each_distinct_caption_once(stub_model):
    audios = [_clip(0.1), _clip(0.5), _clip(0.9), _clip(-0.2)]
    captions = ["calm", "loud", "calm", "calm"]
    r = reward(stub_model, audios, captions)
    assert r.dtype == np.float32 and r.shape == (4,)
    assert r == pytest.approx([0.1, 0.5, 0.9, -0.2], abs=1e-6)
    assert stub_model.text_calls == [["calm", "loud"]]
    assert reward(stub_model, _clip(0.3), "one") == pytest.approx([0.3], abs=1e-6)  # a single item
    assert reward(stub_model, [], []).shape == (0,)


def test_reward_argument_errors(stub_model):
    with pytest.raises(ValueError, match="2 audios but 1 captions"):
        reward(stub_model, [_clip(0.1), _clip(0.2)], ["a"])
    with pytest.raises(TypeError, match=r"audios\[1\].*got list"):
        reward(stub_model, [_clip(0.1), [0.1, 0.2]], "a")


def test_embed_audio_safely_isolates_bad_items(stub_model, tmp_path, write_wav):
    good = write_wav(tmp_path / "g.wav", 0.4)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    ticks = []
    emb, errors = embed_audio_safely(stub_model, [str(good), str(bad), str(good)], chunk=2, progress=ticks.append)
    assert list(errors) == [1] and np.isnan(emb[1]).all()
    assert emb[0] @ [1.0, 0.0] == pytest.approx(0.4, abs=1e-6) and emb[2] @ [1, 0] == pytest.approx(0.4, abs=1e-6)
    assert ticks == [1, 1, 1]  # one tick per finished item


def test_best_of_n_calls_with_index_and_picks_the_best(stub_model):
    calls = []
    levels = [0.2, 0.7, 0.7, 0.1]

    def tts(caption, i):
        calls.append((caption, i))
        return _clip(levels[i])

    res = best_of_n(stub_model, tts, "A whispered voice.", n=4)
    assert calls == [("A whispered voice.", i) for i in range(4)]
    assert res.index == 1 and res.score == pytest.approx(0.7, abs=1e-6)  # tie -> earlier call
    assert res.margin == pytest.approx(0.0, abs=1e-6)
    assert res.scores == pytest.approx(levels, abs=1e-6)
    assert res.audio is res.candidates[1] and len(res.candidates) == 4
    assert stub_model.text_calls == [["A whispered voice."]]


def test_best_of_n_one_argument_generator_and_seeding(stub_model):
    def noisy_tts(caption, temperature=0.7):  # one required positional: called as tts(caption)
        return _clip(float(np.random.uniform(-1, 1)) * random.random())

    a = best_of_n(stub_model, noisy_tts, "x", n=5, seed=3)
    b = best_of_n(stub_model, noisy_tts, "x", n=5, seed=3)
    c = best_of_n(stub_model, noisy_tts, "x", n=5, seed=4)
    assert np.array_equal(a.scores, b.scores) and a.index == b.index
    assert not np.array_equal(a.scores, c.scores)
    assert a.index == int(np.argmax(a.scores))
    # forcing the form
    seen = []
    best_of_n(stub_model, lambda *args: seen.append(args) or _clip(0.1), "y", n=2, pass_index=False)
    assert seen == [("y",), ("y",)]


def test_best_of_n_rejects_bad_returns(stub_model):
    with pytest.raises(TypeError, match="generate call 0 returned.*got list"):
        best_of_n(stub_model, lambda c: [0.0, 0.1], "x", n=2)
    with pytest.raises(ValueError, match="at least 1"):
        best_of_n(stub_model, lambda c: _clip(0.1), "x", n=0)


def test_expected_best_of_n_matches_enumeration_over_subsets():
    rng = np.random.default_rng(1)
    for total in (1, 2, 5, 7):
        scores = rng.integers(0, 3, total).astype(float)  # many ties
        quality = rng.normal(size=total)
        for n in range(1, total + 1):
            picks = []
            for subset in combinations(range(total), n):
                best = max(subset, key=lambda i: (scores[i], -i))  # highest score, lowest index
                picks.append(quality[best])
            assert expected_best_of_n(scores, quality, n) == pytest.approx(np.mean(picks), abs=1e-12)
    curve = best_of_n_curve([0.1, 0.9, 0.5], [3.0, 1.0, 2.0])
    assert curve[0] == pytest.approx(2.0) and curve[-1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="n must be in"):
        expected_best_of_n([1.0], [1.0], 2)


def test_reward_batch_equals_per_item_with_the_tiny_model(tiny_model, tmp_path, write_wav):
    rng = np.random.default_rng(0)
    audios = [
        (rng.normal(0, 0.1, 8000).astype(np.float32), 8000),
        (rng.normal(0, 0.1, 30000).astype(np.float32), 16000),
        (rng.normal(0, 0.1, (2, 44100)).astype(np.float32), 44100),  # stereo, channels first
        str(write_wav(tmp_path / "a.wav", 0.2, freq=330.0, seconds=1.2, sr=22050)),
        tmp_path / "a.wav",
    ]
    captions = ["A deep voice.", "A fast, high voice.", "A deep voice.", "A whisper.", "A whisper."]
    batch = reward(tiny_model, audios, captions, batch_size=3)
    single = np.array([reward(tiny_model, [a], [c], batch_size=1)[0] for a, c in zip(audios, captions)])
    assert batch.shape == (5,) and np.all(np.abs(batch) <= 1.0 + 1e-6)
    assert np.max(np.abs(batch - single)) < 1e-5
    expected = np.diag(tiny_model.similarity(audios, captions))
    assert np.max(np.abs(batch - expected)) < 1e-5
    assert batch[3] == pytest.approx(batch[4], abs=1e-6)  # str and Path of one file
    assert len(set(np.round(batch, 6))) >= 4  # the scores actually differ between clips


def test_rerank_imports_without_torch():
    import subprocess
    import sys

    code = "import sys, paraspeechclap.rerank, paraspeechclap.rerank.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"



class PitchStub:
    """Audio rows ``[1, level, 0]`` (level = the clip's first sample), text rows ``[1, #deep - #high-pitched, 0]``:
    a positive level sounds deep. Has the logit scale the contrastive score needs."""

    logit_scale = 2.0

    def embed_audio(self, audio, batch_size=8):
        import soundfile as sf

        items = audio if isinstance(audio, list) else [audio]
        levels = [float(np.asarray(item[0] if isinstance(item, tuple) else sf.read(str(item), dtype="float32")[0])
                        .reshape(-1)[0]) for item in items]
        rows = np.array([[1.0, level, 0.0] for level in levels])
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    def embed_text(self, texts):
        rows = np.array([[1.0, t.count("deep") - t.count("high-pitched"), 0.0] for t in texts])
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_contrastive_reward_is_the_benchmarks_score():
    from paraspeechclap.ttseval.contrastive import contrastive_scores

    model = PitchStub()
    audios = [_clip(0.9), _clip(-0.9), _clip(0.9)]
    captions = ["A deep voice.", "A deep voice.", "Somebody talks."]
    with pytest.warns(RuntimeWarning, match="1 of 3 item"):
        got = reward(model, audios, captions, score="contrastive")
    want = contrastive_scores(model, model.embed_audio(audios), captions).scores
    assert got.dtype == np.float32 and got[0] > 0.8 and got[1] < 0.2 and np.isnan(got[2])
    np.testing.assert_allclose(got[:2], want[:2], atol=1e-6)
    with pytest.raises(ValueError, match="score must be one of"):
        reward(model, audios, captions, score="logit")


def test_best_of_n_and_rerank_by_contrastive_score(tmp_path, write_wav, capsys):
    """The two scores pick different candidates: the cosine to "A deep voice." peaks at level 1 (the clip closest to
    the caption), the contrastive score grows with how much deeper than high-pitched the clip is (level 3)."""
    import json
    from unittest import mock

    from paraspeechclap.cli import main
    from paraspeechclap.rerank import cli

    model = PitchStub()
    levels = [1.0, 3.0]
    assert best_of_n(model, lambda c, i: _clip(levels[i]), "A deep voice.", n=2).index == 0
    res = best_of_n(model, lambda c, i: _clip(levels[i]), "A deep voice.", n=2, score="contrastive")
    assert res.index == 1 and 0.5 < res.score < 1
    for i, level in enumerate((-0.3, 1.0, 3.0)):
        write_wav(tmp_path / f"c{i}.wav", level)
    manifest = tmp_path / "m.jsonl"
    rows = [{"id": "x", "caption": "A deep voice.", "candidates": ["c0.wav", "c1.wav", "c2.wav"]},
            {"id": "y", "caption": "Somebody talks.", "candidates": ["c0.wav"]}]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with mock.patch.object(cli, "load_model", lambda args: model):
        code = main(["rerank", str(manifest), "--output", str(tmp_path / "out"), "--score", "contrastive",
                     "--no-progress"])
    selection = json.loads((tmp_path / "out" / "selection.json").read_text())
    chosen = {p["id"]: p["chosen"] for p in selection["prompts"]}
    assert code == 1 and chosen["x"]["candidate"] == 2 and chosen["y"] is None  # y: no attribute to flip
    assert "contrastive adherence" in selection["score"]
    assert "names no attribute" in capsys.readouterr().err
