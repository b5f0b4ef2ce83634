"""Reward adapters for RL training loops: a TRL-style reward function, a veRL ``compute_score`` and an HTTP client.

Every adapter scores through one of two backends that give the same numbers:

* **in-process**: a loaded model (or a model name) -> :func:`score_items` (the project's bulk loop
  :func:`paraspeechclap.inference.embed_items`, then :func:`paraspeechclap.rerank.shaping.shape_rewards`);
* **over HTTP**: :class:`RewardClient` -> a ``paraspeechclap serve`` instance's ``POST /v1/reward``.

Request: ``{"items": [{"audio": {"base64": ...} | {"path": ...}, "caption": ..., "group": ...}], "shaping": ...}``;
response: ``{"rewards": [float | null], "components": [dict | null], "errors": [null | str], "provenance": {...}}``;
429 is retried after ``Retry-After`` (a bounded number of times).

Audio accepted as a completion (:func:`resolve_audio`): a path (``str`` / ``os.PathLike``), the bytes of an audio
file, an ``(array, sample_rate)`` pair, a bare array or tensor (with ``sample_rate=`` given), a dict holding one of
those under ``audio_key`` (default ``"audio"``), a datasets-style ``{"array": ..., "sampling_rate": ...}`` or
``{"bytes": ..., "path": ...}`` dict, or a conversational completion (a list of messages) whose last message's
``content`` is one of the above. Anything else fails that item only.

This module uses absolute imports only, so veRL can load it by file path (``custom_reward_function.path``).
"""
from __future__ import annotations

import base64
import email.utils
import io
import json
import logging
import math
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from paraspeechclap.modelspec import ModelSpec
from paraspeechclap.rerank.shaping import SHAPINGS, shape_rewards

__all__ = ["ParaSpeechCLAPReward", "RewardClient", "RewardServiceError", "RewardResult", "score_items",
           "resolve_audio", "compute_score", "compute_score_batch", "load_hook"]

log = logging.getLogger(__name__)

Guard = Callable[[Any, str], "tuple[bool, Any]"]


