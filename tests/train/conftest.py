from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 motion classes, 2 training and 1 validation video each, 10 frames of 32²: for plumbing tests."""
    from inflate.data import make_motion_dataset

    return make_motion_dataset(tmp_path_factory.mktemp("tiny") / "videos", per_class=2, per_class_val=1, frames=10,
                               size=32, seed=3)


@pytest.fixture()
def videos(tiny_videos: Path, tmp_path: Path) -> Path:
    """A copy of tiny_videos that a test may change."""
    copy = tmp_path / "videos"
    shutil.copytree(tiny_videos, copy)
    return copy
