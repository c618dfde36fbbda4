"""A generated dataset that only motion can solve: textured shapes moving left, right, up or down.

Each video is a static random textured background with a textured square (its own random
texture and tint, random size and start) that moves ``step`` pixels per frame in its
class's direction. Start positions are uniform over the range that keeps the square in view
for the whole video, so the set of trajectories of "left" is that of "right" played backwards:
a single frame, or the average of a clip's frames, carries no information about the class.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.errors import InvalidInputError
from .video import write_video

__all__ = ["DIRECTIONS", "motion_track", "motion_frames", "make_motion_dataset"]

DIRECTIONS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}


def _texture(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Blocky random colour texture with fine noise: strong edges make motion visible after compression."""
    coarse = rng.uniform(0, 255, size=(-(-height // cell), -(-width // cell), 3))
    blocks = np.repeat(np.repeat(coarse, cell, axis=0), cell, axis=1)[:height, :width]
    return 0.75 * blocks + 0.25 * rng.uniform(0, 255, size=(height, width, 3))


def motion_track(direction: str, rng: np.random.Generator, *, frames: int, size: int, step: int) -> tuple[int, np.ndarray]:
    """The square's side and its (top, left) corner in each frame: (frames, 2) ints.

    Along the motion axis the start is uniform over the positions that keep the square in view
    for the whole video; across it, uniform over the frame. "left" and "up" mirror "right" and
    "down", so each direction's positions have the same distribution as its opposite's.
    """
    if direction not in DIRECTIONS:
        raise InvalidInputError(f"unknown direction {direction!r}; choose from {', '.join(DIRECTIONS)}")
    dy, dx = DIRECTIONS[direction]
    travel = step * (frames - 1)
    smallest = max(4, size // 5)
    largest = min(size // 3, size - travel - 1)
    if largest < 4:
        raise InvalidInputError(
            f"a square moving {step} px/frame for {frames} frames does not fit in {size}x{size}; "
            f"use fewer frames, a smaller step or a larger size"
        )
    side = int(rng.integers(min(smallest, largest), largest + 1))
    free = size - side
    along = int(rng.integers(0, free - travel + 1))
    across = int(rng.integers(0, free + 1))
    moved = along + np.arange(frames) * step
    position = moved if (dy + dx) > 0 else free - moved  # left/up start on the far side
    across_all = np.full(frames, across)
    track = np.stack([position, across_all] if dy else [across_all, position], axis=1)
    return side, track


def motion_frames(direction: str, rng: np.random.Generator, *, frames: int, size: int, step: int) -> np.ndarray:
    """(frames, size, size, 3) uint8 frames of one video whose square moves ``step`` px/frame in ``direction``."""
    side, track = motion_track(direction, rng, frames=frames, size=size, step=step)
    # A muted background and a high-contrast square: the square is easy to see in any frame,
    # but where it is says nothing about where it goes.
    background = (48 + 0.6 * _texture(rng, size, size, max(2, size // 8))).astype(np.uint8)
    cells = rng.integers(0, 2, size=(-(-side // 3), -(-side // 3), 3)) * 255.0
    tint = rng.uniform(0.5, 1.0, size=3)
    square = (np.repeat(np.repeat(cells, 3, axis=0), 3, axis=1)[:side, :side] * tint).astype(np.uint8)
    video = np.repeat(background[None], frames, axis=0)
    for t, (top, left) in enumerate(track):
        video[t, top:top + side, left:left + side] = square
    return video


def make_motion_dataset(
    root: str | os.PathLike[str],
    *,
    classes: Sequence[str] = ("left", "right", "up", "down"),
    per_class: int,
    frames: int = 16,
    size: int = 64,
    seed: int = 0,
    splits: Sequence[str] = ("train", "val"),
    per_class_val: int | None = None,
    fps: int = 25,
    step: int | None = None,
    codec: str = "h264",
) -> Path:
    """Write ``root/<split>/<class>/<class>_NNNN.mp4`` (or ``root/<class>/…`` with ``splits=()``) and return ``root``.

    ``per_class`` videos per class for the first split, ``per_class_val`` (default: the same)
    for the others, each ``frames`` frames of ``size``² at ``fps``, h264 yuv420p (mpeg4 where
    libx264 is missing). ``step`` is the motion in pixels per frame (default ``max(1, size // 32)``,
    2 at 64²). The same ``seed`` writes the same frames; each split draws its own videos.
    """
    root = Path(root)
    if per_class < 1:
        raise InvalidInputError(f"per_class must be at least 1, got {per_class}")
    if size % 2:
        raise InvalidInputError(f"size must be even (yuv420p), got {size}")
    step = max(1, size // 32) if step is None else int(step)
    unknown = [c for c in classes if c not in DIRECTIONS]
    if unknown:
        raise InvalidInputError(f"unknown class {unknown[0]!r}; the motion classes are {', '.join(DIRECTIONS)}")
    folders = [(root / split, split_number) for split_number, split in enumerate(splits)] or [(root, 0)]
    for folder, split_number in folders:
        count = per_class if split_number == 0 or per_class_val is None else per_class_val
        for class_number, name in enumerate(classes):
            for video_number in range(count):
                rng = np.random.default_rng((seed, split_number, class_number, video_number))
                video = motion_frames(name, rng, frames=frames, size=size, step=step)
                write_video(folder / name / f"{name}_{video_number:04d}.mp4", video, fps=fps, codec=codec)
    return root
