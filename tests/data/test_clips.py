"""Clip sampling and augmentation, checked against crops of a full sequential decode built by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import inflate.data.clips as clips_module
from inflate import InvalidInputError
from inflate.data import (ClipDataset, VideoRecord, VideoSet, build_loader, clip_starts, collate_clips,
                          crop_offsets, discover, flip_flow, read_all_frames, resize_flow, set_loader_epoch,
                          short_side_for, write_video)
from inflate.flow.store import BOUND, dequantize, flow_path, quantize, save_flow

SIZE = 32
SHORT = short_side_for(SIZE)  # 37


def _video_frames(count: int, seed: int, height: int = 24, width: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 200, size=(height // 4, width // 4, 3)).repeat(4, axis=0).repeat(4, axis=1)
    return np.stack([(base + 3 * t) % 256 for t in range(count)]).astype(np.uint8)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> VideoSet:
    """Three videos, 20, 5 and 11 frames (the 5-frame one is shorter than the clips: looped)."""
    root = tmp_path_factory.mktemp("clips")
    records = []
    for number, count in enumerate((20, 5, 11)):
        relative = f"c{number % 2}/v{number}.mp4"
        write_video(root / relative, _video_frames(count, number), gop=4)
        records.append(VideoRecord(root / relative, number % 2, relative))
    return VideoSet(records, ["c0", "c1"], root, "folder")


def _normalise(frames: np.ndarray, mean, std) -> torch.Tensor:
    """(T, H, W, 3) uint8 → (3, T, H, W) normalised, written out plainly."""
    x = frames.astype(np.float32) / 255.0
    x = (x - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(3, 0, 1, 2)))


def test_eval_center_clip(videos):
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.3, 0.4)
    dataset = ClipDataset(videos, frames=6, stride=2, size=SIZE, train=False, mean=mean, std=std)
    sample = dataset[(0, 0)]
    full = read_all_frames(videos.records[0].path, short_side=SHORT)
    assert full.shape[1:] == (SHORT, round(40 * SHORT / 24), 3)
    span = 5 * 2 + 1
    start = (20 - span) // 2
    top, left = (full.shape[1] - SIZE) // 2, (full.shape[2] - SIZE) // 2
    expected = _normalise(full[start:start + span:2, top:top + SIZE, left:left + SIZE], mean, std)
    assert sample["label"] == 0 and sample["index"] == 0
    torch.testing.assert_close(sample["clip"], expected, rtol=0, atol=1e-6)


def _match_training_clip(clip: torch.Tensor, full: np.ndarray, frames: int, stride: int):
    """The (start, top, left, flip) that reproduce ``clip`` from ``full``, searched exhaustively."""
    length, height, width, _ = full.shape
    for start in range(max(length - (frames - 1) * stride, 1)):
        times = (start + np.arange(frames) * stride) % length
        for top in range(height - SIZE + 1):
            for left in range(width - SIZE + 1):
                crop = full[times, top:top + SIZE, left:left + SIZE]
                for flip in (False, True):
                    candidate = _normalise(crop[:, :, ::-1] if flip else crop, (0.5,) * 3, (0.5,) * 3)
                    if torch.equal(candidate, clip):
                        return start, top, left, flip
    return None


def test_training_clips_are_strided_frames_with_one_crop_and_flip(videos):
    dataset = ClipDataset(videos, frames=4, stride=3, size=SIZE, train=True, seed=7)
    full = read_all_frames(videos.records[0].path, short_side=SHORT)
    found = [_match_training_clip(dataset[(0, epoch)]["clip"], full, 4, 3) for epoch in range(6)]
    assert None not in found, found
    assert len({f[0] for f in found}) > 1 and {f[3] for f in found} == {False, True}
    # The same (index, epoch) gives the same clip; a new seed a different one.
    torch.testing.assert_close(dataset[(0, 3)]["clip"], dataset[(0, 3)]["clip"], rtol=0, atol=0)
    other = ClipDataset(videos, frames=4, stride=3, size=SIZE, train=True, seed=8)
    assert any(not torch.equal(other[(0, e)]["clip"], dataset[(0, e)]["clip"]) for e in range(3))


def test_short_videos_are_looped(videos):
    full = read_all_frames(videos.records[1].path, short_side=SHORT)  # 5 frames
    assert len(full) == 5
    dataset = ClipDataset(videos, frames=12, size=SIZE, train=False)
    clip = dataset[(1, 0)]["clip"]
    top, left = (full.shape[1] - SIZE) // 2, (full.shape[2] - SIZE) // 2
    times = np.arange(12) % 5
    expected = _normalise(full[times, top:top + SIZE, left:left + SIZE], (0.5,) * 3, (0.5,) * 3)
    torch.testing.assert_close(clip, expected, rtol=0, atol=1e-6)
    training = ClipDataset(videos, frames=12, size=SIZE, train=True)
    assert _match_training_clip(training[(1, 2)]["clip"], full, 12, 1) is not None


def test_whole_video_views(videos):
    dataset = ClipDataset(videos, frames=8, stride=2, size=SIZE, train=False, eval_views="whole")
    assert dataset[(0, 0)]["clip"].shape == (3, math.ceil(20 / 2), SIZE, SIZE)
    assert dataset[(1, 0)]["clip"].shape == (3, 8, SIZE, SIZE)  # 5 frames, looped up to T
    with pytest.raises(InvalidInputError, match="batch 1"):
        build_loader(dataset, batch=2, workers=0, train=False)


def test_multi_views_are_clips_times_crops(videos):
    dataset = ClipDataset(videos, frames=3, stride=2, size=SIZE, train=False, eval_views="multi",
                          num_clips=4, num_crops=3)
    views = dataset[(2, 0)]["clip"]
    assert views.shape == (12, 3, 3, SIZE, SIZE)
    full = read_all_frames(videos.records[2].path, short_side=SHORT)  # 11 frames, 37x62
    starts = clip_starts(11, 5, 4)
    assert starts == sorted(starts) and starts[0] >= 0 and starts[-1] + 5 <= 11 and len(set(starts)) > 1
    offsets = crop_offsets(full.shape[1], full.shape[2], SIZE, 3)
    assert [left for _, left in offsets] == [0, (full.shape[2] - SIZE) // 2, full.shape[2] - SIZE]
    for clip in range(4):
        for crop, (top, left) in enumerate(offsets):
            times = starts[clip] + np.arange(3) * 2
            expected = _normalise(full[times, top:top + SIZE, left:left + SIZE], (0.5,) * 3, (0.5,) * 3)
            torch.testing.assert_close(views[clip * 3 + crop], expected, rtol=0, atol=1e-6)


def test_scale_jitter_draws_short_sides_in_range(videos, monkeypatch):
    seen = []
    real = clips_module.read_frames

    def recording(path, indices, *, short_side=None, index=None):
        seen.append(short_side)
        return real(path, indices, short_side=short_side, index=index)

    monkeypatch.setattr(clips_module, "read_frames", recording)
    dataset = ClipDataset(videos, frames=2, size=SIZE, train=True, scale_jitter=(256, 320))
    for epoch in range(12):
        assert dataset[(0, epoch)]["clip"].shape == (3, 2, SIZE, SIZE)
    low, high = round(256 * SIZE / 224), round(320 * SIZE / 224)
    assert all(low <= s <= high for s in seen) and len(set(seen)) > 3, seen


def test_bad_video_gives_an_error_sample_and_collate_drops_it(videos, tmp_path):
    broken = tmp_path / "c0" / "broken.mp4"
    broken.parent.mkdir()
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    empty = tmp_path / "c0" / "empty.mp4"
    empty.write_bytes(b"")
    records = [videos.records[0], VideoRecord(broken, 0, "c0/broken.mp4"), VideoRecord(empty, 0, "c0/empty.mp4")]
    dataset = ClipDataset(VideoSet(records, videos.classes, tmp_path, "folder"), frames=4, size=SIZE, train=True)
    samples = [dataset[(i, 0)] for i in range(3)]
    assert "clip" in samples[0]
    assert samples[1]["error"].startswith(str(broken)) and samples[1]["index"] == 1
    assert samples[2]["error"].startswith(str(empty))
    batch = collate_clips(samples)
    assert batch["clip"].shape == (1, 3, 4, SIZE, SIZE)
    assert batch["label"].tolist() == [0] and batch["index"].tolist() == [0]
    assert len(batch["failed"]) == 2 and "broken.mp4" in batch["failed"][0]
    nothing = collate_clips(samples[1:])
    assert nothing["clip"] is None and nothing["label"].numel() == 0 and len(nothing["failed"]) == 2
    # Through a loader: the epoch goes on, the failures are reported with their batch.
    loader = build_loader(dataset, batch=3, workers=0, train=False)
    (only,) = list(loader)
    assert only["index"].tolist() == [0] and len(only["failed"]) == 2


# --- flow --------------------------------------------------------------------------------------------------


def test_flip_flow_negates_x_and_mirrors():
    rng = np.random.default_rng(0)
    flow = rng.uniform(-1, 1, size=(3, 4, 5, 2)).astype(np.float32)
    flipped = flip_flow(flow)
    for t in range(3):
        for y in range(4):
            for x in range(5):
                assert flipped[t, y, x, 0] == -flow[t, y, 4 - x, 0]
                assert flipped[t, y, x, 1] == flow[t, y, 4 - x, 1]
    # A pattern moving right (x > 0) seen in a mirror moves left.
    moving_right = np.zeros((1, 2, 2, 2), np.float32)
    moving_right[..., 0] = 0.25
    assert (flip_flow(moving_right)[..., 0] == -0.25).all()


def test_resize_flow_scales_displacements():
    flow = np.zeros((2, 24, 32, 2), np.float32)
    flow[..., 0], flow[..., 1] = 3.0, -1.5
    resized = resize_flow(flow, 48)
    assert resized.shape == (2, 48, 64, 2)
    np.testing.assert_allclose(resized[..., 0], 6.0, rtol=1e-6)
    np.testing.assert_allclose(resized[..., 1], -3.0, rtol=1e-6)
    assert resize_flow(flow, 24) is flow


@pytest.fixture
def flow_videos(tmp_path) -> tuple[VideoSet, Path]:
    """One video's worth of stored flow: x = +2 px everywhere, y a ramp along x (shows a flip)."""
    fields = np.zeros((9, 24, 32, 2), np.float32)
    fields[..., 0] = 2.0
    fields[..., 1] = np.linspace(-10, 10, 32)[None, None, :]
    root, flows = tmp_path / "videos", tmp_path / "flow"
    record = VideoRecord(root / "train" / "c0" / "v.mp4", 0, "train/c0/v.mp4")
    save_flow(flow_path(flows, record.relative), quantize(fields))
    return VideoSet([record], ["c0"], root, "folder"), flows


