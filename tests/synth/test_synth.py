"""Tests of the synthetic style corpus generator and its label verification (needs espeak-ng)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from paraspeechclap.synth import styles as S
from paraspeechclap.synth.verify import check_row

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (run scripts/install_synth_deps.sh)")
pytest.importorskip("parselmouth", reason="praat-parselmouth is not installed")

VOICES = ["espeak+m4", "espeak+f3", "espeak+m3", "espeak+f4"]     # m3/f4 are held-out (test only)
SPLIT_FILES = ("train.jsonl", "validation.jsonl", "test.jsonl")
REQUIRED = {"source", "relative_audio_path", "text_description", "intrinsic_tags", "situational_tags",
            "duration", "speaker", "voice", "gender", "pitch_level", "rate_level", "range_level",
            "voice_quality", "delivery", "espeak_pitch", "espeak_wpm", "measured", "verification"}


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _generate(out: Path, n: int, seed: int) -> dict:
    from paraspeechclap.synth.generate import generate_corpus
    return generate_corpus(out, num_clips=n, seed=seed, workers=2, splits=(0.5, 0.15, 0.35),
                           use_mbrola=False, progress=False, voice_names=VOICES)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (run scripts/install_synth_deps.sh)")
    out = tmp_path_factory.mktemp("synth")
    return out, _generate(out, 24, seed=3)


@needs_espeak
def test_schema_audio_and_splits(corpus):
    import soundfile as sf

    out, summary = corpus
    assert summary["generated"] == 24 and summary["render_errors"] == 0
    rows = {f: _read(out / f) for f in SPLIT_FILES}
    assert sum(len(r) for r in rows.values()) == summary["kept"] > 0
    assert summary["kept"] + summary["dropped"] == 24
    for split, rs in rows.items():
        for r in rs:
            assert REQUIRED <= set(r), REQUIRED - set(r)
            assert r["source"] == "synth"
            assert isinstance(r["text_description"], list) and 1 <= len(r["text_description"]) <= 2
            assert all(isinstance(c, str) and len(c) > 10 for c in r["text_description"])
            assert r["gender"] in r["intrinsic_tags"]
            assert set(r["situational_tags"]) & {"slow", "measured", "fast"}
            info = sf.info(str(out / "audio" / r["source"] / r["relative_audio_path"]))
            assert info.samplerate == 16000 and info.channels == 1
            assert abs(info.duration - r["duration"]) < 0.01 and 0.8 < r["duration"] < 10
            assert all(v is not False for v in r["verification"].values())   # kept => verified


@needs_espeak
def test_held_out_voices_wording_and_sentences(corpus):
    out, _ = corpus
    train = _read(out / "train.jsonl") + _read(out / "validation.jsonl")
    test = _read(out / "test.jsonl")
    assert train and test
    assert {r["voice"] for r in train} <= {"espeak+m4", "espeak+f3"}
    assert {r["voice"] for r in test} <= {"espeak+m3", "espeak+f4"}
    assert not {r["sentence"] for r in train} & {r["sentence"] for r in test}
    assert all(S.sentence_is_test(r["sentence"]) for r in test)
    test_starts = [t.split("{")[0] for t in S.CAPTION_TEMPLATES[1] if not t.startswith("{")]
    train_starts = [t.split("{")[0] for t in S.CAPTION_TEMPLATES[0] if not t.startswith("{")]
    for r in test:
        assert len(r["text_description"]) == 1
        assert not any(r["text_description"][0].startswith(s) for s in train_starts)
    for r in train:
        assert not any(c.startswith(s) for c in r["text_description"] for s in test_starts)


@needs_espeak
def test_suites_and_card(corpus):
    out, summary = corpus
    suites = json.loads((out / "suites.json").read_text())  # an `evaluate --suite` file
    assert suites["template"] == S.TAG_TEMPLATE and suites["audio_root"] == "audio"
    assert suites["retrieval"] == {"test": {"manifest": "test.jsonl"}}
    assert set(suites["classification"]) <= set(S.SUITES) and suites["classification"]
    for attr in S.SUITES:
        rows = _read(out / f"test_{attr}.jsonl")
        assert (attr in suites["classification"]) == bool(rows)  # empty suites are left out of suites.json
    for attr, s in suites["classification"].items():
        assert s["manifest"] == f"test_{attr}.jsonl" and s["candidates"] == S.SUITES[attr]["candidates"]
        for r in _read(out / s["manifest"]):
            assert r["classification_tag"] in s["candidates"]
    card = (out / "CORPUS_CARD.md").read_text()
    assert "Label verification" in card and "Loudness is not an attribute" in card
    ver = json.loads((out / "verification.json").read_text())
    assert ver["kept"] == summary["kept"] and "agreement" in ver


@needs_espeak
def test_evaluate_runs_on_the_suites_json(corpus, fixture_dir, tmp_path, capsys):
    """`paraspeechclap evaluate --suite <corpus>/suites.json` evaluates a synthesized corpus as it is."""
    from paraspeechclap.cli import main

    out, summary = corpus
    suites = json.loads((out / "suites.json").read_text())
    report = tmp_path / "report"
    argv = ["evaluate", "--suite", str(out / "suites.json"), "--out", str(report), "--no-cache", "--no-plots",
            "--model", str(fixture_dir / "checkpoint.pth.tar"), "--speech-model", str(fixture_dir / "speech"),
            "--text-model", str(fixture_dir / "text"), "--embedding-dim", "24", "--device", "cpu",
            "--precision", "fp32", "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics["tasks"]) == {"test", *suites["classification"]}
    n_test = summary["kept_per_split"]["test"]
    assert metrics["tasks"]["test"]["n_scored"] == metrics["tasks"]["test"]["n_total"] == n_test
    for attr, spec in suites["classification"].items():
        task = metrics["tasks"][attr]
        assert task["status"] == "ok" and task["n_scored"] == sum(spec["counts"].values())
        assert task["candidates"] == spec["candidates"]


@needs_espeak
def test_deterministic_for_a_seed(corpus, tmp_path):
    out, _ = corpus
    (tmp_path / "calibration.json").write_bytes((out / "calibration.json").read_bytes())
    _generate(tmp_path, 24, seed=3)
    for f in SPLIT_FILES:
        assert (tmp_path / f).read_text() == (out / f).read_text()
    first = _read(out / "train.jsonl")[0]["relative_audio_path"]
    assert (tmp_path / "audio/synth" / first).read_bytes() == (out / "audio/synth" / first).read_bytes()


@needs_espeak
def test_unchecked_neutral_range_keeps_what_the_check_drops_and_says_so(corpus, tmp_path):
    from paraspeechclap.synth.generate import generate_corpus

    out, summary = corpus
    (tmp_path / "calibration.json").write_bytes((out / "calibration.json").read_bytes())
    loose = generate_corpus(tmp_path, num_clips=24, seed=3, workers=2, splits=(0.5, 0.15, 0.35), use_mbrola=False,
                            progress=False, voice_names=VOICES, check_neutral_range=False)
    assert summary["settings"]["neutral_range_checked"] and not loose["settings"]["neutral_range_checked"]
    kept = {f: {r["relative_audio_path"]: r for r in _read(out / f)} for f in SPLIT_FILES}
    kept_loose = {f: {r["relative_audio_path"]: r for r in _read(tmp_path / f)} for f in SPLIT_FILES}
    assert all(set(kept[f]) <= set(kept_loose[f]) for f in SPLIT_FILES)  # same clips; the check only drops
    neutral = [r for f in SPLIT_FILES for r in kept[f].values()
               if r.get("range_level") == "neutral" and r["voice_quality"] == "normal"]
    assert neutral and loose["kept"] > summary["kept"]  # seed 3: 1 of 5 neutral-range clips measures in the band
    assert all(r["verification"]["range"] is True for r in neutral)
    assert all(kept_loose[f][r]["verification"]["range"] is None for f in SPLIT_FILES for r in kept[f]
               if kept[f][r].get("range_level") == "neutral")
    assert "--unchecked-neutral-range" in (tmp_path / "CORPUS_CARD.md").read_text()
    assert "--unchecked-neutral-range" not in (out / "CORPUS_CARD.md").read_text()


def _render(voice: str, pitch: int, wpm: int, quality: str = "normal", range_ssml: str | None = None,
            text: str = "The old farmer painted the red door near the station yesterday.",
            data_path=None) -> dict:
    from paraspeechclap.synth.augment import resample_jitter
    from paraspeechclap.synth.engines import build_ssml, synthesize, text_to_ssml, variant_name
    from paraspeechclap.synth.measure import measure_clip

    y, sr = synthesize("espeak", f"en-us+{variant_name(voice, quality)}",
                       build_ssml(text_to_ssml(text), range_ssml), pitch, wpm, data_path)
    return measure_clip(resample_jitter(y, sr, 1.0), 16000, syllables=S.count_syllables(text))


@needs_espeak
def test_measurements_follow_the_controls(tmp_path):
    from paraspeechclap.synth.engines import prepare_espeak_data

    data = prepare_espeak_data(tmp_path, ["m4"])
    low, high = _render("m4", 10, 170, data_path=data), _render("m4", 90, 170, data_path=data)
    assert low["f0_median_hz"] < high["f0_median_hz"] * 2 ** (-6 / 12)        # > 6 semitones apart
    slow, fast = _render("m4", 50, 100, data_path=data), _render("m4", 50, 280, data_path=data)
    assert fast["rate_syl_per_s"] > 1.8 * slow["rate_syl_per_s"]
    mono = _render("m4", 50, 170, range_ssml="10%", data_path=data)
    sing = _render("m4", 50, 170, range_ssml="200%", data_path=data)
    assert mono["f0_range_st"] < 2.0 < 3.5 < sing["f0_range_st"]
    whisper = _render("m4", 50, 170, quality="whispered", data_path=data)
    assert whisper["voiced_fraction"] < 0.12 < 0.5 < low["voiced_fraction"]
    creaky = _render("m4", 50, 170, quality="creaky", data_path=data)
    assert creaky["jitter"] > 2 * low["jitter"]


@needs_espeak
def test_corpus_labels_agree_with_measurements(corpus):
    """Across the kept clips: deep < medium < high F0 within a voice, fast > slow rate."""
    out, _ = corpus
    rows = sum((_read(out / f) for f in SPLIT_FILES), [])
    for voice in {r["voice"] for r in rows}:
        f0 = {lvl: [r["measured"]["f0_median_hz"] for r in rows
                    if r["voice"] == voice and r["pitch_level"] == lvl] for lvl in ("low", "high")}
        if f0["low"] and f0["high"]:
            assert max(f0["low"]) < min(f0["high"])
    rate = {lvl: [r["measured"]["rate_syl_per_s"] for r in rows if r["rate_level"] == lvl]
            for lvl in ("slow", "fast")}
    if rate["slow"] and rate["fast"]:
        assert max(rate["slow"]) < min(rate["fast"])
    for r in rows:
        if r["voice_quality"] == "whispered":
            assert r["measured"]["voiced_fraction"] < 0.15


def test_check_row_flags_mismatches():
    row = {"gender": "male", "pitch_level": "low", "range_level": "monotonous", "rate_level": "fast",
           "voice_quality": "normal", "delivery": "flowing"}
    good = {"f0_median_hz": 80.0, "f0_range_st": 1.0, "rate_syl_per_s": 8.0, "voiced_fraction": 0.7,
            "jitter": 0.01, "n_pauses": 0}
    assert all(ok is not False for ok, _ in check_row(row, good).values())
    bad = dict(good, f0_median_hz=140.0, f0_range_st=5.0, rate_syl_per_s=3.0, n_pauses=2)
    res = check_row(row, bad)
    assert [k for k, (ok, _) in res.items() if ok is False] == ["pitch", "range", "rate", "delivery"]
    whisper = dict(row, voice_quality="whispered", pitch_level=None, range_level=None)
    assert check_row(whisper, dict(good, voiced_fraction=0.6))["voice_quality"][0] is False
    assert check_row(whisper, dict(good, voiced_fraction=0.02))["pitch"][0] is None


def test_a_neutral_range_must_measure_between_monotonous_and_singsong_unless_unmeasurable_or_unchecked():
    row = {"gender": "male", "pitch_level": "medium", "range_level": "neutral", "rate_level": "measured",
           "voice_quality": "normal", "delivery": "flowing"}
    m = {"f0_median_hz": 110.0, "rate_syl_per_s": 5.0, "voiced_fraction": 0.7, "jitter": 0.01, "n_pauses": 0}
    spread = lambda st, r=row, **kw: check_row(r, dict(m, f0_range_st=st), **kw)["range"][0]  # noqa: E731
    assert [spread(st) for st in (1.9, 2.0, 2.1, 3.4, 3.5, 6.0)] == [False, False, True, True, False, False]
    assert spread(6.0, neutral_range=False) is None and spread(None) is False  # unchecked; no F0 to check
    creaky = dict(row, voice_quality="creaky")                                 # flutter: range unmeasurable
    assert spread(6.0, creaky) is None


def test_tags_and_captions_use_paraspeechcaps_words():
    from paraspeechclap.synth.captions import full_caption, make_spoken

    a = {"gender": "female", "pitch": "low", "rate": "slow", "range": "monotonous", "quality": "normal",
         "delivery": "hesitant", "pitch_offset_st": -5.0}
    intrinsic, situational = S.tags_for(a)
    assert {"female", "deep", "low-pitched", "monotonous", "hesitant"} <= set(intrinsic)
    assert situational == ["slow"]
    w = dict(a, quality="whispered")
    i2, s2 = S.tags_for(w)
    assert "deep" not in i2 and "whispered" in s2
    rng = np.random.default_rng(0)
    caps = {full_caption(a, False, rng) for _ in range(30)}
    assert len(caps) > 15                                      # many templates and synonyms
    sp = make_spoken("the old farmer painted the red door", "hesitant", rng)
    assert "<break" in sp.ssml_body and sp.syllables > S.count_syllables("the old farmer painted the red door")
    assert S.count_syllables("The old farmer painted the red door.") == 9


@needs_espeak
def test_verify_only_remeasures_stored_audio(corpus):
    from paraspeechclap.synth.verify import verify_corpus

    out, summary = corpus
    res = verify_corpus(out, workers=1, progress=False)
    assert res["clips"] == summary["kept"] and res["unreadable"] == 0
    assert (out / "verification_stored.json").exists()
    # stored audio carries noise and reverb; pitch and voice quality still agree on most clips
    for attr in ("pitch", "voice_quality"):
        a = res["agreement"][attr]
        assert a["checked"] == 0 or a["agreement"] >= 0.7, (attr, a)


@needs_espeak
def test_prepare_espeak_data_never_prunes_a_folder_it_did_not_copy(tmp_path):
    from paraspeechclap.synth.engines import EngineError, prepare_espeak_data

    mine = tmp_path / "espeak-ng-data" / "voices" / "!v"
    mine.mkdir(parents=True)
    (mine / "my-voice").write_text("name mine\n")
    with pytest.raises(EngineError, match="never modified"):
        prepare_espeak_data(tmp_path, ["m4"])
    assert (mine / "my-voice").read_text() == "name mine\n"
    fresh = tmp_path / "fresh"
    assert prepare_espeak_data(fresh, ["m4"]) == fresh
    assert prepare_espeak_data(fresh, ["m4"]) == fresh  # its own copy may be prepared again
    assert (fresh / "espeak-ng-data" / "voices" / "!v" / "psc_w_m4").is_file()


def test_a_pitch_ladder_differs_in_pitch_alone():
    """paraspeechclap.synth.real.clip_ladder: rungs a fixed step apart, one method, tempo and channel for all."""
    from paraspeechclap.synth.measure import measure_clip
    from paraspeechclap.synth.real import clip_ladder

    t = np.arange(int(1.5 * 16000)) / 16000
    f0 = 140 * (1 + 0.05 * np.sin(2 * np.pi * 1.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    y = sum(0.3 / k * np.sin(k * phase) for k in range(1, 8)).astype(np.float32)
    rungs = list(clip_ladder(y, np.random.default_rng(0), rungs=4, step_cents=300))
    fields = [f for _, f in rungs]
    assert [f["rung"] for f in fields] == [0, 1, 2, 3]
    assert np.allclose(np.diff([f["shift_cents"] for f in fields]), 300)
    assert len({f["method"] for f in fields}) == len({f["tempo"] for f in fields}) == 1
    assert len({json.dumps(f["channel"], sort_keys=True) for f in fields}) == 1
    measured = [measure_clip(z, 16000, voice_quality=False)["f0_median_hz"] for z, _ in rungs]
    steps = 1200 * np.diff(np.log2(measured))
    assert np.all(np.abs(steps - 300) < 60), steps
