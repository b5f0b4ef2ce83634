"""Running suites with a stand-in model: scoring, robustness to bad audio, and the embedding cache."""
import shutil

import numpy as np
import pytest

from paraspeechclap.evaluate import metrics as M
from paraspeechclap.evaluate.classification import candidate_embeddings
from paraspeechclap.evaluate.runner import prepare_suite, run_suite
from paraspeechclap.evaluate.suites import SuiteError, resolve_suite

from eval_helpers import ToneModel, write_manifest, write_tone, TONES


def _run(model, manifest, root, candidates=None, cache_dir=None, templates=("A person is speaking in a {} style.",)):
    suite = resolve_suite(str(manifest), candidates)
    prepared = prepare_suite(suite, audio_root=str(root))
    return run_suite(model, prepared, suite.name, templates=templates, cache_dir=cache_dir, progress=False)


def test_manifest_suite_scores_retrieval_and_classification(tone_set, tone_model):
    outcome = _run(tone_model, tone_set["manifest"], tone_set["root"], ["deep", "nasal", "shrill", "calm"])
    assert outcome.ok and outcome.complete
    retrieval, classification = outcome.tasks
    assert retrieval.task.kind == "retrieval" and classification.task.kind == "classification"

    # retrieval equals the metrics computed directly from the model's embeddings
    captions = ["A person speaks in a deep voice.", "A shrill, high voice.", "Someone with a nasal tone.",
                "A person speaks in a deep voice.", "A very shrill voice.", "A deep and quiet voice."]
    assert retrieval.retrieval.captions == captions  # a list caption -> its first element
    unique, targets = M.deduplicate_captions(captions)
    assert len(retrieval.retrieval.unique_texts) == 5
    paths = [str(tone_set["root"] / "synth" / f"clip{i}.wav") for i in range(6)]
    from paraspeechclap.audio import load_audio
    audio = ToneModel().embed_audio([(load_audio(p), 16000) for p in paths])
    similarity = audio.astype(np.float64) @ ToneModel().embed_text(unique).astype(np.float64).T
    assert retrieval.metrics == pytest.approx(M.retrieval_metrics(similarity, targets))
    assert retrieval.retrieval.ids == [f"utt{i}" for i in range(6)]

    # classification: clip 5 sounds nasal but is labelled deep
    result = classification.classification
    assert result.predictions == ["deep", "shrill", "nasal", "deep", "shrill", "nasal"]
    assert classification.metrics["Classification_Accuracy"] == pytest.approx(100 * 5 / 6)
    # recalls: calm 0 (no gold items), deep 2/3, nasal 1, shrill 1
    assert classification.metrics["Classification_UAR"] == pytest.approx(100 * (0 + 2 / 3 + 1 + 1) / 4)


def test_missing_and_unreadable_audio_are_reported_and_counted(tone_set, tone_model):
    (tone_set["root"] / "synth" / "clip1.wav").unlink()
    (tone_set["root"] / "synth" / "clip2.wav").write_bytes(b"RIFF....not really a wav file")
    outcome = _run(tone_model, tone_set["manifest"], tone_set["root"], ["deep", "nasal", "shrill"])
    assert outcome.ok and not outcome.complete
    for task in outcome.tasks:
        assert (task.n_scored, task.n_total) == (4, 6)
        reasons = {s["id"]: s["reason"] for s in task.skipped}
        assert set(reasons) == {"utt1", "utt2"}
        assert "not found" in reasons["utt1"]
        assert "unreadable" in reasons["utt2"]
    # the scored items are exactly the good ones
    assert outcome.tasks[1].classification.ids == ["utt0", "utt3", "utt4", "utt5"]


def test_a_clip_the_model_rejects_is_isolated_from_its_chunk(tone_set):
    write_tone(tone_set["root"] / "synth" / "clip2.wav", TONES["nasal"], seconds=0.01)  # 160 samples
    model = ToneModel(min_samples=400)
    outcome = _run(model, tone_set["manifest"], tone_set["root"], ["deep", "nasal", "shrill"])
    for task in outcome.tasks:
        assert task.n_scored == 5
        assert [s["id"] for s in task.skipped] == ["utt2"]
        assert "shorter than the receptive field" in task.skipped[0]["reason"]


def test_gold_label_outside_candidates_fails_before_any_embedding(tone_set, tone_model):
    with pytest.raises(SuiteError, match=r"not among the candidates.*'shrill'"):
        _run(tone_model, tone_set["manifest"], tone_set["root"], ["deep", "nasal"])
    assert tone_model.clips_embedded == 0


def test_empty_set_and_absent_audio_root_fail_clearly(tmp_path, tone_set, tone_model):
    empty = tmp_path / "empty.csv"
    empty.write_text("source,relative_audio_path,classification_tag\n")
    with pytest.raises(SuiteError, match="empty"):
        _run(tone_model, empty, tone_set["root"], ["deep"])
    with pytest.raises(SuiteError, match="none of the 6 audio files exists"):
        _run(tone_model, tone_set["manifest"], tmp_path / "nowhere", ["deep", "nasal", "shrill"])


def test_cache_reuses_audio_across_runs_candidates_and_copies(tmp_path, tone_set):
    cache = tmp_path / "cache"
    first = ToneModel()
    out1 = _run(first, tone_set["manifest"], tone_set["root"], ["deep", "nasal", "shrill"], cache_dir=cache)
    assert first.clips_embedded == 6  # shared by the retrieval and classification tasks: embedded once
    assert out1.cache["embedded"] == 6

    second = ToneModel()  # same identity, fresh process-like state
    out2 = _run(second, tone_set["manifest"], tone_set["root"], ["deep", "nasal", "shrill", "calm", "angry"],
                cache_dir=cache, templates=("{} voice", "a {} speaker"))
    assert second.clips_embedded == 0 and out2.cache["embedded"] == 0
    assert out2.tasks[0].metrics == out1.tasks[0].metrics

    # same content under a new name hits; edited content misses
    shutil.copy(tone_set["root"] / "synth" / "clip0.wav", tone_set["root"] / "synth" / "copy.wav")
    write_tone(tone_set["root"] / "synth" / "clip1.wav", TONES["calm"], seconds=0.9)
    rows = tone_set["rows"] + [dict(tone_set["rows"][0], id="copy", relative_audio_path="copy.wav")]
    manifest = write_manifest(tmp_path / "more.jsonl", rows)
    third = ToneModel()
    _run(third, manifest, tone_set["root"], ["deep", "nasal", "shrill", "calm"], cache_dir=cache)
    assert third.clips_embedded == 1  # only the edited clip1

    class OtherModel(ToneModel):
        def identity(self):
            return "another-model"

    other = OtherModel()
    _run(other, tone_set["manifest"], tone_set["root"], ["deep", "nasal", "shrill"], cache_dir=cache)
    assert other.clips_embedded == 6  # a different model never sees these vectors


def test_template_averaging_is_the_normalised_mean():
    model = ToneModel()
    single = candidate_embeddings(model.embed_text, ["deep", "calm"], ["{} voice"])
    np.testing.assert_allclose(single, model.embed_text(["deep voice", "calm voice"]), atol=1e-7)
    both = candidate_embeddings(model.embed_text, ["deep", "calm"], ["{} voice", "plain {}"])
    mean = (model.embed_text(["deep voice", "calm voice"]) + model.embed_text(["plain deep", "plain calm"])) / 2
    np.testing.assert_allclose(both, mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=1e-6)
    with pytest.raises(ValueError, match="placeholder"):
        candidate_embeddings(model.embed_text, ["deep"], ["no placeholder"])
