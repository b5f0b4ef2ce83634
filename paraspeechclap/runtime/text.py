"""Text to model inputs with the ``tokenizers`` library alone (no transformers): the exported tokenizer file, with
the truncation length, padding token and side that the torch model's tokenizer call used (from the manifest)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .manifest import TOKENIZER_DIR, ExportFormatError

TOKENIZER_FILE = "tokenizer.json"


class TextTokenizer:
    """``tokenizer(texts)`` -> ``{input_ids, attention_mask, token_type_ids}`` int64 ``[B, T]``, padded to the
    longest text of the call and truncated to ``max_length`` tokens, as ``ParaSpeechCLAPModel.tokenize``."""

    def __init__(self, folder: Path, text: dict):
        from tokenizers import Tokenizer

        path = Path(folder) / TOKENIZER_DIR / TOKENIZER_FILE
        if not path.is_file():
            raise ExportFormatError(f"{folder}: {TOKENIZER_DIR}/{TOKENIZER_FILE} is missing")
        self.tokenizer = Tokenizer.from_file(str(path))
        self.tokenizer.enable_truncation(int(text["max_length"]))
        self.tokenizer.enable_padding(direction=text.get("padding_side", "right"), pad_id=int(text["pad_id"]),
                                      pad_token=str(text["pad_token"]), pad_type_id=int(text.get("pad_type_id", 0)))

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        encodings = self.tokenizer.encode_batch(list(texts))
        return {"input_ids": np.array([e.ids for e in encodings], np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], np.int64)}