def test_flow_clips_flip_x_and_scale_with_the_resize(flow_videos):
    videos, flows = flow_videos
    dataset = ClipDataset(videos, frames=4, size=SIZE, train=True, stream="flow", flow_root=flows)
    scale_x = round(32 * SHORT / 24) / 32  # width 32 → 49 when the short side 24 → 37
    x_unit = float(dequantize(quantize(np.float32(2.0)))) * scale_x
    flips = set()
    for epoch in range(10):
        clip = dataset[(0, epoch)]["clip"]
        assert clip.shape == (2, 4, SIZE, SIZE) and clip.dtype == torch.float32
        ramp = clip[1, 0, 0]
        flipped = bool(ramp[0] > ramp[-1])  # the y ramp runs the other way when mirrored
        flips.add(flipped)
        expected_x = -x_unit if flipped else x_unit
        torch.testing.assert_close(clip[0], torch.full_like(clip[0], expected_x), rtol=0, atol=1e-5)
        assert clip.abs().max() <= 1.0
    assert flips == {False, True}


def test_flow_found_from_a_subfolder_and_missing_flow_is_an_error_sample(flow_videos, tmp_path):
    videos, flows = flow_videos
    # Flow computed from DATA/train rather than DATA: FLOW/c0/v.npz.
    moved = tmp_path / "flow_train"
    target = flow_path(moved, "c0/v.mp4")
    target.parent.mkdir(parents=True)
    flow_path(flows, videos.records[0].relative).rename(target)
    dataset = ClipDataset(videos, frames=2, size=SIZE, train=False, stream="flow", flow_root=moved)
    assert dataset[(0, 0)]["clip"].shape == (2, 2, SIZE, SIZE)
    missing = ClipDataset(videos, frames=2, size=SIZE, train=False, stream="flow", flow_root=flows)
    assert "no flow file" in missing[(0, 0)]["error"]


# --- loaders -----------------------------------------------------------------------------------------------


def test_same_samples_whatever_the_number_of_workers(tmp_path):
    from inflate.data import make_motion_dataset

    root = make_motion_dataset(tmp_path / "motion", classes=("left", "up"), per_class=3, frames=8, size=32,
                               splits=("train",))
    dataset = ClipDataset(discover(root), frames=4, size=24, train=True, seed=3)
    by_workers = {}
    for workers in (0, 2):
        loader = build_loader(dataset, batch=2, workers=workers, train=True, seed=5)
        epochs = []
        for epoch in (0, 1):
            set_loader_epoch(loader, epoch)
            batches = list(loader)
            epochs.append((torch.cat([b["index"] for b in batches]), torch.cat([b["clip"] for b in batches])))
        by_workers[workers] = epochs
        del loader
    for (index0, clip0), (index2, clip2) in zip(by_workers[0], by_workers[2]):
        assert index0.tolist() == index2.tolist()
        torch.testing.assert_close(clip0, clip2, rtol=0, atol=0)
    assert by_workers[0][0][0].tolist() != by_workers[0][1][0].tolist()  # a new order each epoch
    assert sorted(by_workers[0][0][0].tolist()) == list(range(6))
