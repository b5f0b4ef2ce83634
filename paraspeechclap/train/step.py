"""One training step's loss: the contrastive loss over the global batch, tag-classification heads, the order loss."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Sequence

import torch

from .. import losses as L
from ..prompts import load_synonym_templates as load_template_file
from ..prompts import tag_prompt


def synonym_templates(spec: str | Path | None) -> dict[str, list[str]]:
    """``loss.synonym_templates``: ``builtin`` -> the packaged 44-tag file; a path -> that file; ``None``/``""`` ->
    no synonyms. A missing or malformed file is an error (the reference silently fell back)."""
    if spec in (None, "", "none", "null", False):
        return {}
    return load_template_file(None if spec == "builtin" else spec)


def step_prompts(vocab: Sequence[str], templates: dict[str, list[str]], template: str, seed: int, step: int,
                 column: str = "") -> list[str]:
    """One prompt per tag for this step: a random synonym sentence, or the template filled with the tag."""
    rng = random.Random(f"{seed}:{step}:{column}")
    return [tag_prompt(t, templates, rng, template) for t in vocab]


def to_device(batch_tokens: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch_tokens.items()}


class HeadSpec:
    """A classification head's fixed parts: the column, its sorted vocabulary, prompt sources."""

    def __init__(self, column: str, vocab: Sequence[str], templates: dict, template: str):
        self.column = column
        self.vocab = list(vocab)
        self.tag_to_idx = {t: i for i, t in enumerate(self.vocab)}
        self.templates = templates
        self.template = template


def encode_prompts(inner, prompts: Sequence[str], device, autocast, max_length: int) -> torch.Tensor:
    """Unnormalised text embeddings of class prompts (the classification heads' and the order loss')."""
    tokens = to_device(inner.tokenize(list(prompts), max_length=max_length), device)
    with autocast():
        return inner.encode_text(tokens, normalize=False)


def training_loss(model, inner, batch: dict, *, device, heads: Sequence[HeadSpec] = (), step: int = 0,
                  seed: int = 0, classification_weight: float = 1.0, autocast=contextlib.nullcontext,
                  max_length: int = 512, order: tuple | None = None) -> dict:
    """Forward one (local) batch and compute the global-batch loss (gathering across ranks).

    ``model`` is what to call for the forward (a DDP wrapper or the model itself), ``inner`` the
    unwrapped model (tokenizer, tag-prompt embeddings). ``order``: ``(OrderLoss, first row, table indices, groups)``
    when the batch ends with order groups (:mod:`.order`)."""
    audio = batch["audio"].to(device, non_blocking=True)
    mask = batch["audio_attention_mask"].to(device, non_blocking=True)
    tokens = to_device(inner.tokenize(list(batch["text"]), max_length=max_length), device)
    with autocast():
        text_emb, speech_emb, logit_scale = model(audio, tokens, audio_attention_mask=mask)
    text_emb, speech_emb = text_emb.float(), speech_emb.float()
    all_text = L.gather_features(text_emb)
    all_audio = L.gather_features(speech_emb[: text_emb.shape[0]])  # order rows without captions come last
    head_objs = []
    for h in heads:
        local_tags = batch["tags"].get(h.column)
        if local_tags is None or not h.vocab:
            continue
        tags = [t for part in L.gather_objects(local_tags) for t in part]
        tags = [[t for t in row if t in h.tag_to_idx] for row in tags]
        prompts = step_prompts(h.vocab, h.templates, h.template, seed, step, h.column)
        tag_emb = encode_prompts(inner, prompts, device, autocast, max_length)
        head_objs.append(L.ClassificationHead(tag_emb.float(), tags, h.tag_to_idx, name=h.column))
    out = L.multitask_loss(all_text, all_audio, logit_scale.float(), head_objs,
                           classification_weight=classification_weight)
    out["order_loss"] = torch.zeros((), device=speech_emb.device)
    if order is not None:
        rule, start, indices, groups = order
        with torch.no_grad():  # the order loss holds its prompts fixed: no graph for them
            prompt_emb = encode_prompts(inner, rule.prompts, device, autocast, max_length)
        out["order_loss"] = rule.loss(speech_emb[start:], prompt_emb, logit_scale, indices, groups)
        out["total_loss"] = out["total_loss"] + rule.weight * out["order_loss"]
    out["logit_scale"] = logit_scale.detach()
    out["global_batch"] = all_audio.shape[0]
    return out