class RewardServiceError(RuntimeError):
    """The reward service could not be reached, refused the request, or answered outside the contract."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class RewardResult:
    """What a backend returns for a batch: one reward (None when the item failed), components and error per item."""

    def __init__(self, rewards: list, components: list, errors: list, provenance: dict | None = None):
        self.rewards, self.components, self.errors = rewards, components, errors
        self.provenance = provenance or {}

    def __repr__(self) -> str:
        return f"RewardResult(rewards={self.rewards!r}, errors={self.errors!r})"


# ------------------------------------------------------------------ audio inputs

def resolve_audio(value: Any, audio_key: str = "audio", sample_rate: int | None = None) -> Any:
    """One completion -> a path, bytes or an ``(float32 array, sample_rate)`` pair; raises TypeError/ValueError."""
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, tuple) and len(value) == 2 and not isinstance(value[0], (str, bytes)):
        array, rate = value
        return _as_array(array), _as_rate(rate)
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):  # conversational completion
        return resolve_audio(value[-1].get("content"), audio_key, sample_rate)
    if isinstance(value, dict):
        if audio_key in value:
            return resolve_audio(value[audio_key], audio_key, sample_rate)
        if "array" in value:
            rate = value.get("sampling_rate", value.get("sample_rate", sample_rate))
            if rate is None:
                raise ValueError("an audio dict with 'array' needs 'sampling_rate'")
            return _as_array(value["array"]), _as_rate(rate)
        if value.get("bytes") is not None:
            return bytes(value["bytes"])
        if value.get("path") is not None:
            return os.fspath(value["path"])
        raise ValueError(f"an audio dict needs {audio_key!r}, 'array' + 'sampling_rate', 'bytes' or 'path'; "
                         f"got keys {sorted(map(str, value))}")
    if (hasattr(value, "shape") and hasattr(value, "dtype")) or hasattr(value, "detach"):
        if sample_rate is None:
            raise ValueError("a bare array needs sample_rate= (or give an (array, sample_rate) pair)")
        return _as_array(value), _as_rate(sample_rate)
    raise TypeError(f"cannot use a {type(value).__name__} as audio (give a path, bytes, (array, sample_rate) or a dict "
                    f"with {audio_key!r})")


def _as_array(array: Any) -> np.ndarray:
    if hasattr(array, "detach"):  # torch tensor
        array = array.detach().to("cpu").float().numpy()
    return np.asarray(array, dtype=np.float32)


def _as_rate(rate: Any) -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or int(rate) <= 0:
        raise ValueError(f"sample rate must be a positive integer, got {rate!r}")
    return int(rate)


def _group_label(group: Any) -> str:
    """Groups travel as strings (the service's contract); the in-process backend uses the same labels."""
    if isinstance(group, str):
        return group
    return json.dumps(group, sort_keys=True, default=str, ensure_ascii=False)


# ------------------------------------------------------------------ in-process backend

def score_items(model: Any, audios: Sequence[Any], captions: Sequence[str], groups: Sequence[Any] | None = None,
                shaping: str = "cosine", batch_size: int | None = None) -> RewardResult:
    """The ``/v1/reward`` computation in process: cosine of each audio with its caption, shaped.

    Audio goes through the bulk loop (one bad input costs only itself); each distinct caption is embedded once.
    A failed item has reward None, components None and an error, and is left out of its group's statistics.
    """
    from paraspeechclap.inference import embed_items
    from paraspeechclap.rerank.reward import caption_embeddings

    if shaping not in SHAPINGS:
        raise ValueError(f"shaping must be one of {SHAPINGS}, got {shaping!r}")
    n = len(audios)
    if len(captions) != n or (groups is not None and len(groups) != n):
        raise ValueError(f"{n} audios, {len(captions)} captions, {len(groups or ())} groups: lengths differ")
    if shaping == "group_norm" and groups is None:
        raise ValueError("group_norm shaping needs a group per item (e.g. the prompt it was sampled for)")
    scale = getattr(model, "logit_scale", None)
    if shaping == "logit" and scale is None:
        raise ValueError("logit shaping needs a model with a logit_scale")
    errors: list[str | None] = [None] * n
    for i, caption in enumerate(captions):
        if not isinstance(caption, str) or not caption.strip():
            errors[i] = f"caption must be a non-empty string, got {caption!r}"
    usable = [i for i in range(n) if errors[i] is None]
    cos = np.full(n, np.nan, dtype=np.float32)
    embeddings: dict[int, np.ndarray] = {}
    for result in embed_items(model, [audios[i] for i in usable], batch_size=batch_size):
        if result.ok:
            embeddings[usable[result.index]] = np.asarray(result.embedding, np.float32)
        else:
            errors[usable[result.index]] = result.error
    good = sorted(embeddings)
    if good:  # the captions of the clips that embedded, each distinct one once, in order of first use (as the service)
        text_emb, rows = caption_embeddings(model, [captions[i] for i in good])
        for k, i in enumerate(good):
            cos[i] = np.float32(text_emb[rows[k]] @ embeddings[i])
    labels = None if groups is None else [_group_label(g) for g in groups]
    contrast = None
    if shaping == "contrastive":  # the benchmark's score, from the one function that computes it (absolute import:
        from paraspeechclap.ttseval.contrastive import contrastive_scores  # veRL loads this file by path)

        audio = np.full((n, len(next(iter(embeddings.values()))) if embeddings else 1), np.nan, np.float32)
        for i, embedding in embeddings.items():
            audio[i] = embedding
        contrast = contrastive_scores(model, audio, [c if isinstance(c, str) else "" for c in captions])
    shaped, components = shape_rewards(cos, float(scale) if scale is not None else 1.0, shaping, labels,
                                       contrast=contrast)
    rewards: list[float | None] = []
    out_components: list[dict | None] = []
    for i in range(n):
        if errors[i] is not None or not np.isfinite(shaped[i]):
            errors[i] = errors[i] or components[i].get("contrastive_problem") or "no finite reward"
            rewards.append(None)
            out_components.append(None)
            continue
        if scale is None:
            components[i].pop("logit", None)
        rewards.append(float(shaped[i]))
        out_components.append(components[i])
    provenance = model.provenance() if callable(getattr(model, "provenance", None)) else {}
    return RewardResult(rewards, out_components, errors, provenance)


# ------------------------------------------------------------------ HTTP backend

class RewardClient:
    """A client of a reward service's ``POST {base_url}/v1/reward`` (standard library only).

    ``token``: sent as ``Authorization: Bearer <token>``. ``timeout``: seconds per request. A 429 is retried after
    its ``Retry-After`` (seconds or an HTTP date; ``backoff`` seconds when absent, each wait capped at
    ``max_wait``), at most ``retries`` times; then :class:`RewardServiceError`. Paths are sent as file bytes
    (base64) unless ``send_paths`` (the server then reads them: only for a shared file system). Arrays are decoded
    here to 16 kHz mono float32 (the model's input) and sent as a float WAV, so the server sees exactly the
    waveform the in-process backend embeds. A batch is sent in requests of at most ``max_items`` items (the
    service's per-request limit, 128 by default); with ``group_norm`` a group is never split across requests.
    """

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 120.0, retries: int = 5,
                 backoff: float = 1.0, max_wait: float = 60.0, send_paths: bool = False, max_items: int = 128):
        self.base_url = base_url.rstrip("/")
        self.max_items = max_items
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.send_paths = send_paths
        self.sleep: Callable[[float], None] = time.sleep

    def __repr__(self) -> str:
        return f"RewardClient({self.base_url!r})"

    # -- payload
    def encode_audio(self, audio: Any) -> dict:
        """One resolved audio -> the contract's ``{"base64": ...}`` or ``{"path": ...}``; raises on unusable audio."""
        if isinstance(audio, str):
            from paraspeechclap.audio import AudioError

            if not Path(audio).is_file():  # the in-process backend's words for it
                raise AudioError(audio, "is a directory, not an audio file" if Path(audio).is_dir() else "file not found")
            if self.send_paths:
                return {"path": str(Path(audio).resolve())}
            data = Path(audio).read_bytes()
        elif isinstance(audio, bytes):
            data = audio
        elif isinstance(audio, tuple):
            import soundfile as sf

            from paraspeechclap.audio import TARGET_SAMPLE_RATE, load_audio

            wave = load_audio(audio, TARGET_SAMPLE_RATE)
            buffer = io.BytesIO()
            sf.write(buffer, wave, TARGET_SAMPLE_RATE, format="WAV", subtype="FLOAT")
            data = buffer.getvalue()
        else:
            raise TypeError(f"cannot send a {type(audio).__name__} as audio")
        return {"base64": base64.b64encode(data).decode("ascii")}

    # -- transport
    def post(self, payload: dict) -> dict:
        """POST ``payload`` to /v1/reward; returns the decoded JSON answer (429 retried, other errors raised)."""
        body = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = f"{self.base_url}/v1/reward"
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    answer = response.read()
                break
            except urllib.error.HTTPError as err:
                detail = err.read()[:500].decode("utf-8", "replace")
                if err.code == 429 and attempt < self.retries:
                    wait = self._retry_after(err.headers.get("Retry-After"), attempt)
                    log.warning("reward service %s: 429 (busy); retrying in %.1f s (%d/%d)", self.base_url, wait,
                                attempt + 1, self.retries)
                    self.sleep(wait)
                    continue
                raise RewardServiceError(f"{url}: HTTP {err.code}: {detail}", status=err.code) from None
            except (urllib.error.URLError, OSError) as err:
                raise RewardServiceError(f"{url}: {getattr(err, 'reason', err)}") from None
        try:
            doc = json.loads(answer)
        except ValueError:
            raise RewardServiceError(f"{url}: the answer is not JSON: {answer[:200]!r}") from None
        if not isinstance(doc, dict):
            raise RewardServiceError(f"{url}: the answer is not a JSON object")
        return doc

    def _retry_after(self, value: str | None, attempt: int) -> float:
        wait = None
        if value:
            try:
                wait = float(value)
            except ValueError:
                try:
                    when = email.utils.parsedate_to_datetime(value)
                    wait = when.timestamp() - time.time()
                except (TypeError, ValueError):
                    wait = None
        if wait is None or not math.isfinite(wait):
            wait = self.backoff * (2 ** attempt)
        return float(min(max(wait, 0.0), self.max_wait))

    # -- the batch call
    def score(self, audios: Sequence[Any], captions: Sequence[str], groups: Sequence[Any] | None = None,
              shaping: str = "cosine") -> RewardResult:
        """Score resolved audios against captions through the service; same shape of answer as :func:`score_items`.

        An item that cannot be encoded here (unreadable file, bad array) fails locally and is not sent; the
        service's own per-item errors come back as they are.
        """
        if shaping not in SHAPINGS:
            raise ValueError(f"shaping must be one of {SHAPINGS}, got {shaping!r}")
        n = len(audios)
        if shaping == "group_norm" and groups is None:
            raise ValueError("group_norm shaping needs a group per item (e.g. the prompt it was sampled for)")
        rewards: list[float | None] = [None] * n
        components: list[dict | None] = [None] * n
        errors: list[str | None] = [None] * n
        items, sent = [], []
        for i in range(n):
            try:
                item = {"audio": self.encode_audio(audios[i]), "caption": captions[i]}
            except Exception as err:  # noqa: BLE001 - one bad input costs only itself
                errors[i] = str(getattr(err, "problem", None) or f"{type(err).__name__}: {err}")
                continue
            if groups is not None:
                item["group"] = _group_label(groups[i])
            items.append(item)
            sent.append(i)
        provenance: dict = {}
        for chunk in self._chunks(sent, items, shaping == "group_norm"):
            part = [items[k] for k in chunk]
            doc = self.post({"items": part, "shaping": shaping})
            got = [doc.get(key) for key in ("rewards", "components", "errors")]
            if not all(isinstance(v, list) and len(v) == len(part) for v in got):
                raise RewardServiceError(f"{self.base_url}: the answer needs rewards, components and errors with one "
                                         f"entry per item ({len(part)})")
            for j, k in enumerate(chunk):
                i, (value, comp, error) = sent[k], (got[0][j], got[1][j], got[2][j])
                if error is None and isinstance(value, (int, float)) and math.isfinite(value):
                    rewards[i], components[i] = float(value), comp if isinstance(comp, dict) else None
                else:
                    errors[i] = str(error) if error is not None else "the service returned no reward"
            if isinstance(doc.get("provenance"), dict):
                provenance = doc["provenance"]
        return RewardResult(rewards, components, errors, provenance)

    def _chunks(self, sent: list[int], items: list[dict], whole_groups: bool) -> list[list[int]]:
        """Positions in ``items`` per request: at most max_items each, and (group_norm) whole groups together."""
        limit = max(1, int(self.max_items))
        if not whole_groups:
            return [list(range(start, min(start + limit, len(items)))) for start in range(0, len(items), limit)]
        members: dict[str, list[int]] = {}
        for k, item in enumerate(items):
            members.setdefault(item["group"], []).append(k)
        chunks: list[list[int]] = [[]]
        for group, ks in members.items():
            if len(ks) > limit:
                raise ValueError(f"group {group!r} has {len(ks)} items, over the service's {limit} per request")
            if len(chunks[-1]) + len(ks) > limit:
                chunks.append([])
            chunks[-1].extend(ks)
        return [sorted(chunk) for chunk in chunks if chunk]


