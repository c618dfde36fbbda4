"""Samplers: (index, epoch) pairs, seeded shuffles that resume exactly, eval shards without repeats."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DistributedSampler, SequentialSampler

from inflate import InvalidInputError
from inflate.data import EpochSampler, ShardSampler, ShuffleSampler, set_loader_epoch


class _Sized:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


@pytest.mark.parametrize("n", [7, 8, 1], ids=["odd", "even", "one"])
def test_eval_shards_cover_every_index_once(n):
    dataset = _Sized(n)
    shards = [list(EpochSampler(ShardSampler(dataset, num_replicas=2, rank=rank))) for rank in range(2)]
    indices = [i for shard in shards for i, _ in shard]
    assert sorted(indices) == list(range(n))  # each once: no padding repeats
    assert [len(ShardSampler(dataset, num_replicas=2, rank=r)) for r in range(2)] == [len(s) for s in shards]
    # PyTorch's DistributedSampler, for comparison, repeats samples to even the shards out.
    padded = [i for r in range(2) for i in DistributedSampler(dataset, num_replicas=2, rank=r, shuffle=False)]
    assert len(padded) == n + n % 2


def test_training_shards_follow_distributed_sampler_epochs():
    dataset = _Sized(10)
    samplers = [EpochSampler(DistributedSampler(dataset, num_replicas=2, rank=r, shuffle=True, seed=4))
                for r in range(2)]
    orders = []
    for epoch in (0, 1):
        for sampler in samplers:
            sampler.set_epoch(epoch)
        pairs = [p for sampler in samplers for p in sampler]
        assert {e for _, e in pairs} == {epoch}
        assert sorted(i for i, _ in pairs) == list(range(10))
        orders.append([i for i, _ in pairs])
    assert orders[0] != orders[1]


def test_shuffle_depends_on_seed_and_epoch_only():
    sampler = ShuffleSampler(50, seed=1)
    seen = []
    for epoch in range(4):
        sampler.set_epoch(epoch)
        seen.append(list(sampler))
        assert sorted(seen[-1]) == list(range(50))
    assert len({tuple(s) for s in seen}) == 4
    resumed = ShuffleSampler(50, seed=1)  # a fresh process resuming at epoch 3
    resumed.set_epoch(3)
    assert list(resumed) == seen[3]
    other = ShuffleSampler(50, seed=2)
    other.set_epoch(3)
    assert list(other) != seen[3]


def test_epoch_sampler_tags_indices_and_set_loader_epoch():
    sampler = EpochSampler(SequentialSampler(range(3)))
    loader = torch.utils.data.DataLoader(range(3), sampler=sampler, batch_size=2, collate_fn=list)
    set_loader_epoch(loader, 5)
    assert list(sampler) == [(0, 5), (1, 5), (2, 5)]
    plain = torch.utils.data.DataLoader(range(3), batch_size=2)
    with pytest.raises(InvalidInputError, match="build_loader"):
        set_loader_epoch(plain, 1)
