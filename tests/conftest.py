"""Shared fixtures: seeded torch, and models with weights that make the checks meaningful."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # One thread per worker keeps timings comparable on the 2-core CI machine.
    torch.set_num_threads(max(1, torch.get_num_threads()))