# ------------------------------------------------------------------ the adapter

class ParaSpeechCLAPReward:
    """A reward function for RL loops: ``reward(prompts, completions, **columns) -> list[float | None]``.

    It follows TRL's ``GRPOTrainer(reward_funcs=[...])`` convention: called with ``prompts``, ``completions``,
    ``completion_ids`` and every dataset column as keyword arguments; returns one float per completion, None for
    a completion that could not be scored (TRL treats None as missing), each failure logged as a warning.

    Backend: ``model`` (a loaded model, a :class:`paraspeechclap.modelspec.ModelSpec`, or a name/path loaded as
    ``ModelSpec(model, device=device, precision=precision)``) or ``client`` (a :class:`RewardClient` or a base URL;
    ``token`` / ``timeout`` for the URL). Exactly one. Both give the same numbers.

    * completions: audio, see :func:`resolve_audio` (``audio_key``, ``sample_rate`` for bare arrays). ``to_audio``
      (optional) maps the batch first: ``to_audio(completions, completion_ids) -> list of audio`` (e.g. a vocoder
      over speech tokens; a callable or a ``"module:function"`` / ``"file.py:function"`` reference); a None in its
      answer fails that item.
    * captions: the ``caption_column`` keyword column; ``caption_column=None`` uses the prompts (a conversational
      prompt: the content of its last message).
    * ``shaping``: ``cosine`` | ``logit`` | ``group_norm`` (:func:`shape_rewards`). Groups for ``group_norm``: the
      ``group_column`` keyword column, else the prompt. (TRL's GRPO already normalises per prompt group, so
      ``cosine`` is the usual choice there; ``group_norm`` is for loops that do not.)
    * ``guard``: ``guard(audio, caption) -> (ok, info)`` run on every item before scoring (a WER or quality gate
      against reward hacking). A failed guard zeroes the reward (the item is not scored, and stays out of its
      group's statistics) or, with ``guard_penalty=p``, scores it and subtracts p. A guard that raises fails the
      item (None).

    After each call, ``last_components`` (per item: the shaping components plus ``guard``: {"ok", "info"}; for a
    failed item ``{"error": ...}``) and ``last_provenance`` describe the batch.

    Picklable (TRL's async GRPO spawns a process for its rewards) when built from a model name or a client, with
    module-level (or referenced) ``guard`` and ``to_audio``: the copy loads the model on its first call.
    """

    def __init__(self, model: Any = None, client: RewardClient | str | None = None, shaping: str = "cosine",
                 caption_column: str | None = "caption", audio_key: str = "audio", guard: Guard | None = None,
                 guard_penalty: float | None = None, sample_rate: int | None = None, group_column: str | None = None,
                 to_audio: Callable[..., Sequence[Any]] | str | None = None, batch_size: int | None = None,
                 token: str | None = None, timeout: float = 120.0, device: str | None = None,
                 precision: str = "auto", name: str = "paraspeechclap"):
        if (model is None) == (client is None):
            raise ValueError("give exactly one of model= (in process) or client= (a reward service URL or RewardClient)")
        if shaping not in SHAPINGS:
            raise ValueError(f"shaping must be one of {SHAPINGS}, got {shaping!r}")
        self._model_spec: ModelSpec | None = None  # how to load the model again in an unpickled copy
        if isinstance(model, (str, os.PathLike)):
            model = ModelSpec(os.fspath(model), device=device, precision=precision)
        if isinstance(model, ModelSpec):
            self._model_spec = model
            model = model.load()
        if isinstance(client, str):
            client = RewardClient(client, token=token, timeout=timeout)
        self.model, self.client = model, client
        self.shaping, self.caption_column, self.audio_key = shaping, caption_column, audio_key
        self.guard, self.guard_penalty, self.sample_rate = guard, guard_penalty, sample_rate
        self._to_audio_ref = to_audio if isinstance(to_audio, str) else None  # a reference pickles as itself
        self.group_column, self.to_audio, self.batch_size = group_column, load_hook(to_audio), batch_size
        self.__name__ = name  # TRL names each reward function in its logs by __name__
        self.last_components: list[dict] = []
        self.last_provenance: dict = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        """Pickled (TRL's async GRPO sends reward functions to a spawned process): a model named by its source is
        sent as that name and loaded again, on first use, in the copy; a client is sent as it is."""
        if self.model is not None and self._model_spec is None:
            raise TypeError("a ParaSpeechCLAPReward built on a loaded model object cannot be pickled; pass the model's "
                            "name or folder (model='mini') so that the copy can load it, or use client=")
        state = {k: v for k, v in self.__dict__.items() if k != "_lock"}
        if self._model_spec is not None:
            state["model"] = None
        if self._to_audio_ref is not None:
            state["to_audio"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        if self._to_audio_ref is not None:
            self.to_audio = load_hook(self._to_audio_ref)

    def __repr__(self) -> str:
        backend = self.client if self.client is not None else getattr(self._model_spec, "source", None) or getattr(
            self.model, "name", type(self.model).__name__)
        return f"ParaSpeechCLAPReward({backend!r}, shaping={self.shaping!r})"

    def _backend(self, audios, captions, groups, shaping) -> RewardResult:
        if self.client is not None:
            return self.client.score(audios, captions, groups, shaping)
        with self._lock:  # one batch at a time through the model (veRL calls from several threads at once)
            if self.model is None:
                self.model = self._model_spec.load()
            return score_items(self.model, audios, captions, groups, shaping, batch_size=self.batch_size)

    def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None,
                 completion_ids: Sequence[Any] | None = None, **kwargs: Any) -> list[float | None]:
        if completions is None:
            raise TypeError("ParaSpeechCLAPReward needs completions=")
        completions = list(completions)
        n = len(completions)
        captions = self._column(self.caption_column, prompts, kwargs, n, "captions")
        groups = None
        if self.shaping == "group_norm":
            groups = self._column(self.group_column, prompts, kwargs, n, "groups", as_text=False)
        return self.score(completions, captions, groups, completion_ids=completion_ids)[0]

    def score(self, completions: Sequence[Any], captions: Sequence[Any], groups: Sequence[Any] | None = None,
              completion_ids: Sequence[Any] | None = None) -> tuple[list[float | None], list[dict]]:
        """The batch behind ``__call__``: (rewards, components per item)."""
        n = len(completions)
        if len(captions) != n or (groups is not None and len(groups) != n):
            raise ValueError(f"{n} completions, {len(captions)} captions, {len(groups or ())} groups: lengths differ")
        errors: list[str | None] = [None] * n
        audios: list[Any] = [None] * n
        items = list(completions)
        if self.to_audio is not None:
            items = list(self.to_audio(items, completion_ids))
            if len(items) != n:
                raise ValueError(f"to_audio returned {len(items)} audios for {n} completions")
        for i, item in enumerate(items):
            if item is None:
                errors[i] = "no audio for this completion"
                continue
            try:
                audios[i] = resolve_audio(item, self.audio_key, self.sample_rate)
            except (TypeError, ValueError) as err:
                errors[i] = str(err)
        guards: list[dict | None] = [None] * n
        if self.guard is not None:
            for i in range(n):
                if errors[i] is not None:
                    continue
                try:
                    ok, info = self.guard(audios[i], captions[i])
                    guards[i] = {"ok": bool(ok), "info": info}
                except Exception as err:  # noqa: BLE001 - a guard that breaks fails its item, not the batch
                    errors[i] = f"guard failed: {type(err).__name__}: {err}"
        zeroed = [i for i in range(n) if guards[i] is not None and not guards[i]["ok"] and self.guard_penalty is None]
        send = [i for i in range(n) if errors[i] is None and i not in set(zeroed)]
        result = self._backend([audios[i] for i in send], [captions[i] for i in send],
                               None if groups is None else [groups[i] for i in send], self.shaping)
        rewards: list[float | None] = [None] * n
        components: list[dict] = [{} for _ in range(n)]
        for k, i in enumerate(send):
            if result.rewards[k] is None:
                errors[i] = result.errors[k] or "no reward"
                continue
            rewards[i] = result.rewards[k]
            components[i] = dict(result.components[k] or {})
        for i in range(n):
            if guards[i] is not None:
                components[i]["guard"] = guards[i]
                if not guards[i]["ok"]:
                    if i in zeroed:
                        rewards[i] = 0.0
                    elif rewards[i] is not None:
                        components[i]["reward_before_guard"] = rewards[i]
                        rewards[i] = float(np.float32(rewards[i] - float(self.guard_penalty)))
            if errors[i] is not None:
                rewards[i] = None
                components[i]["error"] = errors[i]
        failed = [i for i in range(n) if errors[i] is not None]
        if failed:
            shown = "; ".join(f"#{i}: {errors[i]}" for i in failed[:3])
            log.warning("%s: %d of %d completions could not be scored (reward None): %s%s", self.__name__,
                        len(failed), n, shown, " ..." if len(failed) > 3 else "")
        self.last_components, self.last_provenance = components, result.provenance
        return rewards, components

    @staticmethod
    def _column(column: str | None, prompts: Sequence[Any] | None, kwargs: dict, n: int, what: str,
                as_text: bool = True) -> list:
        if column is not None:
            if column not in kwargs:
                raise KeyError(f"ParaSpeechCLAPReward: no {column!r} column among the keyword arguments "
                               f"({sorted(kwargs)}); set {'caption' if what == 'captions' else 'group'}_column= "
                               f"or None to use the prompts")
            values = list(kwargs[column])
        elif prompts is not None:
            values = [_prompt_text(p) if as_text else p for p in prompts]
        else:
            raise TypeError(f"ParaSpeechCLAPReward: no prompts to take the {what} from")
        if len(values) != n:
            raise ValueError(f"{len(values)} {what} for {n} completions")
        return values


