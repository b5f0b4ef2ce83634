"""The audio-embedding cache is right or absent: keys, digests of the decoded bytes, WAL, and falling back."""
import os
import sqlite3
import time
import types
import warnings

import numpy as np
import pytest

import paraspeechclap
import paraspeechclap.audio
from paraspeechclap.evaluate import cache as cache_module
from paraspeechclap.evaluate.cache import CacheWarning, EmbeddingCache, bytes_digest, model_identity
from paraspeechclap.evaluate.runner import prepare_suite, run_suite
from paraspeechclap.evaluate.suites import resolve_suite

from eval_helpers import TONES, ToneModel, write_tone

CANDIDATES = ["deep", "nasal", "shrill", "calm"]


def _run(model, tone_set, cache_dir=None, **kwargs):
    suite = resolve_suite(str(tone_set["manifest"]), CANDIDATES)
    prepared = prepare_suite(suite, audio_root=str(tone_set["root"]))
    return run_suite(model, prepared, suite.name, cache_dir=cache_dir, progress=False, **kwargs)


def _predictions(outcome):
    return next(t for t in outcome.tasks if t.classification is not None).classification.predictions


def _cache_warnings(record):
    return [w for w in record if issubclass(w.category, CacheWarning)]


def _clip(tone_set, i):
    return tone_set["root"] / "synth" / f"clip{i}.wav"


# ------------------------------------------------------------------------------------------------ content keys
def test_file_rewritten_with_same_size_and_mtime_is_embedded_again(tmp_path, tone_set):
    cache = tmp_path / "cache"
    first = _run(ToneModel(), tone_set, cache)
    assert _predictions(first)[1] == "shrill"
    path = _clip(tone_set, 1)
    before = os.stat(path)
    write_tone(path, TONES["deep"], seconds=0.35)  # clip1's length: same size, other content
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    model = ToneModel()
    second = _run(model, tone_set, cache)
    assert model.clips_embedded == 1  # no digest is trusted by path, size or mtime
    assert _predictions(second)[1] == "deep"
    assert second.cache["hits"] >= 5


def test_the_digest_is_of_the_bytes_that_were_decoded(tmp_path, tone_set, monkeypatch):
    """A writer replaces a file while the run reads it: the vector is stored under the content it came from."""
    cache = tmp_path / "cache"
    path = _clip(tone_set, 0)
    deep_bytes = path.read_bytes()
    original = paraspeechclap.audio.load_audio
    calls = []

    def racing_load_audio(source, *args, **kwargs):
        if not calls:  # first decode: the file changes on disk after the run took its digest
            write_tone(path, TONES["shrill"], seconds=0.3)
        calls.append(source)
        return original(source, *args, **kwargs)

    monkeypatch.setattr(paraspeechclap.audio, "load_audio", racing_load_audio)
    model = ToneModel()
    first = _run(model, tone_set, cache)
    monkeypatch.setattr(paraspeechclap.audio, "load_audio", original)
    assert path.read_bytes() != deep_bytes

    key = model_identity(ToneModel())
    with EmbeddingCache(cache, key) as store:
        stored = store.get(bytes_digest(deep_bytes))
    assert stored is not None
    np.testing.assert_allclose(stored, ToneModel()._onehot(0))  # the deep clip's vector, not the shrill one
    # the retrieval task read the deep bytes; the classification task read the file again, after the change,
    # and embedded what it read (no vector is re-used by path within a run either)
    assert model.clips_embedded == 7 and _predictions(first)[0] == "shrill"

    second = _run(ToneModel(), tone_set, cache)  # the file is now shrill: a miss, embedded as shrill
    assert _predictions(second)[0] == "shrill"
    path.write_bytes(deep_bytes)
    third_model = ToneModel()
    third = _run(third_model, tone_set, cache)
    assert third_model.clips_embedded == 0 and _predictions(third)[0] == "deep"


