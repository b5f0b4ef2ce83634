"""Run inside the veRL venv (.venv-verl, made by `make verl-venv`) by test_rerank_verl.py: veRL's own
reward machinery calls ``paraspeechclap.rerank.rl.compute_score``, and veRL's GRPO advantage normalises its rewards.

What runs is veRL 0.9's trainer path, unchanged: ``RewardLoopManager`` (Ray actors ``RewardLoopWorker`` on a local
Ray instance) builds its reward manager with ``load_reward_manager`` from the registry named by
``reward.reward_manager.name`` and the function loaded from ``reward.custom_reward_function.path`` with its
``reward_kwargs``; ``compute_rm_score`` turns the rollouts into ``rm_scores``; the advantage estimator registered as
``grpo`` (``core_algos.get_adv_estimator_fn``, what ``algorithm.adv_estimator: grpo`` runs: the trainer's
``compute_advantage`` calls the same ``compute_grpo_outcome_advantage``) normalises them per ``uid``.
The reward section and the advantage estimator come from docs/rerank.md's YAML block, merged into veRL's own config
with unknown keys refused, so the documented keys are the ones tested; only the placeholders (the module path, the
hook's path) and the backend are replaced. Writes what it saw as JSON (--out) for the test to check.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import speech_tokens  # noqa: E402

PROMPT = [speech_tokens.VOCAB.index("s1"), speech_tokens.VOCAB.index("s2")]
DOC = HERE.parents[1] / "docs" / "rerank.md"


def doc_yaml() -> str:
    """The YAML block of docs/rerank.md (the veRL configuration it documents)."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index("```yaml\n") + len("```yaml\n")
    return text[start:text.index("```", start)]


def _config(tokenizer_dir: Path, backend: dict, to_audio: str | None):
    """veRL's own default trainer config with the doc's YAML merged in (struct mode: an unknown key is an error)."""
    import verl
    from omegaconf import OmegaConf, open_dict

    import paraspeechclap.rerank.rl as rl

    config = OmegaConf.load(Path(verl.__file__).parent / "trainer" / "config" / "_generated_ppo_trainer.yaml")
    OmegaConf.set_struct(config, True)
    doc = OmegaConf.create(doc_yaml())
    function = doc.reward.custom_reward_function
    function.path = rl.__file__  # the doc's placeholder path
    kwargs = {k: v for k, v in function.reward_kwargs.items() if k not in ("model", "url", "to_audio")}
    function.reward_kwargs = {**kwargs, **backend, "device": "cpu", "precision": "fp32",
                              **({"to_audio": to_audio} if to_audio else {})}
    with open_dict(config.reward.custom_reward_function):  # reward_kwargs is free-form in veRL's schema
        config = OmegaConf.merge(config, doc)
    config.actor_rollout_ref.model.path = str(tokenizer_dir)
    config.reward.num_workers = 1
    return config


def _batch(responses: list[list[int]], captions: list[str], uids: list[str]):
    """A rollout batch in veRL's layout: prompts, right-padded responses, attention mask, the caption as ground truth."""
    from verl import DataProto

    width = max(len(r) for r in responses)
    resp = torch.zeros(len(responses), width, dtype=torch.long)
    mask = torch.zeros(len(responses), len(PROMPT) + width, dtype=torch.long)
    for i, row in enumerate(responses):
        resp[i, : len(row)] = torch.tensor(row)
        mask[i, : len(PROMPT) + len(row)] = 1
    prompts = torch.tensor([PROMPT] * len(responses))
    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": resp, "attention_mask": mask,
                 "input_ids": torch.cat([prompts, resp], dim=1)},
        non_tensors={"data_source": np.array(["paraspeechcaps"] * len(responses), dtype=object),
                     "reward_model": np.array([{"ground_truth": c} for c in captions], dtype=object),
                     "extra_info": np.array([{} for _ in captions], dtype=object),
                     "uid": np.array(uids, dtype=object)})


def _route(config, data) -> dict:
    """veRL's reward loop on ``data``, then the configured advantage estimator; the numbers it produced."""
    from verl.experimental.reward_loop import RewardLoopManager
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    out = RewardLoopManager(config).compute_rm_score(data)
    rm = out.batch["rm_scores"]  # the trainer's token_level_scores (= token_level_rewards without a KL penalty)
    response_mask = data.batch["attention_mask"][:, len(PROMPT):]
    advantages, _ = get_adv_estimator_fn(config.algorithm.adv_estimator)(
        token_level_rewards=rm, response_mask=response_mask, index=data.non_tensor_batch["uid"],
        norm_adv_by_std_in_grpo=True)
    last = response_mask.sum(dim=1) - 1
    rows = torch.arange(len(last))
    return {"scores": rm.sum(dim=-1).tolist(), "at_last_token": bool((rm[rows, last] == rm.sum(dim=-1)).all()),
            "advantages": advantages[rows, 0].tolist(), "estimator": str(config.algorithm.adv_estimator),
            "manager": str(config.reward.reward_manager.name),
            "extra": {k: [float(v) for v in out.non_tensor_batch[k]] for k in out.meta_info["reward_extra_keys"]}}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, required=True, help="a folder with the test's wav files (wav/*.wav)")
    parser.add_argument("--url", required=True, help="a paraspeechclap serve base URL")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import ray
    import transformers
    import verl
    from verl.experimental.reward_loop.reward_manager import registry

    wavs = sorted(str(p) for p in (args.work / "wav").glob("*.wav"))
    tok = speech_tokens.tokenizer(tuple(wavs))  # a file path is one token: a response that decodes to a path
    tok.save_pretrained(args.work / "tokenizer")
    rng = np.random.default_rng(0)
    speech = [[int(k) for k in rng.integers(3, len(speech_tokens.VOCAB), size=int(n))] + [1]
              for n in rng.integers(2, 7, size=8)]  # 8 rollouts ending in <eos>: 2 prompts x 4
    captions = ["A deep voice speaking slowly."] * 4 + ["A high-pitched voice talking fast."] * 4
    uids = ["p0"] * 4 + ["p1"] * 4
    hook = f"{HERE / 'speech_tokens.py'}:to_audio"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024 * 1024)
    try:
        result = {
            "versions": {"verl": verl.__version__, "transformers": transformers.__version__, "torch": torch.__version__,
                         "ray": ray.__version__},
            "registered": sorted(registry.REWARD_MANAGER),
            "decoded": [tok.decode(r, skip_special_tokens=True) for r in speech],
            "speech": speech,
            "hook_in_process": _route(_config(args.work / "tokenizer", {"model": "mini"}, hook),
                                      _batch(speech, captions, uids)),
            "hook_http": _route(_config(args.work / "tokenizer", {"url": args.url}, hook), _batch(speech, captions, uids)),
        }
        paths = [[tok.convert_tokens_to_ids(w)] for w in wavs[:4]]
        result["paths"] = wavs[:4]
        result["path_in_process"] = _route(_config(args.work / "tokenizer", {"model": "mini"}, None),
                                           _batch(paths, captions[:4], ["q"] * 4))
    finally:
        ray.shutdown()
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
