"""PyTorch DDP under torchrun: the process group from the environment torchrun sets, nothing home-made."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.distributed as dist

__all__ = ["Context", "setup", "teardown", "cudnn_autotuning", "all_sum", "gather_objects", "barrier", "average_buffers"]


@dataclass(frozen=True)
class Context:
    """Where this process runs: its rank among ``world_size`` and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _choose_device(requested: Optional[str], local_rank: int) -> torch.device:
    if requested:
        from ..core.errors import InvalidInputError

        try:
            device = torch.device(requested)
        except (RuntimeError, TypeError):
            raise InvalidInputError(f"--device {requested!r} is not a torch device; use cpu, cuda or cuda:N") from None
        if device.type not in ("cpu", "cuda"):
            raise InvalidInputError(f"--device {requested}: training and evaluation run on cpu or cuda[:N]")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InvalidInputError(f"--device {requested}: CUDA is not available here; use --device cpu")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise InvalidInputError(f"--device {requested}: this machine has {torch.cuda.device_count()} GPU(s)")
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", local_rank)
        return device
    return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")


def setup(requested_device: Optional[str] = None) -> Context:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK), if any.

    gloo on the CPU, nccl on CUDA. A plain ``python``/``inflate`` process is rank 0 of 1.
    """
    from ..flow.extract import ranks_from_env

    rank, world_size, local_rank, _ = ranks_from_env()
    device = _choose_device(requested_device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world_size,
                                **({"device_id": device} if device.type == "cuda" else {}))
    return Context(rank, world_size, local_rank, device)


@contextlib.contextmanager
def cudnn_autotuning(enabled: bool, device: torch.device) -> Iterator[None]:
    """cuDNN's benchmark mode (each convolution shape's fastest algorithm, timed on first use) on or
    off while the block runs on a CUDA ``device``, the previous setting restored after; nothing on
    other devices. Off gives bit-reproducible convolutions."""
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = bool(enabled)
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def teardown(context: Context) -> None:
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(values: list[float], context: Context) -> list[float]:
    """Sum a few numbers over the ranks (float64 on the process group's device)."""
    if not context.distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=context.device if context.device.type == "cuda" else "cpu")
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather_objects(value: object, context: Context) -> list[object]:
    """Every rank's ``value``, in rank order (on every rank)."""
    if not context.distributed:
        return [value]
    out: list[object] = [None] * context.world_size
    dist.all_gather_object(out, value)
    return out


def barrier(context: Context) -> None:
    if context.distributed:
        dist.barrier()


def average_buffers(model: torch.nn.Module, context: Context) -> None:
    """Average the floating buffers (BN running statistics) over the ranks, as timm's ``distribute_bn``.

    DDP keeps parameters equal but each rank updates its own running statistics, so without
    this the ranks would validate, and rank 0 would save, statistics of one shard only.
    """
    if not context.distributed:
        return
    for buffer in model.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
            buffer.div_(context.world_size)
