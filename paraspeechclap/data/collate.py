"""Batch collation: pad audio, build the mask, pass captions/tags/paths through, report bad items."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def collate(items: Sequence[dict | None], *, mask_padding: bool = False, tag_columns: Sequence[str] = ()) -> dict:
    """Collate dataset items.

    Items with an ``"error"`` key (unreadable audio, no caption) or ``None`` are dropped; they come
    back under ``"errors"`` as ``(path, reason)`` pairs. The result has ``size`` (number of good
    items, possibly 0) and, when ``size > 0``:

    * ``audio`` float32 [B, L] right-padded with zeros to the longest item;
    * ``audio_attention_mask`` int64 [B, L]: 1 on each item's samples. With ``mask_padding`` only
      the real (un-padded) samples count; otherwise every sample the dataset returned counts, so
      the zeros the dataset added to short clips are treated as audio (the reference);
    * ``audio_lengths`` int64 [B]: real samples per item;
    * ``text`` list[str] (when the items have captions), ``tags`` {column: list[list[str]]},
      ``paths``, ``indices``.
    """
    errors = [(it.get("path"), it.get("error")) for it in items if it is not None and "error" in it]
    good = [it for it in items if it is not None and "error" not in it]
    out: dict = {"size": len(good), "errors": errors}
    if not good:
        return out
    longest = max(len(it["audio"]) for it in good)
    audio = np.zeros((len(good), longest), dtype=np.float32)
    mask = np.zeros((len(good), longest), dtype=np.int64)
    lengths = np.zeros(len(good), dtype=np.int64)
    for i, it in enumerate(good):
        w = it["audio"]
        audio[i, : len(w)] = w
        real = int(it.get("length", len(w)))
        mask[i, : (real if mask_padding else len(w))] = 1
        lengths[i] = real
    out["audio"] = torch.from_numpy(audio)
    out["audio_attention_mask"] = torch.from_numpy(mask)
    out["audio_lengths"] = torch.from_numpy(lengths)
    if "text" in good[0]:
        out["text"] = [it["text"] for it in good]
    cols = list(tag_columns) or [k for k in good[0] if k.endswith("_tags")]
    out["tags"] = {c: [list(it.get(c, [])) for it in good] for c in cols}
    out["paths"] = [it.get("path") for it in good]
    out["indices"] = [it.get("index") for it in good]
    return out


class Collator:
    """Picklable collate function for DataLoader workers."""

    def __init__(self, mask_padding: bool = False, tag_columns: Sequence[str] = ()):
        self.mask_padding = mask_padding
        self.tag_columns = tuple(tag_columns)

    def __call__(self, items):
        return collate(items, mask_padding=self.mask_padding, tag_columns=self.tag_columns)


def concat(first: dict, second: dict, *, audio_only: bool = False) -> dict:
    """Two collated batches as one (audio padded to the longer), ``second``'s rows after ``first``'s; with
    ``audio_only`` only ``second``'s audio is added (captions and tags stay ``first``'s)."""
    if not second.get("size") or (audio_only and not first.get("size")):
        return {**first, "errors": first.get("errors", []) + second.get("errors", [])}
    if not first.get("size"):
        return {**second, "errors": first.get("errors", []) + second.get("errors", [])}
    longest = max(first["audio"].shape[1], second["audio"].shape[1])

    def pad(x):
        return torch.nn.functional.pad(x, (0, longest - x.shape[1]))

    out = {"size": first["size"] + second["size"], "errors": first.get("errors", []) + second.get("errors", []),
           "audio": torch.cat([pad(first["audio"]), pad(second["audio"])]),
           "audio_attention_mask": torch.cat([pad(first["audio_attention_mask"]), pad(second["audio_attention_mask"])]),
           "audio_lengths": torch.cat([first["audio_lengths"], second["audio_lengths"]]),
           "paths": first["paths"] + second["paths"], "indices": first["indices"] + second["indices"]}
    if audio_only:
        out["tags"] = first["tags"]
        if "text" in first:
            out["text"] = first["text"]
        return out
    out["tags"] = {c: first["tags"].get(c, []) + second["tags"].get(c, []) for c in first["tags"]}
    if "text" in first and "text" in second:
        out["text"] = first["text"] + second["text"]
    return out
