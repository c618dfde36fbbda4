"""DataLoaders that are seeded, resumable and shardable: samplers yield ``(index, epoch)`` pairs.

Training shuffles with a permutation drawn from a ``torch.Generator`` seeded by (seed, epoch),
so epoch e's order does not depend on how many epochs this process has run: a run resumed
at epoch e sees exactly the order an uninterrupted one does. Under DDP the shuffle is
PyTorch's ``DistributedSampler(seed=seed)`` (which pads the last round with repeats so ranks
stay in step). Evaluation under DDP uses :class:`ShardSampler`: rank r takes indices
r, r + W, r + 2W, … with no padding, so every sample is evaluated exactly once across the W
ranks (the ranks may then hold one batch more or less: gather results with
``all_gather_object`` or padded ``all_gather``, and evaluate the bare module, not the DDP
wrapper, whose forward would wait on the other ranks).

Call :func:`set_loader_epoch` before iterating each epoch.
"""

from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

from ..core.errors import InvalidInputError
from .clips import collate_clips
from .video import set_decode_threads

__all__ = ["EpochSampler", "ShuffleSampler", "ShardSampler", "build_loader", "set_loader_epoch", "worker_init"]


class ShuffleSampler(Sampler[int]):
    """A random permutation of range(n) drawn from a torch.Generator seeded by (seed, epoch)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator()
        # SeedSequence mixes the pair, so (seed 0, epoch 1) and (seed 1, epoch 0) differ.
        generator.manual_seed(int(np.random.SeedSequence((self.seed, self.epoch)).generate_state(1, np.uint64)[0] >> 1))
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n


class ShardSampler(DistributedSampler):
    """Rank r of W takes indices r, r + W, …: each sample once across ranks, no padding repeats."""

    def __init__(self, dataset: Dataset, num_replicas: int | None = None, rank: int | None = None) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.num_samples = len(range(self.rank, len(dataset), self.num_replicas))
        self.total_size = len(dataset)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))


class EpochSampler(Sampler[tuple[int, int]]):
    """Wraps any sampler of indices and yields ``(index, epoch)``; ``set_epoch`` reaches the inner one."""

    def __init__(self, sampler: Sampler[int]) -> None:
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(self.epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        for index in self.sampler:
            yield int(index), epoch

    def __len__(self) -> int:
        return len(self.sampler)


def worker_init(worker_id: int) -> None:
    """DataLoader worker setup: one thread for torch, FFmpeg and OpenCV each; seeded Python/numpy RNGs.

    The clips' own randomness does not use these (it comes from (seed, epoch, index)); seeding
    them keeps anything else a transform might draw reproducible too.
    """
    torch.set_num_threads(1)
    set_decode_threads(1)
    try:
        import cv2

        cv2.setNumThreads(0)  # 0: OpenCV runs its functions on the calling thread
    except ImportError:  # pragma: no cover
        pass
    seed = torch.initial_seed() % 2**32  # base seed (from the loader's generator) + worker id
    random.seed(seed)
    np.random.seed(seed)


def build_loader(
    dataset: Dataset,
    *,
    batch: int,
    workers: int,
    train: bool,
    seed: int = 0,
    distributed: bool = False,
    drop_last: bool | None = None,
    pin_memory: bool | None = None,
    prefetch: int | None = None,
) -> DataLoader:
    """A DataLoader over ``dataset`` (a :class:`~inflate.data.ClipDataset`) whose batches are :func:`collate_clips` dicts.

    Training shuffles (:class:`ShuffleSampler`, or ``DistributedSampler(seed=seed)`` when
    ``distributed``); evaluation is in order (:class:`ShardSampler` when ``distributed``).
    ``drop_last`` defaults to dropping a ragged last batch in training when at least one full
    batch remains, never in evaluation. ``pin_memory`` defaults to CUDA being available.
    Workers persist across epochs, each with one decoding thread. ``prefetch`` is batches
    loaded ahead per worker (PyTorch's default 2).
    """
    if batch < 1:
        raise InvalidInputError(f"batch must be at least 1, got {batch}")
    if workers < 0:
        raise InvalidInputError(f"workers must be >= 0, got {workers}")
    if getattr(dataset, "eval_views", None) == "whole" and not getattr(dataset, "train", False) and batch != 1:
        raise InvalidInputError("eval_views='whole' gives one clip length per video: use batch 1")
    if distributed:
        if not torch.distributed.is_available() or not torch.distributed.is_initialized():
            raise InvalidInputError("distributed=True needs torch.distributed initialised (run under torchrun)")
        inner: Sampler[int] = (DistributedSampler(dataset, shuffle=True, seed=seed, drop_last=False)
                               if train else ShardSampler(dataset))
    else:
        inner = ShuffleSampler(len(dataset), seed) if train else SequentialSampler(dataset)
    sampler = EpochSampler(inner)
    if drop_last is None:
        drop_last = bool(train) and len(sampler) >= batch
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    extra = {}
    if workers > 0:
        extra = {"persistent_workers": True, "worker_init_fn": worker_init}
        if prefetch is not None:
            extra["prefetch_factor"] = int(prefetch)
    return DataLoader(
        dataset,
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_clips,
        pin_memory=pin_memory,
        drop_last=drop_last,
        generator=generator,
        **extra,
    )


def set_loader_epoch(loader: DataLoader, epoch: int) -> None:
    """Tell ``loader``'s sampler which epoch comes next (its shuffle and the clips' randomness depend on it)."""
    sampler = loader.sampler if hasattr(loader.sampler, "set_epoch") else getattr(loader.batch_sampler, "sampler", None)
    if sampler is None or not hasattr(sampler, "set_epoch"):
        raise InvalidInputError("this DataLoader's sampler has no set_epoch; build it with build_loader")
    sampler.set_epoch(epoch)
