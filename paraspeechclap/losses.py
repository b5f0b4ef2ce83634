"""Training losses: the symmetric contrastive (CLIP) loss and the multi-label tag classification loss.

The maths is the reference's (``ClipLoss`` / ``MultiTaskLoss``):

* contrastive: L2-normalise both sides, ``logits = scale * audio @ text.T``, targets on the diagonal,
  (cross-entropy over rows + cross-entropy over columns) / 2;
* classification, per head: plain cosine between each audio embedding and each tag-prompt embedding
  (no scale, no bias) used as logits, multi-hot targets, BCE-with-logits averaged over
  (samples that have at least one tag) x vocabulary; heads are averaged;
* total = contrastive + weight * classification (weight 1 by default, as the reference).

Cross-rank gathering (``gather_features``) follows the reference pattern (all_gather without
gradient, the local slot swapped back to the local tensor so that it keeps its gradient), with one
correction: the gradient that reaches the local slot is multiplied by the world size, so that after
DDP's *mean* all-reduce every parameter receives exactly the gradient of the loss over the global
batch (the reference gets 1/W of it for the encoders but the full gradient for the logit scale and
the tag prompts). The forward values are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "ClassificationHead",
    "clip_loss",
    "classification_loss",
    "multitask_loss",
    "gather_features",
    "gather_objects",
    "multi_hot",
]


def _dist_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def gather_features(x: torch.Tensor, *, scale_local_grad: bool = True) -> torch.Tensor:
    """Concatenate ``x`` [b_r, D] from every rank in rank order; the local slot keeps its gradient.

    Ranks may hold different batch sizes (items skipped for unreadable audio): sizes are exchanged
    first and shorter shards are padded for the collective. With ``scale_local_grad`` the gradient
    into the local slot is multiplied by the world size (see the module docstring). Without an
    initialised process group (or with world size 1) ``x`` is returned unchanged.
    """
    if not _dist_ready():
        return x
    world = torch.distributed.get_world_size()
    if world == 1:
        return x
    rank = torch.distributed.get_rank()
    n = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    torch.distributed.all_gather(sizes, n)
    sizes = [int(s.item()) for s in sizes]
    m = max(sizes)
    xd = x.detach()
    if xd.shape[0] < m:
        pad = xd.new_zeros((m - xd.shape[0],) + tuple(xd.shape[1:]))
        xd = torch.cat([xd, pad], 0)
    xd = xd.contiguous()
    buf = [torch.empty_like(xd) for _ in range(world)]
    torch.distributed.all_gather(buf, xd)
    parts = [b[:s] for b, s in zip(buf, sizes)]
    local = x
    if scale_local_grad and x.requires_grad:
        # value == x exactly; d(local)/dx == world
        local = x + (world - 1) * (x - x.detach())
    parts[rank] = local
    return torch.cat(parts, 0)


def gather_objects(obj):
    """``all_gather_object`` in rank order (a list of length world size); ``[obj]`` when not distributed."""
    if not _dist_ready() or torch.distributed.get_world_size() == 1:
        return [obj]
    out = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


def clip_loss(text_emb: torch.Tensor, audio_emb: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE over ``logit_scale * cos(audio_i, text_j)``; pair i <-> i."""
    a = F.normalize(audio_emb, dim=-1)
    t = F.normalize(text_emb, dim=-1)
    logits = logit_scale * a @ t.t()
    target = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


def multi_hot(tags: Sequence[Sequence[str]], tag_to_idx: Mapping[str, int], *, device=None,
              dtype=torch.float32, strict: bool = True) -> torch.Tensor:
    """[B, V] multi-hot targets. ``strict`` raises on a tag outside the vocabulary (the reference asserts)."""
    out = torch.zeros(len(tags), len(tag_to_idx), dtype=dtype, device=device)
    for i, row in enumerate(tags):
        for t in row:
            j = tag_to_idx.get(t)
            if j is None:
                if strict:
                    raise KeyError(f"tag {t!r} is not in the vocabulary of this head")
                continue
            out[i, j] = 1
    return out


@dataclass
class ClassificationHead:
    """One tag column: its prompt embeddings [V, D] (unnormalised) and the batch's tag lists."""

    tag_embeddings: torch.Tensor
    tags: Sequence[Sequence[str]]
    tag_to_idx: Mapping[str, int]
    name: str = "tags"
    extra: dict = field(default_factory=dict)


def classification_loss(audio_emb: torch.Tensor, head: ClassificationHead) -> tuple[torch.Tensor, int]:
    """BCE-with-logits on plain cosines, averaged over (samples with tags) x vocabulary.

    Returns ``(loss, n_valid)``; the loss is an exact zero (keeping the graph) when no sample has tags.
    """
    if len(head.tags) != audio_emb.shape[0]:
        raise ValueError(f"head {head.name!r}: {len(head.tags)} tag lists for {audio_emb.shape[0]} embeddings")
    a = F.normalize(audio_emb, dim=-1)
    te = F.normalize(head.tag_embeddings, dim=-1)
    logits = a @ te.t()
    # everything about the tags is decided on the host: no device->host sync in this loss
    rows = [i for i, t in enumerate(head.tags) if len(t) > 0]
    if not rows:
        return logits.sum() * 0.0, 0
    valid_tags = [head.tags[i] for i in rows]
    targets = multi_hot(valid_tags, head.tag_to_idx, dtype=logits.dtype).to(logits.device, non_blocking=True)
    if len(rows) < len(head.tags):
        logits = logits.index_select(0, torch.tensor(rows, device=logits.device))
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="mean")
    return loss, len(rows)


def multitask_loss(text_emb: torch.Tensor, audio_emb: torch.Tensor, logit_scale, heads: Sequence[ClassificationHead] = (),
                   *, classification_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """``{"total_loss", "contrastive_loss", "classification_loss"}`` (+ ``"valid_<name>"`` counts)."""
    contrastive = clip_loss(text_emb, audio_emb, logit_scale)
    out: dict = {"contrastive_loss": contrastive}
    if heads:
        losses = []
        for h in heads:
            l, n = classification_loss(audio_emb, h)
            losses.append(l)
            out[f"valid_{h.name}"] = n
        cls = torch.stack(losses).mean()
    else:
        cls = contrastive.new_zeros(())
    out["classification_loss"] = cls
    out["total_loss"] = contrastive + classification_weight * cls if heads else contrastive
    return out