def _prompt_text(prompt: Any) -> Any:
    """A conversational prompt (a list of messages) -> the content of its last message; text as it is."""
    if isinstance(prompt, list) and prompt and isinstance(prompt[-1], dict):
        return prompt[-1].get("content")
    return prompt


# ------------------------------------------------------------------ veRL

_SCORERS: dict[tuple, ParaSpeechCLAPReward] = {}
_SCORERS_LOCK = threading.Lock()
_HOOKS: dict[str, Callable[..., Sequence[Any]]] = {}


def load_hook(ref: Any) -> Callable[..., Sequence[Any]] | None:
    """A ``to_audio`` hook from a callable or a reference a YAML file can hold: ``"package.module:function"`` or
    ``"/path/to/file.py:function"`` (loaded once per process)."""
    if ref is None or callable(ref):
        return ref
    if not isinstance(ref, str) or ":" not in ref:
        raise ValueError(f"to_audio must be a callable, 'module:function' or 'file.py:function', got {ref!r}")
    where, _, attr = ref.rpartition(":")
    with _SCORERS_LOCK:
        if ref not in _HOOKS:
            import importlib
            import importlib.util

            if where.endswith(".py"):
                spec = importlib.util.spec_from_file_location(f"_paraspeechclap_hook_{len(_HOOKS)}", where)
                if spec is None or not Path(where).is_file():
                    raise ValueError(f"to_audio: {where}: file not found")
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            else:
                module = importlib.import_module(where)
            hook = getattr(module, attr, None)
            if not callable(hook):
                raise ValueError(f"to_audio: {where} has no function {attr!r}")
            _HOOKS[ref] = hook
        return _HOOKS[ref]