def test_key_changes_with_code_version_package_and_preprocessing(monkeypatch):
    class Configured(ToneModel):
        def __init__(self, **config):
            super().__init__()
            self.config = types.SimpleNamespace(do_normalize=True, window_seconds=30.0, window_overlap_seconds=5.0)
            for name, value in config.items():
                setattr(self.config, name, value)

    base = model_identity(Configured())
    assert model_identity(Configured()) == base  # stable for the same model and code
    assert model_identity(Configured(window_seconds=20.0)) != base
    assert model_identity(Configured(window_overlap_seconds=2.0)) != base
    assert model_identity(Configured(do_normalize=False)) != base
    settings = cache_module.preprocessing_settings(Configured())
    assert settings["decode_sample_rate"] == 16000 and settings["window_seconds"] == 30.0
    assert settings["package_version"] == paraspeechclap.__version__

    monkeypatch.setattr(cache_module, "PREPROCESSING_VERSION", cache_module.PREPROCESSING_VERSION + 1)
    bumped = model_identity(Configured())
    assert bumped != base
    monkeypatch.setattr(paraspeechclap, "__version__", "999.0")
    assert model_identity(Configured()) not in (base, bumped)


def test_code_version_bump_re_embeds(tmp_path, tone_set, monkeypatch):
    cache = tmp_path / "cache"
    _run(ToneModel(), tone_set, cache)
    monkeypatch.setattr(cache_module, "PREPROCESSING_VERSION", cache_module.PREPROCESSING_VERSION + 1)
    model = ToneModel()
    outcome = _run(model, tone_set, cache)
    assert model.clips_embedded == 6 and outcome.cache["embedded"] == 6


def test_key_changes_with_weights_and_precision(tiny_model_factory):
    import torch

    model = tiny_model_factory()
    key = model_identity(model)
    assert model_identity(tiny_model_factory()) == key  # a fresh load of the same weights hits

    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    name = next(n for n, t in state.items() if t.is_floating_point() and t.numel() > 1)
    state[name] += 0.01
    model.load_state_dict(state)
    # model.identity() memoises its hash and load_state_dict does not reset it; the cache key must still change
    assert model_identity(model) != key

    other = tiny_model_factory()
    with torch.no_grad():
        next(p for p in other.parameters() if p.numel() > 1).mul_(1.5)
    assert model_identity(other) != key

    class Precise(ToneModel):
        precision = "fp32"

    class Half(ToneModel):
        precision = "bf16"

    assert model_identity(Precise()) != model_identity(Half())


# ------------------------------------------------------------------------------------------------ the SQLite file
def test_wal_mode_and_busy_timeout(tmp_path):
    with EmbeddingCache(tmp_path / "c", "key", busy_timeout=2.5) as store:
        assert store.journal_mode == "wal" and store.disabled is None
        assert store._db.execute("PRAGMA busy_timeout").fetchone()[0] == 2500
        store.put_many({"d": np.ones(3, dtype=np.float32)})
    check = sqlite3.connect(str(tmp_path / "c" / "embeddings.sqlite"))
    assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file
    assert check.execute("SELECT dim FROM embeddings").fetchall() == [(3,)]
    check.close()


def _reference_predictions(tone_set):
    return _predictions(_run(ToneModel(), tone_set, None))


def test_corrupt_cache_file_warns_once_and_results_are_right(tmp_path, tone_set):
    folder = tmp_path / "cache"
    folder.mkdir()
    garbage = b"this is not an SQLite database\n" * 100
    (folder / "embeddings.sqlite").write_bytes(garbage)
    expected = _reference_predictions(tone_set)
    model = ToneModel()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        outcome = _run(model, tone_set, folder)
    found = _cache_warnings(record)
    assert len(found) == 1 and "embeddings.sqlite" in str(found[0].message)
    assert outcome.ok and outcome.complete and _predictions(outcome) == expected
    assert model.clips_embedded == 6  # each clip once per run, from memory for the second task
    assert outcome.cache["disabled"] and "database" in outcome.cache["disabled"]
    assert (folder / "embeddings.sqlite").read_bytes() == garbage  # never deleted or rewritten


