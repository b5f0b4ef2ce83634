"""The reward against the real TRL: ``GRPOTrainer`` runs GRPO steps on a tiny random policy (built here, no hub) whose
completions are speech tokens, turned into audio by a ``to_audio`` hook, scored in process and over HTTP by a real
``paraspeechclap serve``: the same numbers both ways. The reward pickles, as TRL's async GRPO needs."""
from __future__ import annotations

import multiprocessing
import pickle

import numpy as np
import pytest

pytest.importorskip("trl", reason="TRL is in the [rl] extra")

from paraspeechclap.rerank import reward  # noqa: E402
from paraspeechclap.rerank.rl import ParaSpeechCLAPReward  # noqa: E402

import speech_tokens  # noqa: E402  (tests/rerank is on the path: pytest's rootdir-relative imports)

CAPTIONS = ["A deep voice speaking slowly.", "A high-pitched voice talking fast."]


class Recording(ParaSpeechCLAPReward):
    """The reward as TRL calls it, keeping every batch's completions and rewards."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[list, list, list]] = []

    def __call__(self, *args, **kwargs):
        rewards = super().__call__(*args, **kwargs)
        self.calls.append(([list(map(int, ids)) for ids in kwargs["completion_ids"]], list(kwargs["caption"]), rewards))
        return rewards


def _policy():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(speech_tokens.VOCAB), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0,
                         eos_token_id=1, bos_token_id=None)
    return LlamaForCausalLM(config)


def test_grpo_steps_with_the_reward_in_process_and_over_http(tmp_path, reward_service):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    local = Recording(model="mini", precision="fp32", device="cpu", to_audio=speech_tokens.to_audio, name="local")
    remote = Recording(client=reward_service, to_audio=speech_tokens.to_audio, name="http")
    data = Dataset.from_dict({"prompt": ["s1 s2", "s3 s4"] * 2, "caption": CAPTIONS * 2})
    args = GRPOConfig(output_dir=str(tmp_path / "out"), num_generations=4, per_device_train_batch_size=4,
                      max_completion_length=8, max_steps=3, logging_steps=1, report_to="none", use_cpu=True,
                      save_strategy="no", seed=0, learning_rate=1e-2)
    trainer = GRPOTrainer(model=_policy(), args=args, train_dataset=data, reward_funcs=[local, remote],
                          processing_class=speech_tokens.tokenizer())
    trainer.train()

    assert trainer.state.global_step == 3 and len(local.calls) == len(remote.calls) == 3
    for (ids, captions, got_local), (ids_http, captions_http, got_http) in zip(local.calls, remote.calls, strict=True):
        assert ids == ids_http and captions == captions_http and len(got_local) == 4
        assert all(isinstance(r, float) for r in got_local)
        assert got_http == got_local  # the same floats in process and over HTTP
        # each reward is the cosine of the hook's audio with the row's caption, as the reward API computes it
        audio = [(speech_tokens.wave([i - 3 for i in row if 3 <= i < len(speech_tokens.VOCAB)]), 16000) for row in ids]
        np.testing.assert_allclose(got_local, reward(local.model, audio, captions), atol=1e-6)
    assert len({r for _, _, rewards in local.calls for r in rewards}) > 1  # the policy's samples differ
    logged = [h for h in trainer.state.log_history if "rewards/local/mean" in h]
    assert len(logged) == 3 and all(h["rewards/local/mean"] == h["rewards/http/mean"] for h in logged)


def _score_in_child(blob: bytes, completion_ids: list) -> list:
    fn = pickle.loads(blob)
    assert fn.model is None  # loaded again, lazily, on the first call
    return fn(completions=[""] * len(completion_ids), completion_ids=completion_ids, caption=[CAPTIONS[0]] * 2)


def test_the_reward_pickles_into_a_spawned_process(reward_service):
    ids = [[3, 9, 20, 1], [30, 31, 12]]
    local = ParaSpeechCLAPReward(model="mini", precision="fp32", device="cpu", to_audio=speech_tokens.to_audio)
    hook = f"{speech_tokens.__file__}:to_audio"  # a reference, as a YAML file would give it: pickled as itself
    remote = ParaSpeechCLAPReward(client=reward_service, to_audio=hook)
    want = local(completions=["", ""], completion_ids=ids, caption=[CAPTIONS[0]] * 2)
    with multiprocessing.get_context("spawn").Pool(1) as pool:  # as TRL's AsyncRolloutWorker starts its child
        assert pool.apply(_score_in_child, (pickle.dumps(local), ids)) == want
        assert pool.apply(_score_in_child, (pickle.dumps(remote), ids)) == want
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(ParaSpeechCLAPReward(model=local.model))