def _scorer(model: Any, url: str | None, token: str | None, shaping: str, timeout: float, to_audio: Any,
            device: str | None = None, precision: str = "auto") -> ParaSpeechCLAPReward:
    model = model if model is not None else os.environ.get("PARASPEECHCLAP_REWARD_MODEL")
    url = url if url is not None else os.environ.get("PARASPEECHCLAP_REWARD_URL")
    token = token if token is not None else os.environ.get("PARASPEECHCLAP_REWARD_TOKEN")
    if (model is None) == (url is None):
        raise ValueError("compute_score: give exactly one of model= or url= (veRL: reward.custom_reward_function."
                         "reward_kwargs), or set PARASPEECHCLAP_REWARD_MODEL or PARASPEECHCLAP_REWARD_URL")
    hook = load_hook(to_audio)
    key = (id(model) if not isinstance(model, (str, type(None))) else model, url, token, shaping, timeout,
           to_audio if isinstance(to_audio, (str, type(None))) else id(to_audio), device, precision)
    with _SCORERS_LOCK:  # one model (or client) per worker process, loaded on first use
        if key not in _SCORERS:
            _SCORERS[key] = ParaSpeechCLAPReward(model=model, client=url, shaping=shaping, caption_column=None,
                                                 token=token, timeout=timeout, to_audio=hook, device=device,
                                                 precision=precision)
        return _SCORERS[key]


