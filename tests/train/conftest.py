from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 motion classes, 2 training and 1 validation video each, 10 frames of 32²: for plumbing tests."""
    from inflate.data import make_motion_dataset

    return make_motion_dataset(tmp_path_factory.mktemp("tiny") / "videos", per_class=2, per_class_val=1, frames=10,
                               size=32, seed=3)
