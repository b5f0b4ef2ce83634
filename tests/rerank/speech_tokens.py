"""A toy speech-token policy's vocabulary and its "vocoder", shared by the TRL test (main venv) and the veRL check
(its own venv): token ``sK`` is 40 ms of a tone at 90 + 15 K Hz after a 0.3 s lead tone, so every completion,
even an empty one, is audio. ``to_audio`` is the documented hook: ``to_audio(completions, completion_ids)``; it uses
the ids when the loop has them (TRL) and parses the decoded text when it has only that (veRL)."""
from __future__ import annotations

import re

import numpy as np

SAMPLE_RATE = 16000
SPECIAL = ["<pad>", "<eos>", "<unk>"]
SPEECH = [f"s{k}" for k in range(29)]
VOCAB = SPECIAL + SPEECH
_TOKEN = re.compile(r"\bs(\d+)\b")


def tokenizer(extra_tokens: tuple[str, ...] = ()):
    """A word-level tokenizer over the vocabulary (plus ``extra_tokens``, e.g. whole file paths), built offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate([*VOCAB, *extra_tokens])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def wave(tokens: list[int]) -> np.ndarray:
    """Speech token numbers (K of ``sK``) -> float32 waveform at :data:`SAMPLE_RATE`."""
    lead = np.arange(int(0.3 * SAMPLE_RATE)) / SAMPLE_RATE
    parts = [0.3 * np.sin(2 * np.pi * 150.0 * lead)]
    seg = np.arange(int(0.04 * SAMPLE_RATE)) / SAMPLE_RATE
    parts += [0.3 * np.sin(2 * np.pi * (90.0 + 15.0 * k) * seg) for k in tokens]
    return np.concatenate(parts).astype(np.float32)


def to_audio(completions, completion_ids=None):
    """The hook: each completion -> ``(waveform, sample_rate)``."""
    if completion_ids is not None:
        speech = [[i - len(SPECIAL) for i in ids if len(SPECIAL) <= i < len(VOCAB)] for ids in completion_ids]
    else:
        speech = [[int(k) for k in _TOKEN.findall(text) if int(k) < len(SPEECH)] for text in completions]
    return [(wave(tokens), SAMPLE_RATE) for tokens in speech]