def _verl_result(reward: float | None, comp: dict, return_dict: bool, failure_score: float) -> float | dict:
    score = failure_score if reward is None else float(reward)
    if not return_dict:
        return score
    # veRL gathers each key into a list per batch: every item carries the same numeric keys
    guard = comp.get("guard")
    return {"score": score, "cosine": float(comp.get("cosine", math.nan)), "logit": float(comp.get("logit", math.nan)),
            "guard_ok": math.nan if guard is None else float(guard["ok"]), "failed": float(reward is None)}


def _response_audio(solution: Any, hook: Any) -> Any:
    """veRL hands over the decoded response text: without a hook, that text (stripped) is the audio's path."""
    return solution.strip() if hook is None and isinstance(solution, str) else solution


def compute_score(data_source: Any, solution_str: Any, ground_truth: str, extra_info: dict | None = None, *,
                  model: Any = None, url: str | None = None, token: str | None = None, shaping: str = "cosine",
                  return_dict: bool = False, failure_score: float = 0.0, timeout: float = 120.0,
                  to_audio: Any = None, device: str | None = None, precision: str = "auto", **_: Any) -> float | dict:
    """veRL's custom reward function: ``solution_str`` is the decoded response, ``ground_truth`` the caption.

    The response becomes audio through ``to_audio`` (a callable, or ``"module:function"`` / ``"file.py:function"``
    from ``reward_kwargs``), called as ``to_audio([solution_str], None)`` and returning a list of one audio (any
    :func:`resolve_audio` input; e.g. parse the speech tokens out of the text and run a vocoder). Without a hook
    the response is the path of an audio file (surrounding whitespace ignored). Returns a float, or with
    ``return_dict`` a dict with ``score`` and the components (``cosine``, ``logit``, ``guard_ok``, ``failed``: the
    same numeric keys for every item).

    Backend: ``model=`` (a name or path, loaded once per process with ``device`` and ``precision``) or ``url=``
    (a reward service), from veRL's
    ``reward_kwargs`` or the PARASPEECHCLAP_REWARD_MODEL / PARASPEECHCLAP_REWARD_URL (and _TOKEN) environment.
    veRL needs a number for every item, so a failed item scores ``failure_score`` (logged). One item has no group:
    normalise per prompt with veRL's GRPO advantage (``algorithm.adv_estimator=grpo``), not ``group_norm``.
    """
    if shaping == "group_norm":
        raise ValueError("compute_score scores one item at a time, so it has no group: use shaping='cosine' with "
                         "veRL's GRPO advantage (algorithm.adv_estimator=grpo), which normalises per prompt group")
    scorer = _scorer(model, url, token, shaping, timeout, to_audio, device, precision)
    rewards, components = scorer.score([_response_audio(solution_str, scorer.to_audio)], [ground_truth])
    return _verl_result(rewards[0], components[0], return_dict, failure_score)


