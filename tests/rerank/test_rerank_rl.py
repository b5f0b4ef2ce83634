"""RL adapters (paraspeechclap.rerank.rl): the TRL-style reward function, veRL's compute_score and the HTTP client,
in process with the reference-tiny model and over HTTP against a stand-in /v1/reward server on 127.0.0.1."""
from __future__ import annotations

import base64
import importlib.util
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from paraspeechclap.rerank import reward
from paraspeechclap.rerank.rl import (ParaSpeechCLAPReward, RewardClient, RewardServiceError, compute_score,
                                      compute_score_batch, score_items)

CAPTIONS = ["A deep voice speaking slowly.", "A whispered voice.", "A high-pitched voice talking fast."]


def _tone(freq: float, seconds: float, sr: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture
def clips(tmp_path):
    """Five usable completions of every accepted kind: paths, file bytes, (array, sr) at 24 kHz, a dict."""
    paths = []
    for k, freq in enumerate([110.0, 220.0, 330.0]):
        path = tmp_path / f"clip{k}.wav"
        sf.write(path, _tone(freq, 1.0 + 0.2 * k, 16000, k), 16000)
        paths.append(path)
    wave24 = _tone(180.0, 1.1, 24000, 7)
    return [str(paths[0]), paths[1].read_bytes(), (wave24, 24000), {"audio": str(paths[2])}, paths[1]]


def _resolved(clips):
    """What reward() takes for the same clips."""
    return [clips[0], clips[1], clips[2], clips[3]["audio"], str(clips[4])]


# ------------------------------------------------------------------ in process

def test_in_process_rewards_equal_reward_cosines(tiny_model, clips):
    captions = [CAPTIONS[i % 3] for i in range(len(clips))]
    fn = ParaSpeechCLAPReward(model=tiny_model)
    got = fn(prompts=["say hi"] * len(clips), completions=clips, completion_ids=None, caption=captions, trainer_state=None)
    expected = reward(tiny_model, _resolved(clips), captions)
    assert all(isinstance(r, float) for r in got)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert fn.__name__ == "paraspeechclap"  # TRL logs each reward function by __name__
    assert [c["cosine"] for c in fn.last_components] == pytest.approx(got)
    assert fn.last_provenance["model"] and fn.last_provenance["precision"] == "fp32"


def test_logit_shaping_and_captions_from_prompts(tiny_model, clips):
    captions = [CAPTIONS[i % 3] for i in range(len(clips))]
    cos = ParaSpeechCLAPReward(model=tiny_model)(prompts=None, completions=clips, caption=captions)
    # captions from the prompts (conversational prompts: the last message's content)
    prompts = [[{"role": "user", "content": c}] for c in captions]
    logit = ParaSpeechCLAPReward(model=tiny_model, shaping="logit", caption_column=None)(prompts=prompts, completions=clips)
    np.testing.assert_allclose(logit, np.float32(tiny_model.logit_scale * np.asarray(cos, np.float64)), rtol=1e-6)
    with pytest.raises(KeyError, match="caption"):
        ParaSpeechCLAPReward(model=tiny_model)(prompts=captions, completions=clips)


def test_contrastive_shaping_is_the_benchmark_score(tiny_model, clips):
    """shaping="contrastive" gives reward(score="contrastive"), the style-adherence benchmark's score."""
    captions = [CAPTIONS[i % 3] for i in range(len(clips))]
    got = ParaSpeechCLAPReward(model=tiny_model, shaping="contrastive")(prompts=None, completions=clips, caption=captions)
    expected = reward(tiny_model, _resolved(clips), captions, score="contrastive")
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert all(0.0 <= r <= 1.0 for r in got)


def test_group_norm_per_prompt(tiny_model, clips):
    captions = [CAPTIONS[0]] * 3 + [CAPTIONS[1]] * 2
    prompts = ["p1", "p1", "p1", "p2", "p2"]
    cos = np.asarray(ParaSpeechCLAPReward(model=tiny_model)(prompts=prompts, completions=clips, caption=captions))
    got = ParaSpeechCLAPReward(model=tiny_model, shaping="group_norm")(prompts=prompts, completions=clips, caption=captions)
    for rows in ([0, 1, 2], [3, 4]):
        c = cos[rows].astype(np.float64)
        np.testing.assert_allclose(np.asarray(got)[rows], (c - c.mean()) / (c.std() + 1e-6), rtol=1e-4, atol=1e-5)
    # an explicit group column overrides the prompts; a group of one gets 0
    got = ParaSpeechCLAPReward(model=tiny_model, shaping="group_norm", group_column="g")(
        prompts=prompts, completions=clips, caption=captions, g=[1, 1, 1, 1, 2])
    assert got[4] == 0.0 and sum(got[:4]) == pytest.approx(0.0, abs=1e-4)


def test_guard_zeroes_or_penalises(tiny_model, clips):
    captions = [CAPTIONS[0]] * len(clips)
    seen = []

    def guard(audio, caption):  # a stand-in for a WER / quality gate: rejects completion 1 (the bytes)
        seen.append(caption)
        ok = not isinstance(audio, bytes)
        return ok, {"wer": 0.1 if ok else 0.9}

    plain = ParaSpeechCLAPReward(model=tiny_model)(completions=clips, caption=captions)
    fn = ParaSpeechCLAPReward(model=tiny_model, guard=guard)
    got = fn(completions=clips, caption=captions)
    assert got[1] == 0.0 and len(seen) == len(clips)
    # (approx: the engine's float32 sums depend on which clips share a batch, and the rejected clip is not embedded)
    np.testing.assert_allclose([got[i] for i in (0, 2, 3, 4)], [plain[i] for i in (0, 2, 3, 4)], atol=1e-6)
    assert fn.last_components[1] == {"guard": {"ok": False, "info": {"wer": 0.9}}}  # not scored at all
    assert fn.last_components[0]["guard"] == {"ok": True, "info": {"wer": 0.1}} and "cosine" in fn.last_components[0]
    fn = ParaSpeechCLAPReward(model=tiny_model, guard=guard, guard_penalty=0.5)
    got = fn(completions=clips, caption=captions)
    assert got[1] == pytest.approx(plain[1] - 0.5, abs=1e-6)
    assert fn.last_components[1]["reward_before_guard"] == pytest.approx(plain[1])
    # group_norm: a zeroed item stays out of its group's statistics
    groups = ["a"] * len(clips)
    normed = ParaSpeechCLAPReward(model=tiny_model, guard=guard, shaping="group_norm", group_column="g")(
        completions=clips, caption=captions, g=groups)
    others = np.asarray([plain[i] for i in (0, 2, 3, 4)], np.float64)
    np.testing.assert_allclose([normed[i] for i in (0, 2, 3, 4)], (others - others.mean()) / (others.std() + 1e-6),
                               rtol=1e-4, atol=1e-5)
    assert normed[1] == 0.0

    def broken(audio, caption):
        raise RuntimeError("ASR down")

    assert ParaSpeechCLAPReward(model=tiny_model, guard=broken)(completions=clips[:1], caption=captions[:1]) == [None]


def test_bad_items_are_none_with_a_warning(tiny_model, clips, tmp_path, caplog):
    bad = [str(tmp_path / "missing.wav"), b"not audio at all", 42, {"text": "no audio"}, (np.zeros(0, np.float32), 16000)]
    completions = [clips[0], *bad, clips[2]]
    captions = [CAPTIONS[0]] * len(completions)
    with caplog.at_level(logging.WARNING, logger="paraspeechclap.rerank.rl"):
        got = ParaSpeechCLAPReward(model=tiny_model)(completions=completions, caption=captions)
    assert got[1:6] == [None] * 5
    np.testing.assert_allclose([got[0], got[6]], reward(tiny_model, [clips[0], clips[2]], CAPTIONS[0]), atol=1e-6)
    assert "5 of 7 completions could not be scored" in caplog.text
    # an empty caption fails its item only
    got = ParaSpeechCLAPReward(model=tiny_model)(completions=clips[:2], caption=["", CAPTIONS[0]])
    assert got[0] is None and isinstance(got[1], float)


def test_to_audio_hook_and_bare_arrays(tiny_model, clips):
    wave, sr = clips[2]
    fn = ParaSpeechCLAPReward(model=tiny_model, sample_rate=sr, to_audio=lambda comps, ids: [wave if c == "ok" else None
                                                                                              for c in comps])
    got = fn(completions=["ok", "broken"], completion_ids=[[1], [2]], caption=[CAPTIONS[0]] * 2)
    assert got[1] is None
    assert got[0] == pytest.approx(float(reward(tiny_model, [(wave, sr)], CAPTIONS[0])[0]), abs=1e-6)


# ------------------------------------------------------------------ over HTTP (a stand-in for `paraspeechclap serve`)

class StandIn:
    """/v1/reward on 127.0.0.1 with the in-process computation; the first ``busy`` requests get 429."""

    def __init__(self, model, busy: int = 0, retry_after: str = "2"):
        self.model, self.busy, self.retry_after = model, busy, retry_after
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                standin.headers.append(dict(self.headers))
                if self.path != "/v1/reward":
                    return self._send(404, {"error": "not found"})
                if standin.busy > 0:
                    standin.busy -= 1
                    return self._send(429, {"error": "busy"}, {"Retry-After": standin.retry_after})
                doc = json.loads(body)
                standin.requests.append(doc)
                audios = [base64.b64decode(it["audio"]["base64"]) if "base64" in it["audio"] else it["audio"]["path"]
                          for it in doc["items"]]
                groups = [it["group"] for it in doc["items"]] if doc.get("shaping") == "group_norm" else None
                result = score_items(standin.model, audios, [it["caption"] for it in doc["items"]], groups,
                                     doc.get("shaping", "cosine"))
                self._send(200, {"rewards": result.rewards, "components": result.components, "errors": result.errors,
                                 "provenance": result.provenance})

            def _send(self, code, doc, headers=None):
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def standin(tiny_model):
    server = StandIn(tiny_model)
    yield server
    server.close()


def _client(url, **kw):
    client = RewardClient(url, **kw)
    client.waits = []
    client.sleep = client.waits.append  # no real waiting in tests
    return client


@pytest.mark.parametrize("shaping", ["cosine", "logit", "group_norm", "contrastive"])
def test_http_client_gives_identical_numbers(tiny_model, standin, clips, tmp_path, shaping):
    completions = [*clips, str(tmp_path / "missing.wav"), b"garbage"]
    captions = [CAPTIONS[i % 3] for i in range(len(completions))]
    prompts = ["p1", "p1", "p2", "p2", "p2", "p1", "p2"]
    local = ParaSpeechCLAPReward(model=tiny_model, shaping=shaping)
    remote = ParaSpeechCLAPReward(client=_client(standin.url, token="s3cret"), shaping=shaping)
    want = local(prompts=prompts, completions=completions, caption=captions)
    got = remote(prompts=prompts, completions=completions, caption=captions)
    assert got == want  # exactly the same floats, None for the same failed items
    assert got[5] is None and got[6] is None and all(isinstance(r, float) for r in got[:5])
    assert remote.last_components[:5] == local.last_components[:5]
    assert remote.last_provenance == local.last_provenance
    sent = standin.requests[-1]
    assert sent["shaping"] == shaping and len(sent["items"]) == 6  # the unreadable path never left the client
    assert all(set(it["audio"]) == {"base64"} for it in sent["items"])
    assert ("group" in sent["items"][0]) == (shaping == "group_norm")
    assert standin.headers[-1]["Authorization"] == "Bearer s3cret"


def test_http_429_is_retried_after_retry_after(tiny_model, clips):
    server = StandIn(tiny_model, busy=1, retry_after="2")
    try:
        client = _client(server.url)
        captions = [CAPTIONS[0]] * len(clips)
        got = ParaSpeechCLAPReward(client=client)(completions=clips, caption=captions)
        assert got == ParaSpeechCLAPReward(model=tiny_model)(completions=clips, caption=captions)
        assert client.waits == [2.0] and len(server.headers) == 2
        server.busy = 10
        client = _client(server.url, retries=3, backoff=0.5)
        server.retry_after = ""  # no usable Retry-After: exponential backoff
        with pytest.raises(RewardServiceError, match="429") as err:
            client.score(clips[:1], captions[:1])
        assert err.value.status == 429 and client.waits == [0.5, 1.0, 2.0]
    finally:
        server.close()


def test_http_batches_are_split_keeping_groups_whole(tiny_model, standin, clips):
    captions = [CAPTIONS[0]] * 3 + [CAPTIONS[1]] * 2
    prompts = ["p1", "p1", "p1", "p2", "p2"]
    want = ParaSpeechCLAPReward(model=tiny_model, shaping="group_norm")(prompts=prompts, completions=clips, caption=captions)
    remote = ParaSpeechCLAPReward(client=_client(standin.url, max_items=3), shaping="group_norm")
    got = remote(prompts=prompts, completions=clips, caption=captions)
    np.testing.assert_allclose(got, want, atol=1e-4)  # other batches: float32 sums differ in the last digits
    assert [[it["group"] for it in r["items"]] for r in standin.requests] == [["p1"] * 3, ["p2"] * 2]
    with pytest.raises(ValueError, match="over the service's 2 per request"):
        ParaSpeechCLAPReward(client=_client(standin.url, max_items=2), shaping="group_norm")(
            prompts=prompts, completions=clips, caption=captions)
    cos = ParaSpeechCLAPReward(client=_client(standin.url, max_items=2))(completions=clips, caption=captions)
    assert [len(r["items"]) for r in standin.requests[-3:]] == [2, 2, 1]
    np.testing.assert_allclose(cos, reward(tiny_model, _resolved(clips), captions), atol=1e-6)


def test_http_paths_and_unreachable(tiny_model, standin, clips):
    client = _client(standin.url, send_paths=True)
    got = ParaSpeechCLAPReward(client=client)(completions=[clips[0]], caption=[CAPTIONS[0]])
    assert standin.requests[-1]["items"][0]["audio"] == {"path": str(Path(clips[0]).resolve())}
    assert got == ParaSpeechCLAPReward(model=tiny_model)(completions=[clips[0]], caption=[CAPTIONS[0]])
    with pytest.raises(RewardServiceError):  # transport failures are raised, not turned into missing rewards
        _client("http://127.0.0.1:9", timeout=5).score(clips[:1], CAPTIONS[:1])


# ------------------------------------------------------------------ veRL

def test_verl_compute_score(tiny_model, standin, clips):
    path, caption = clips[0], CAPTIONS[0]
    expected = float(reward(tiny_model, [path], caption)[0])
    score = compute_score("paraspeechcaps", path, caption, {"index": 0}, model=tiny_model)
    assert isinstance(score, float) and score == pytest.approx(expected, abs=1e-6)
    assert compute_score("paraspeechcaps", path, caption, url=standin.url) == score
    detail = compute_score("paraspeechcaps", clips[1], caption, None, model=tiny_model, return_dict=True, shaping="logit")
    assert set(detail) == {"score", "cosine", "logit", "guard_ok", "failed"} and detail["failed"] == 0.0
    assert detail["score"] == pytest.approx(detail["logit"], rel=1e-6)
    failed = compute_score("paraspeechcaps", "/nonexistent.wav", caption, model=tiny_model, return_dict=True,
                           failure_score=-1.0)
    assert failed["score"] == -1.0 and failed["failed"] == 1.0 and set(failed) == set(detail)
    with pytest.raises(ValueError, match="adv_estimator=grpo"):
        compute_score("x", path, caption, model=tiny_model, shaping="group_norm")
    # veRL hands over the decoded text: by default a path (whitespace around it ignored)
    assert compute_score("d", f"  {path}\n", caption, model=tiny_model) == score
    # the batch form (veRL's batch reward manager), group_norm by (data_source, caption) or extra_info["group"]
    sols = [clips[0], clips[1], clips[3]["audio"], clips[4]]
    gts = [CAPTIONS[0], CAPTIONS[0], CAPTIONS[1], CAPTIONS[1]]
    local = compute_score_batch(["d"] * 4, sols, gts, [None, {}, {"group": 1}, {"group": 1}], model=tiny_model,
                                shaping="group_norm")
    remote = compute_score_batch(["d"] * 4, sols, gts, [None, {}, {"group": 1}, {"group": 1}], url=standin.url,
                                 shaping="group_norm")
    assert local == remote and local[0] == pytest.approx(-local[1]) and local[2] == pytest.approx(-local[3])


def test_verl_loads_the_module_by_file_path(tiny_model, clips, monkeypatch):
    """veRL imports custom_reward_function.path with spec_from_file_location: rl.py must work loaded that way."""
    import paraspeechclap.rerank.rl as rl

    spec = importlib.util.spec_from_file_location("custom_module", rl.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "_SCORERS", {})
    score = module.compute_score("d", clips[0], CAPTIONS[0], model=tiny_model)
    assert score == pytest.approx(float(reward(tiny_model, [clips[0]], CAPTIONS[0])[0]), abs=1e-6)


def test_verl_to_audio_hook_by_reference(tiny_model, clips, tmp_path):
    """The hook veRL's reward_kwargs can name: 'file.py:function' or 'module:function', called as to_audio([text], None)."""
    wave, sr = clips[2]
    np.save(tmp_path / "wave.npy", wave)
    hooks = tmp_path / "hooks.py"
    hooks.write_text("import numpy as np\n"
                     f"WAVE = np.load({str(tmp_path / 'wave.npy')!r})\n"
                     "def speech(completions, completion_ids):\n"
                     f"    return [(WAVE, {sr}) if text.strip() == 'tokens' else None for text in completions]\n")
    expected = float(reward(tiny_model, [(wave, sr)], CAPTIONS[1])[0])
    got = compute_score("d", "tokens", CAPTIONS[1], model=tiny_model, to_audio=f"{hooks}:speech", return_dict=True)
    assert got["score"] == pytest.approx(expected, abs=1e-6) and got["failed"] == 0.0
    assert compute_score("d", "other", CAPTIONS[1], model=tiny_model, to_audio=f"{hooks}:speech",
                         return_dict=True)["failed"] == 1.0  # the hook's None fails the item
    assert compute_score("d", "tokens", CAPTIONS[1], model=tiny_model,
                         to_audio=lambda texts, ids: [(wave, sr)] * len(texts)) == pytest.approx(expected, abs=1e-6)
    for bad, message in [(f"{tmp_path / 'none.py'}:speech", "file not found"), (f"{hooks}:nothing", "no function"),
                         ("speech", "module:function")]:
        with pytest.raises(ValueError, match=message):
            compute_score("d", "tokens", CAPTIONS[1], model=tiny_model, to_audio=bad)


def test_concurrent_calls_share_one_model(tiny_model, clips):
    """veRL's reward loop runs compute_score in executor threads: concurrent calls give the sequential answers."""
    from concurrent.futures import ThreadPoolExecutor

    paths = [clips[0], str(clips[4]), clips[3]["audio"]] * 4
    want = [compute_score("d", p, CAPTIONS[i % 3], model=tiny_model) for i, p in enumerate(paths)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda a: compute_score("d", a[1], CAPTIONS[a[0] % 3], model=tiny_model), enumerate(paths)))
    np.testing.assert_allclose(got, want, atol=1e-6)