def test_cache_folder_that_cannot_be_created_falls_back(tmp_path, tone_set):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(CacheWarning):
        outcome = _run(ToneModel(), tone_set, blocker / "cache")
    assert outcome.complete and _predictions(outcome) == _reference_predictions(tone_set)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_cache_file_falls_back(tmp_path, tone_set):
    folder = tmp_path / "cache"
    with EmbeddingCache(folder, "other-model") as store:
        store.put_many({"x": np.ones(2, dtype=np.float32)})
    for name in os.listdir(folder):
        os.chmod(folder / name, 0o444)
    os.chmod(folder, 0o555)
    try:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            outcome = _run(ToneModel(), tone_set, folder)
        assert len(_cache_warnings(record)) == 1
        assert outcome.complete and _predictions(outcome) == _reference_predictions(tone_set)
    finally:
        os.chmod(folder, 0o755)


def test_locked_database_falls_back_within_the_busy_timeout(tmp_path, tone_set):
    folder = tmp_path / "cache"
    folder.mkdir()
    holder = sqlite3.connect(str(folder / "embeddings.sqlite"), isolation_level=None)
    holder.execute("CREATE TABLE other (x)")
    holder.execute("BEGIN EXCLUSIVE")  # rollback-journal mode: nobody else can even read
    holder.execute("INSERT INTO other VALUES (1)")
    try:
        model = ToneModel()
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            outcome = _run(model, tone_set, folder, cache_busy_timeout=0.3)
        elapsed = time.perf_counter() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert len(_cache_warnings(record)) == 1 and "locked" in str(_cache_warnings(record)[0].message)
    assert elapsed < 5.0  # gave up after the busy timeout, not the old 60 s
    assert outcome.complete and _predictions(outcome) == _reference_predictions(tone_set)
    assert model.clips_embedded == 6


def test_write_locked_wal_database_still_reads_then_falls_back(tmp_path, tone_set):
    folder = tmp_path / "cache"
    _run(ToneModel(), tone_set, folder)  # fills the cache (WAL mode)
    write_tone(_clip(tone_set, 2), TONES["calm"], seconds=0.4)  # one clip to embed and store
    holder = sqlite3.connect(str(folder / "embeddings.sqlite"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # in WAL mode: the write lock; readers go on
    try:
        model = ToneModel()
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            outcome = _run(model, tone_set, folder, cache_busy_timeout=0.3)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert len(_cache_warnings(record)) == 1
    assert model.clips_embedded == 1  # the five unchanged clips were read from the file
    assert _predictions(outcome)[2] == "calm" and outcome.complete
    assert outcome.cache["disabled"]


def test_no_cache_dir_means_memory_only(tmp_path, tone_set):
    model = ToneModel()
    outcome = _run(model, tone_set, None)
    assert model.clips_embedded == 6 and outcome.cache["folder"] is None and outcome.cache["disabled"] is None


def test_read_only_database_falls_back(tmp_path, tone_set, monkeypatch):
    """As root (where chmod does not stop writes) the read-only case is simulated by SQLite's own read-only mode."""
    folder = tmp_path / "cache"
    _run(ToneModel(), tone_set, folder)  # a valid cache holding all six clips
    write_tone(_clip(tone_set, 3), TONES["shrill"], seconds=0.45)  # one clip to embed and (try to) store
    real_connect = sqlite3.connect

    def read_only_connect(path, *args, **kwargs):
        return real_connect(f"file:{path}?mode=ro", *args, uri=True, **kwargs)

    monkeypatch.setattr(cache_module.sqlite3, "connect", read_only_connect)
    model = ToneModel()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        outcome = _run(model, tone_set, folder)
    monkeypatch.setattr(cache_module.sqlite3, "connect", real_connect)
    found = _cache_warnings(record)
    assert len(found) == 1 and "readonly" in str(found[0].message).replace("-", "").replace(" ", "")
    assert outcome.complete and _predictions(outcome)[3] == "shrill"
    assert "readonly" in outcome.cache["disabled"]
    assert model.clips_embedded == 1  # the five unchanged clips were still read from the file before the write failed