def compute_score_batch(data_sources: Sequence[Any], solution_strs: Sequence[Any], ground_truths: Sequence[str],
                        extra_infos: Sequence[dict | None] | None = None, *, model: Any = None, url: str | None = None,
                        token: str | None = None, shaping: str = "cosine", return_dict: bool = False,
                        failure_score: float = 0.0, timeout: float = 120.0, to_audio: Any = None,
                        device: str | None = None, precision: str = "auto", **_: Any) -> list:
    """:func:`compute_score` for a whole batch in one call, for loops that hand a batch to a reward function: audio
    is embedded in batches and ``group_norm`` works (a sample's group is ``extra_info["group"]`` when present, else
    (data_source, caption)). veRL 0.9's trainer calls its reward function once per sample, not this."""
    n = len(solution_strs)
    extra_infos = list(extra_infos) if extra_infos is not None else [None] * n
    groups = None
    if shaping == "group_norm":
        groups = []
        for source, caption, info in zip(data_sources, ground_truths, extra_infos):
            group = info.get("group") if isinstance(info, dict) else None
            groups.append(group if group is not None else [str(source), caption])
    scorer = _scorer(model, url, token, shaping, timeout, to_audio, device, precision)
    audios = [_response_audio(solution, scorer.to_audio) for solution in solution_strs]
    rewards, components = scorer.score(audios, list(ground_truths), groups)
    return [_verl_result(r, c, return_dict, failure_score) for r, c in zip(rewards, components)]
