"""Process-group set-up: torchrun environment detection, NCCL on GPU / gloo on CPU, single device
without torchrun."""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch

logger = logging.getLogger("paraspeechclap.train")


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_world() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun / SLURM-style variables; (0, 1, 0) when absent."""
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return rank, world, local


def pick_device(spec: str | None, local_rank: int = 0) -> torch.device:
    spec = (spec or "auto").lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        return torch.device("cpu")
    if spec == "cuda":
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return torch.device(spec)


def setup(device: str | None = "auto", backend: str = "auto", timeout_minutes: float = 30) -> DistInfo:
    """Initialise the process group when launched with more than one process (torchrun sets
    RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT); otherwise just pick the device."""
    rank, world, local = env_world()
    dev = pick_device(device, local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    info = DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)
    if world > 1 and not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        if backend == "auto":
            backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = {}
        if backend == "nccl" and dev.type == "cuda":
            kwargs["device_id"] = dev
        torch.distributed.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world,
                                             timeout=datetime.timedelta(minutes=timeout_minutes), **kwargs)
        info.initialized_here = True
        logger.info("process group: backend %s, rank %d/%d, device %s", backend, rank, world, dev)
    elif torch.distributed.is_available() and torch.distributed.is_initialized():
        info.rank = torch.distributed.get_rank()
        info.world_size = torch.distributed.get_world_size()
    return info


def cleanup(info: DistInfo) -> None:
    if info.initialized_here and torch.distributed.is_initialized():
        try:
            torch.distributed.barrier()
        except Exception:  # noqa: BLE001
            pass
        torch.distributed.destroy_process_group()


def barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def all_reduce_sum(values: list[float], device) -> list[float]:
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()


def all_reduce_min(value: int, device) -> int:
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return int(value)
    t = torch.tensor([int(value)], dtype=torch.long, device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
    return int(t.item())


def broadcast_object(obj, src: int = 0):
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=src)
    return box[0]
