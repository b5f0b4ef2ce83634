"""Validation during training: contrastive loss and R@1 both ways on a held-out manifest, across every rank."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .. import losses as L
from ..data.collate import Collator
from ..data.dataset import ParaSpeechCapsDataset
from ..data.samplers import ShuffleBatchSampler
from ..data.sources import Table, load_sources
from ..evaluate import metrics as M
from .config import Config
from .state import worker_ignore_signals
from .step import to_device

logger = logging.getLogger("paraspeechclap.train")


def retrieval_r1(audio: torch.Tensor, text: torch.Tensor, captions: Sequence[str]) -> dict:
    """R@1 (percent) both ways over exact-unique captions, with ``evaluate``'s metric functions (so validation and
    ``paraspeechclap evaluate`` agree, ties included: a tie counts against the correct item). Rows L2-normalised."""
    unique, targets = M.deduplicate_captions(list(captions))
    first = [int(np.flatnonzero(targets == j)[0]) for j in range(len(unique))]
    sim = (audio.double() @ text[first].double().t()).numpy()
    a2t = M.audio_to_text_ranks(sim, targets)
    t2a = M.text_to_audio_ranks(sim, targets)
    return {"R@1_A2T": float(100.0 * np.mean(a2t <= 1)), "R@1_T2A": float(100.0 * np.mean(t2a <= 1))}


@dataclass
class ValidationPart:
    """What one rank saw: item indices with their normalised embeddings and captions, loss sums, unreadable items."""

    indices: list[int] = field(default_factory=list)
    audio: list[torch.Tensor] = field(default_factory=list)
    text: list[torch.Tensor] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    loss_sum: float = 0.0
    loss_batches: int = 0
    unreadable: int = 0

    def gatherable(self) -> tuple:
        return (self.indices, torch.cat(self.audio) if self.audio else None,
                torch.cat(self.text) if self.text else None, self.captions, self.loss_sum, self.loss_batches,
                self.unreadable)


class Validator:
    """Loads the validation set once (on first use) and measures a model on it; rank 0 gets the result row."""

    def __init__(self, cfg: Config, dist, normalize: bool):
        self.cfg, self.dist, self.normalize = cfg, dist, normalize
        self._data: tuple | None = None

    def _dataset(self) -> tuple[ParaSpeechCapsDataset, ShuffleBatchSampler]:
        if self._data is None:
            cfg, v = self.cfg, self.cfg.validation
            audio_root = v.audio_root or cfg.data.audio_root
            table = load_sources(v.data, split=v.split or cfg.data.split, audio_root=audio_root)
            if not isinstance(table, Table):
                raise ValueError("validation data must be map-style (not streaming)")
            if v.max_items and len(table) > int(v.max_items):
                from ..data.sources import MixedTable

                first = int(v.max_items)
                table = MixedTable([table], np.stack([np.zeros(first, int), np.arange(first)], 1))
            dataset = ParaSpeechCapsDataset(table, audio_root=audio_root, train=False, normalize=self.normalize,
                                            caption_column=cfg.data.caption_column, max_seconds=v.max_seconds)
            sampler = ShuffleBatchSampler(len(table), int(v.batch_size), world_size=self.dist.world_size,
                                          rank=self.dist.rank, shuffle=False)
            self._data = (dataset, sampler)
        return self._data

    @torch.no_grad()
    def _local_part(self, model) -> ValidationPart:
        """Embeds this rank's share of the validation set (the model in eval mode, then back as it was)."""
        dataset, sampler = self._dataset()
        device = self.dist.device
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler,
                                             num_workers=min(2, int(self.cfg.data.num_workers)),
                                             worker_init_fn=worker_ignore_signals,
                                             collate_fn=Collator(mask_padding=True),
                                             generator=torch.Generator().manual_seed(0))
        part = ValidationPart()
        was_training = model.training
        model.eval()
        for batch in loader:
            part.unreadable += len(batch.get("errors") or [])
            if not batch["size"]:
                continue
            audio = batch["audio"].to(device)
            mask = batch["audio_attention_mask"].to(device)
            tokens = to_device(model.tokenize(batch["text"], max_length=512), device)
            text_emb, audio_emb, logit_scale = model(audio, tokens, audio_attention_mask=mask)
            text_emb, audio_emb = text_emb.float(), audio_emb.float()
            if len(batch["text"]) > 1:
                part.loss_sum += float(L.clip_loss(text_emb, audio_emb, logit_scale.float()))
                part.loss_batches += 1
            part.indices += [int(i) for i in batch["indices"]]
            part.audio.append(torch.nn.functional.normalize(audio_emb, dim=-1).cpu())
            part.text.append(torch.nn.functional.normalize(text_emb, dim=-1).cpu())
            part.captions += list(batch["text"])
        model.train(was_training)
        return part

    def __call__(self, model, step: int) -> dict | None:
        """Collective: every rank embeds its share; rank 0 merges them (each item once) and returns the row
        ``{step, val_loss, R@1_A2T, R@1_T2A, items, skipped_items}``; other ranks (or no readable item) get None."""
        parts = L.gather_objects(self._local_part(model).gatherable())
        if not self.dist.is_main:
            return None
        seen: set[int] = set()
        audio, text, captions = [], [], []
        loss_sum, loss_batches, unreadable = 0.0, 0, 0
        for indices, part_audio, part_text, part_captions, part_loss, part_batches, part_unreadable in parts:
            loss_sum, loss_batches = loss_sum + part_loss, loss_batches + part_batches
            unreadable += part_unreadable
            for k, index in enumerate(indices):
                if index in seen:  # the sampler wraps items around so ranks get equal shares
                    continue
                seen.add(index)
                audio.append(part_audio[k])
                text.append(part_text[k])
                captions.append(part_captions[k])
        if not audio:
            logger.warning("validation: no readable item")
            return None
        recall = retrieval_r1(torch.stack(audio), torch.stack(text), captions)
        return {"step": step, "val_loss": loss_sum / max(loss_batches, 1), **recall, "items": len(audio),
                "skipped_items": unreadable}
