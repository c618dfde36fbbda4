"""The generated motion dataset: deterministic, fast, labelled by the direction its squares really move."""

from __future__ import annotations

import time

import numpy as np

from inflate.data import DIRECTIONS, discover, make_motion_dataset, read_all_frames
from inflate.data.synthetic import motion_track


def _square_track(video: np.ndarray) -> np.ndarray:
    """Centre (y, x) per frame of the pixels that change over the video (the square; the background is still)."""
    changing = (np.abs(video.astype(int) - np.median(video, axis=0)).sum(-1) > 60)
    tracks = []
    for mask in changing:
        ys, xs = np.nonzero(mask)
        tracks.append((ys.mean(), xs.mean()))
    return np.array(tracks)


def test_dataset_is_deterministic_fast_and_labelled_by_motion(tmp_path):
    start = time.perf_counter()
    root = make_motion_dataset(tmp_path / "a", per_class=8, frames=16, size=64, seed=3)
    elapsed = time.perf_counter() - start
    assert elapsed < 4.0, elapsed  # the brief's budget is 2 s; leave room for a loaded CI machine
    train, val = discover(root, "train"), discover(root, "val")
    assert len(train) == len(val) == 32 and train.classes == sorted(DIRECTIONS)
    again = make_motion_dataset(tmp_path / "b", per_class=1, frames=16, size=64, seed=3, splits=("train",))
    for name in DIRECTIONS:
        first = read_all_frames(root / "train" / name / f"{name}_0000.mp4")
        assert first.shape == (16, 64, 64, 3)
        np.testing.assert_array_equal(first, read_all_frames(again / "train" / name / f"{name}_0000.mp4"))
        assert not np.array_equal(first, read_all_frames(root / "val" / name / f"{name}_0000.mp4"))
    for record in train.records[::3]:
        dy, dx = DIRECTIONS[train.classes[record.label]]
        track = _square_track(read_all_frames(record.path))
        motion = np.diff(track, axis=0).mean(axis=0)  # pixels per frame
        assert np.sign(np.round(motion)).tolist() == [dy, dx], (record.relative, motion)
        assert 1.0 < motion[0] * dy + motion[1] * dx < 3.0  # 2 px/frame at 64², measured roughly


def test_single_frames_do_not_tell_directions_apart():
    # The trajectories of "left" are those of "right" played backwards, equally likely (and "up"
    # those of "down"): any one frame, or the set of a clip's frames, fits both directions.
    def along_axis(name: str, axis: int, reverse: bool) -> set:
        seen = set()
        for k in range(3000):
            side, track = motion_track(name, np.random.default_rng(k), frames=16, size=64, step=2)
            positions = track[::-1, axis] if reverse else track[:, axis]
            seen.add((side, tuple(positions.tolist())))
        return seen

    assert along_axis("left", 1, reverse=True) == along_axis("right", 1, reverse=False)
    assert along_axis("up", 0, reverse=True) == along_axis("down", 0, reverse=False)
    side, track = motion_track("left", np.random.default_rng(0), frames=4, size=64, step=2)
    assert np.diff(track, axis=0).tolist() == [[0, -2]] * 3
