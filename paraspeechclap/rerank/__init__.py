"""Best-of-N reranking of style-prompted TTS output, and a caption-audio reward.

Python API (needs only numpy and a loaded model)::

    from paraspeechclap import ParaSpeechCLAP
    from paraspeechclap.rerank import reward, best_of_n

    model = ParaSpeechCLAP.from_pretrained("mini")
    r = reward(model, [(wave, 16000), "a.wav"], ["A deep voice speaking slowly.", "A whispered voice."])
    result = best_of_n(model, lambda caption, i: my_tts(caption, seed=i), "A whispered voice.", n=8)
    result.index, result.score, result.scores, result.audio

Files: :func:`read_input` (a layout, a manifest, or a folder with a caption) -> :func:`rerank_input` ->
:func:`write_outputs`;
the command line is ``paraspeechclap rerank`` (:mod:`paraspeechclap.rerank.cli`).
RL training loops: :class:`ParaSpeechCLAPReward` (TRL ``reward_funcs``), :func:`compute_score` (veRL), in process or
through a reward service (:class:`RewardClient`); see :mod:`paraspeechclap.rerank.rl`.
"""

from .curve import best_of_n_curve, expected_best_of_n
from .engine import PromptResult, rerank_input, select_all
from .inputs import (Candidate, InputError, Prompt, RerankInput, read_folder, read_input, read_layout,
                     read_manifest)
from .outputs import OutputExistsError, check_output_dir, write_outputs
from .reward import BestOfNResult, best_of_n, reward
from .rl import ParaSpeechCLAPReward, RewardClient, RewardServiceError, compute_score, compute_score_batch, score_items
from .selection import Gate, Selection, parse_gate, parse_weight, select

__all__ = [
    "reward",
    "best_of_n",
    "BestOfNResult",
    "ParaSpeechCLAPReward",
    "RewardClient",
    "RewardServiceError",
    "score_items",
    "compute_score",
    "compute_score_batch",
    "read_layout",
    "read_manifest",
    "read_input",
    "read_folder",
    "RerankInput",
    "Prompt",
    "Candidate",
    "InputError",
    "rerank_input",
    "select_all",
    "PromptResult",
    "select",
    "Selection",
    "Gate",
    "parse_gate",
    "parse_weight",
    "write_outputs",
    "check_output_dir",
    "OutputExistsError",
    "expected_best_of_n",
    "best_of_n_curve",
]
