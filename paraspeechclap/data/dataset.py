"""The training / evaluation dataset: audio at 16 kHz mono, normalised, randomly cropped; captions; tags.

Items are addressed either by a row index (randomness from a per-worker generator seeded from
PyTorch's worker seed) or by ``(row_index, item_seed)`` as the samplers of :mod:`.samplers` yield
them: then the crop start and the caption choice depend only on that seed (derived from the run
seed, the epoch and the position in the epoch), so a resumed run, or one with another number of
workers, loads exactly the same audio.

Unreadable or missing audio never raises inside a worker: the item comes back as
``{"error": reason, "path": ..., "index": ...}`` and :func:`.collate.collate` drops it and reports
it, so the trainer can count it, log the path and either skip it or stop (``data.on_bad_audio``).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Sequence

import numpy as np
import torch

from . import schema
from .rows import DIRECT_COLUMNS
from .sources import AUDIO_ROOT_KEY, Table

logger = logging.getLogger("paraspeechclap.data")

SAMPLING_RATE = 16000


def _load_audio(source, name=None):
    from ..audio import load_audio

    return load_audio(source, SAMPLING_RATE, name=name)


def _normalize(wave):
    from ..audio import normalize_waveform

    return normalize_waveform(wave)


def crop_or_pad(wave: np.ndarray, crop: int, rng: np.random.Generator | None, *, pad: bool = True) -> tuple[np.ndarray, int]:
    """The reference's RandomCrop: a window of exactly ``crop`` samples, start uniform in [0, L - crop]
    (both ends inclusive; the first window when ``rng`` is None); shorter clips are right-padded with
    zeros to ``crop`` (``pad``) or returned whole. Returns ``(wave, real_length)``."""
    n = len(wave)
    if n > crop:
        start = int(rng.integers(0, n - crop + 1)) if rng is not None else 0
        return wave[start:start + crop], crop
    if n < crop and pad:
        out = np.zeros(crop, dtype=np.float32)
        out[:n] = wave
        return out, n
    return wave, n


class ParaSpeechCapsDataset(torch.utils.data.Dataset):
    """Map-style dataset over a :class:`~.sources.Table` of ParaSpeechCaps rows.

    Args:
        table: the rows.
        audio_root: ``{audio_root}/{source}/{relative_audio_path}`` (a per-source root in the row wins).
        train: training mode (random crop, random caption) or evaluation (full clip or the first
            ``max_seconds``, the first caption).
        crop_seconds: training crop length (``None``/0: no crop).
        random_crop: draw the crop start at random (else the first window).
        mask_padding: keep clips shorter than the crop unpadded (the collate pads and masks them)
            instead of zero-padding to the crop length and counting the zeros as audio (the reference).
        normalize: per-utterance zero mean / unit variance over the whole clip before the crop, or a
            callable applied to the waveform.
        caption_column: the caption column (string or list of strings); ``None`` for none.
        tag_columns: tag columns to return, normalised.
        seed: seeds the per-worker generators for integer keys.
        max_seconds: evaluation only: cap on the clip length.
    """

    def __init__(self, table: Table, *, audio_root: str | os.PathLike | None = None, train: bool = True,
                 crop_seconds: float | None = 10.0, random_crop: bool = True, mask_padding: bool = False,
                 normalize: bool | Callable[[np.ndarray], np.ndarray] = True,
                 caption_column: str | None = schema.TEXT_DESCRIPTION, tag_columns: Sequence[str] = (),
                 seed: int = 0, max_seconds: float | None = None, sampling_rate: int = SAMPLING_RATE):
        self.table = table
        self.audio_root = None if audio_root is None else str(audio_root)
        self.train = train
        self.crop = int(round(crop_seconds * sampling_rate)) if crop_seconds else 0
        self.random_crop = random_crop
        self.mask_padding = mask_padding
        self.normalize = normalize
        self.caption_column = caption_column
        self.tag_columns = tuple(tag_columns)
        self.seed = int(seed)
        self.max_samples = int(round(max_seconds * sampling_rate)) if max_seconds else 0
        self.sampling_rate = sampling_rate
        self._rng: np.random.Generator | None = None
        self._rng_pid: int | None = None

    def __len__(self) -> int:
        return len(self.table)

    # ---------------------------------------------------------------- randomness
    def _worker_rng(self) -> np.random.Generator:
        pid = os.getpid()
        if self._rng is None or self._rng_pid != pid:
            info = torch.utils.data.get_worker_info()
            base = info.seed if info is not None else torch.initial_seed()
            self._rng = np.random.default_rng([self.seed, int(base) % (2**63)])
            self._rng_pid = pid
        return self._rng

    # ---------------------------------------------------------------- items
    def path_of(self, row: dict) -> str:
        return schema.audio_path(row, row.get(AUDIO_ROOT_KEY) or self.audio_root)

    def _audio_source(self, row: dict):
        a = row.get("audio")
        named = any(isinstance(row.get(c), str) and row[c].strip() for c in (*DIRECT_COLUMNS, schema.RELATIVE_AUDIO_PATH))
        if not named and isinstance(a, dict):  # a Hugging Face audio cell: decoded array or stored bytes first
            if a.get("array") is not None:
                return (np.asarray(a["array"], dtype=np.float32), int(a["sampling_rate"])), a.get("path") or "<array>"
            if a.get("bytes") is not None:
                return a["bytes"], a.get("path") or "<bytes>"
        p = self.path_of(row)  # the one path rule (data.rows.resolve_audio_path)
        return p, p

    def __getitem__(self, key: Any) -> dict:
        if isinstance(key, (tuple, list)):
            index, item_seed = int(key[0]), int(key[1])
            rng = np.random.default_rng(item_seed)
        else:
            index = int(key)
            rng = self._worker_rng() if self.train else None
        path = None
        try:
            row = self.table[index]
            source, path = self._audio_source(row)
            item: dict = {"index": index, "path": path}
            if self.caption_column:
                caps = schema.captions(row.get(self.caption_column))
                if not caps:
                    return {"error": f"no caption in column {self.caption_column!r}", "path": path, "index": index}
                if self.train and len(caps) > 1:
                    item["text"] = caps[int(rng.integers(len(caps)))]
                else:
                    item["text"] = caps[0]
            for col in self.tag_columns:
                item[col] = schema.normalize_tags(row.get(col))
            wave = _load_audio(source, name=path)
        except Exception as err:  # noqa: BLE001 - any failure becomes a counted, logged skip
            return {"error": f"{type(err).__name__}: {err}", "path": path, "index": index}
        if callable(self.normalize):
            wave = self.normalize(wave)
        elif self.normalize:
            wave = _normalize(wave)
        if self.train and self.crop:
            wave, length = crop_or_pad(wave, self.crop, rng if self.random_crop else None, pad=not self.mask_padding)
        elif not self.train and self.max_samples and len(wave) > self.max_samples:
            wave, length = wave[: self.max_samples], self.max_samples
        else:
            length = len(wave)
        item["audio"] = np.ascontiguousarray(wave, dtype=np.float32)
        item["length"] = int(length)
        return item


class StreamingParaSpeechCapsDataset(torch.utils.data.IterableDataset):
    """Iterable version for streaming HF datasets: sharded by rank and by DataLoader worker,
    shuffled with a buffer seeded by ``seed + epoch``. For resume, ``skip_batches`` batches of
    ``batch_size`` already consumed by this rank are dropped again: the DataLoader takes batches from
    its workers in turn, so worker w had produced ceil((k - w) / num_workers) of the first k."""

    def __init__(self, stream, item_dataset: ParaSpeechCapsDataset, *, rank: int = 0, world_size: int = 1,
                 seed: int = 0, shuffle_buffer: int = 1000):
        self.stream = stream
        self.items = item_dataset
        self.rank, self.world_size = rank, world_size
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.epoch = 0
        self.skip_batches = 0
        self.batch_size = 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        ds = self.stream
        if self.shuffle_buffer and self.items.train:
            ds = ds.shuffle(seed=self.seed + self.epoch, buffer_size=self.shuffle_buffer)
        info = torch.utils.data.get_worker_info()
        nw, wid = (info.num_workers, info.id) if info is not None else (1, 0)
        shards, shard = self.world_size * nw, self.rank * nw + wid
        k = self.skip_batches
        skip = max(0, -(-(k - wid) // nw)) * self.batch_size if k > wid else 0
        for pos, row in enumerate(ds):
            if pos % shards != shard:
                continue
            local = pos // shards
            if local < skip:
                continue
            table = _OneRow(row)
            self.items.table = table
            seed = int(np.random.SeedSequence([self.seed, self.epoch, pos]).generate_state(1, np.uint64)[0] >> 1)
            yield self.items[(0, seed)]


class _OneRow:
    def __init__(self, row):
        self.row = row

    def __getitem__(self, i):
        return dict(self.row)

    def __len__(self):
        return 1
