"""What a run trains on: the training set, its sampler and loaders, classification heads, and unreadable items."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch

from ..data import schema
from ..data.collate import Collator
from ..data.dataset import ParaSpeechCapsDataset, StreamingParaSpeechCapsDataset
from ..data.samplers import BalancedBatchSampler, ShuffleBatchSampler
from ..data.sources import Table, load_sources
from . import distributed as D
from .building import model_normalizes
from .config import Config
from .order import OrderLoss
from .state import worker_ignore_signals
from .step import HeadSpec, synonym_templates

logger = logging.getLogger("paraspeechclap.train")


class DataError(RuntimeError):
    """The run stopped because of its data (unreadable audio with data.on_bad_audio=error, too many bad items)."""


class TrainingData:
    """The training set of a config on this rank: dataset, batch sampler (None when streaming), collator, the
    classification heads and the order loss (None when off). Loaders depend only on (seed, epoch, position)."""

    def __init__(self, cfg: Config, dist, model):
        self.cfg, self.dist = cfg, dist
        d = cfg.data
        seed = int(cfg.run.seed)
        tag_columns = list(cfg.loss.tag_columns or []) if cfg.loss.classification else []
        sampler_column = cfg.sampler.tag_column or (cfg.loss.tag_columns or [None])[0]
        wanted_tags = sorted(set(tag_columns)
                             | ({sampler_column} if cfg.sampler.balanced and sampler_column else set()))
        data = load_sources(d.train, split=d.split, streaming=bool(d.streaming), audio_root=d.audio_root,
                            mode=d.mixing, probabilities=d.probabilities, stopping_strategy=d.stopping_strategy,
                            seed=seed)
        normalize = d.normalize
        if normalize == "auto":
            said = model_normalizes(model)
            normalize = True if said is None else said
        self.normalize = bool(normalize)
        items = ParaSpeechCapsDataset(
            data if isinstance(data, Table) else None, audio_root=d.audio_root, train=True,
            crop_seconds=d.crop_seconds, random_crop=bool(d.random_crop), mask_padding=bool(d.mask_padding),
            normalize=self.normalize, caption_column=d.caption_column, tag_columns=wanted_tags, seed=seed)
        self.collator = Collator(mask_padding=bool(d.mask_padding), tag_columns=wanted_tags)
        self.order = None
        if cfg.loss.order.data:
            self.order = OrderLoss.from_config(
                cfg.loss.order, audio_root=d.audio_root, crop_seconds=d.crop_seconds, random_crop=bool(d.random_crop),
                mask_padding=bool(d.mask_padding), normalize=self.normalize, caption_column=d.caption_column,
                tag_columns=wanted_tags, template=cfg.loss.prompt_template, seed=seed)
        self.heads: list[HeadSpec] = []
        if isinstance(data, Table):
            schema.check_columns(data.column_names, tag_columns=wanted_tags, caption_column=d.caption_column,
                                 where=f"training data {getattr(data, 'name', '')}")
            self.table, self.dataset, self.streaming = data, items, False
            self.heads = self._classification_heads(data, tag_columns)
            self.sampler = self._map_style_sampler(data, sampler_column)
        else:
            if cfg.sampler.balanced:
                raise ValueError("sampler.balanced needs a map-style dataset (data.streaming=false)")
            if tag_columns:
                raise ValueError("loss.classification needs the tag vocabulary: use a map-style dataset")
            self.table, self.sampler, self.streaming = None, None, True
            self.dataset = StreamingParaSpeechCapsDataset(data, items, rank=dist.rank, world_size=dist.world_size,
                                                          seed=seed, shuffle_buffer=int(d.shuffle_buffer))
            self.dataset.batch_size = int(cfg.optim.batch_size)

    def _classification_heads(self, table: Table, tag_columns: list[str]) -> list[HeadSpec]:
        """One head per tag column with tags (the vocabulary is rank 0's, so every rank has the same)."""
        if not tag_columns:
            return []
        template = self.cfg.loss.prompt_template
        templates = synonym_templates(self.cfg.loss.synonym_templates)
        heads = []
        for column in tag_columns:
            vocab = D.broadcast_object(schema.build_vocabulary(table.column(column)))
            if not vocab:
                logger.warning("tag column %s has no tags; its head is skipped", column)
                continue
            missing = [t for t in vocab if t not in templates]
            if missing:
                logger.info("%s: %d tag(s) without synonym templates use %r: %s", column, len(missing), template,
                            ", ".join(missing))
            heads.append(HeadSpec(column, vocab, templates, template))
        if not heads:
            raise ValueError("classification is on but every tag vocabulary is empty")
        return heads

    def _map_style_sampler(self, table: Table, sampler_column: str | None):
        cfg, dist = self.cfg, self.dist
        batch_size, seed = int(cfg.optim.batch_size), int(cfg.run.seed)
        if not cfg.sampler.balanced:
            return ShuffleBatchSampler(len(table), batch_size, world_size=dist.world_size, rank=dist.rank, seed=seed,
                                       shuffle=bool(cfg.sampler.shuffle))
        s = cfg.sampler
        sampler = BalancedBatchSampler(
            table.column(sampler_column), batch_size, world_size=dist.world_size, rank=dist.rank, seed=seed,
            weighting=s.weighting, min_rare_per_batch=int(s.min_rare_per_batch),
            rare_tag_threshold=float(s.rare_tag_threshold), num_samples=s.num_samples)
        logger.info("balanced sampling on %s: %d tags, %d rare (< %.3g), %d rare rows", sampler_column,
                    len(sampler.stats.counts), len(sampler.rare), s.rare_tag_threshold, len(sampler.rare_rows))
        return sampler

    def loader(self, epoch: int, position: int) -> torch.utils.data.DataLoader:
        """The batches of ``epoch`` from batch ``position`` on."""
        d = self.cfg.data
        workers = int(d.num_workers)
        kw: dict[str, Any] = dict(num_workers=workers, collate_fn=self.collator, worker_init_fn=worker_ignore_signals,
                                  pin_memory=self.dist.device.type == "cuda",
                                  generator=torch.Generator().manual_seed(int(self.cfg.run.seed) + epoch))
        if workers > 0:
            kw["prefetch_factor"] = int(d.prefetch_factor)
        if self.streaming:
            self.dataset.set_epoch(epoch)
            self.dataset.skip_batches = position
            return torch.utils.data.DataLoader(self.dataset, batch_size=int(self.cfg.optim.batch_size), **kw)
        self.sampler.set_epoch(epoch)
        self.sampler.set_position(position)
        return torch.utils.data.DataLoader(self.dataset, batch_sampler=self.sampler, **kw)

    def steps_per_epoch(self) -> int | None:
        if self.streaming:
            return None
        return math.ceil(len(self.sampler) / int(self.cfg.optim.grad_accum))


class UnreadableItems:
    """Counts unreadable items, logs each with its path (``bad_audio.tsv`` in the run folder), and stops the run
    (every rank together) at ``data.on_bad_audio=error`` or past ``data.max_bad_fraction``."""

    def __init__(self, cfg: Config, dist, run_dir: Path):
        self.cfg, self.dist = cfg, dist
        self.path = run_dir / ("bad_audio.tsv" if dist.rank == 0 else f"bad_audio.rank{dist.rank}.tsv")

    def account(self, batch: dict, counters: dict) -> None:
        errs = batch.get("errors") or []
        counters["items_read"] += batch["size"] + len(errs)
        bad_flag = 0
        if errs:
            counters["bad_items"] += len(errs)
            for path, reason in errs:
                logger.warning("unreadable item skipped: %s (%s)", path, reason)
            self._append(errs)
            if self.cfg.data.on_bad_audio == "error":
                bad_flag = 1
        frac = float(self.cfg.data.max_bad_fraction or 0)
        if frac and counters["items_read"] >= 20 and counters["bad_items"] > frac * counters["items_read"]:
            bad_flag = 2
        if self.dist.distributed:
            t = torch.tensor([bad_flag], device=self.dist.device)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            bad_flag = int(t.item())
        if bad_flag == 1:
            where = f"{errs[0][0]} ({errs[0][1]})" if errs else "on another rank"
            raise DataError(f"unreadable audio: {where}; data.on_bad_audio=error stops the run "
                            f"(use data.on_bad_audio=skip to skip such items)")
        if bad_flag == 2:
            raise DataError(f"{counters['bad_items']} of {counters['items_read']} items were unreadable "
                            f"(more than data.max_bad_fraction={frac}); check data.audio_root")

    def _append(self, errs) -> None:
        try:
            with open(self.path, "a") as f:
                for p, reason in errs:
                    f.write(f"{p}\t{str(reason).replace(chr(9), ' ').replace(chr(10), ' ')}\n")
        except OSError as e:  # the paths are in the log above; the run itself is not at stake
            logger.warning("could not append to %s (%s)", self.path, e)
