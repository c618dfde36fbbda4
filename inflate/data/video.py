"""Decoding the frames a clip needs, and nothing more.

PyAV (FFmpeg) is the decoder. A video's frames are numbered in presentation order,
0 … N - 1, by the timestamps of its packets, found once by demuxing (no decoding):
:func:`frame_index` returns that numbering, and :func:`count_frames` its length, the
number of frames the file really holds (container headers often over-report it). To
read a set of frames, :func:`read_frames` seeks to the last keyframe at or before the
first frame wanted and decodes forward, keeping the frames whose timestamps are wanted
and stopping after the last one; a seek that lands late, or a file whose packets carry
no usable timestamps, is read from the start instead, so the answer is always the same
as a full sequential decode.

Where PyAV is not installed (a bare CUDA machine), OpenCV's FFmpeg reader is used:
it decodes from the start (``grab`` without colour conversion up to the frames wanted),
which is exact but slower for clips deep into long videos.

FFmpeg's own threads are limited with :func:`set_decode_threads` (one per DataLoader
worker, set by the loader's ``worker_init_fn``), so N workers use N cores, not N².
"""

from __future__ import annotations

import bisect
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.errors import InvalidInputError

try:  # PyAV is a runtime dependency, but a CUDA box without it can still decode with OpenCV.
    import av
except ImportError:  # pragma: no cover - exercised on machines without PyAV
    av = None

__all__ = [
    "VIDEO_SUFFIXES",
    "VideoReadError",
    "FrameIndex",
    "frame_index",
    "count_frames",
    "read_frames",
    "read_all_frames",
    "resized_shape",
    "set_decode_threads",
    "video_backend",
    "write_video",
]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")

# 0 lets FFmpeg pick (all cores); the DataLoader's worker_init_fn sets 1 per worker.
_DECODE_THREADS = 0


class VideoReadError(InvalidInputError):
    """A video that cannot be opened or decoded, or that holds no frames; the message names the file."""


def set_decode_threads(threads: int) -> None:
    """How many threads FFmpeg may use per decoder in this process (0: FFmpeg's choice)."""
    global _DECODE_THREADS
    _DECODE_THREADS = max(0, int(threads))
    try:
        import cv2

        cv2.setNumThreads(max(1, _DECODE_THREADS) if _DECODE_THREADS else -1)
    except ImportError:  # pragma: no cover
        pass


def video_backend() -> str:
    """``"av"`` (PyAV) or ``"opencv"``; ``INFLATE_VIDEO_BACKEND=opencv`` forces OpenCV where PyAV exists."""
    wanted = os.environ.get("INFLATE_VIDEO_BACKEND", "").strip().lower()
    if wanted in ("opencv", "cv2"):
        return "opencv"
    if av is None:
        return "opencv"
    return "av"


def resized_shape(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """(height, width) after resizing so the short side is ``short_side``, aspect kept (None: unchanged)."""
    if short_side is None:
        return height, width
    if short_side < 1:
        raise InvalidInputError(f"short_side must be a positive number of pixels, got {short_side}")
    if height <= width:
        return short_side, max(1, int(round(width * short_side / height)))
    return max(1, int(round(height * short_side / width))), short_side


@dataclass
class FrameIndex:
    """Presentation timestamps of a video's frames, in order, and those of its keyframes.

    ``pts[i]`` is frame i's timestamp (stream time base). ``sequential`` marks a file whose
    timestamps cannot be used (missing, repeated, or out of order once decoded, as for
    B-frames in AVI): its frames are then read by decoding from the start. :func:`read_frames`
    sets it when it finds out, so a cached index remembers.
    """

    pts: tuple[int, ...]
    keyframes: tuple[int, ...]
    sequential: bool = False

    def __len__(self) -> int:
        return len(self.pts)


def _open(path: Path):
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as error:
        raise VideoReadError(f"{path}: cannot open as a video ({_reason(error)})") from None
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"{path}: holds no video stream")
    stream = container.streams.video[0]
    stream.thread_count = _DECODE_THREADS
    stream.thread_type = "AUTO" if _DECODE_THREADS != 1 else "SLICE"
    return container, stream


def _reason(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _demux_index(container, stream, path: Path) -> FrameIndex:
    pts: list[int] = []
    keys: list[int] = []
    sequential = False
    reorders = bool(stream.codec_context.has_b_frames)
    for packet in container.demux(stream):
        if packet.size == 0 or packet.is_discard or packet.is_corrupt:
            continue  # flush packets, edit-list prerolls and damaged packets yield no frame
        if packet.pts is None:
            sequential = True
            pts.append(len(pts))
            continue
        pts.append(int(packet.pts))
        if packet.is_keyframe:
            keys.append(int(packet.pts))
    ordered = sorted(pts)
    if sequential or len(set(ordered)) != len(ordered):
        return FrameIndex(tuple(range(len(pts))), (), True)
    index = FrameIndex(tuple(ordered), tuple(sorted(keys)), False)
    if reorders and pts == ordered and not _decoded_in_order(path, index):
        # A codec that reorders frames, yet packets in presentation order: the container made
        # its timestamps up from the decode order (B-frames in AVI), so they cannot be used.
        index.sequential = True
    return index


def _decoded_in_order(path: Path, index: FrameIndex, frames: int = 48) -> bool:
    """Whether the first decoded frames carry the index's first timestamps, in order."""
    expected = index.pts[:frames]
    got = []
    for frame in _decode_from_start(path):
        got.append(frame.pts)
        if len(got) == len(expected):
            break
    return tuple(got) == expected


def frame_index(path: str | os.PathLike[str]) -> FrameIndex:
    """The frames of the video at ``path`` in presentation order, found by demuxing its packets.

    Raises :class:`VideoReadError` for a file that is not a video or holds no frames.
    """
    path = Path(path)
    if video_backend() == "opencv":
        return FrameIndex(tuple(range(_cv2_count(path))), (), True)
    container, stream = _open(path)
    try:
        index = _demux_index(container, stream, path)
    except (av.FFmpegError, OSError, ValueError) as error:
        raise VideoReadError(f"{path}: cannot demux ({_reason(error)})") from None
    finally:
        container.close()
    if not len(index):
        raise VideoReadError(f"{path}: holds no frames")
    if index.sequential:
        # No usable timestamps: the true count is what the decoder gives.
        count = sum(1 for _ in _decode_from_start(path))
        if not count:
            raise VideoReadError(f"{path}: holds no decodable frames")
        index = FrameIndex(tuple(range(count)), (), True)
    return index


def count_frames(path: str | os.PathLike[str]) -> int:
    """The number of frames the video at ``path`` holds (its packets counted, not its header read)."""
    return len(frame_index(path))


def _to_rgb(frame, size: tuple[int, int] | None) -> np.ndarray:
    if size is None:
        return frame.to_ndarray(format="rgb24")
    height, width = size
    # swscale's area filter when shrinking (anti-aliased, as OpenCV's INTER_AREA), bilinear when growing.
    interpolation = "AREA" if height < frame.height else "BILINEAR"
    return frame.reformat(width=width, height=height, format="rgb24", interpolation=interpolation).to_ndarray()


def _decode_from_start(path: Path):
    container, stream = _open(path)
    try:
        try:
            for frame in container.decode(stream):
                yield frame
        except (av.FFmpegError, OSError, ValueError) as error:
            raise VideoReadError(f"{path}: decoding failed ({_reason(error)})") from None
    finally:
        container.close()


def _target_size(frame, short_side: int | None) -> tuple[int, int] | None:
    if short_side is None:
        return None
    return resized_shape(frame.height, frame.width, short_side)


def _read_sequential(path: Path, wanted: Sequence[int], short_side: int | None) -> dict[int, np.ndarray]:
    """Frames by decode order from the start: exact for any file, used when timestamps cannot be."""
    wanted_set = set(wanted)
    last = max(wanted)
    out: dict[int, np.ndarray] = {}
    for number, frame in enumerate(_decode_from_start(path)):
        if number in wanted_set:
            out[number] = _to_rgb(frame, _target_size(frame, short_side))
        if number >= last:
            break
    return out


def _read_by_pts(path: Path, index: FrameIndex, wanted: Sequence[int], short_side: int | None) -> dict[int, np.ndarray] | None:
    """Seek to the keyframe before the first wanted frame, decode forward; None when the seek landed late."""
    by_pts = {index.pts[i]: i for i in wanted}
    first_pts = index.pts[min(wanted)]
    last_pts = index.pts[max(wanted)]
    position = bisect.bisect_right(index.keyframes, first_pts) - 1
    seek_pts = index.keyframes[position] if position >= 0 else None
    container, stream = _open(path)
    out: dict[int, np.ndarray] = {}
    try:
        if seek_pts is not None and seek_pts > index.pts[0]:
            container.seek(seek_pts, stream=stream, backward=True, any_frame=False)
        landed = False
        previous = None
        for frame in container.decode(stream):
            if frame.pts is None or (previous is not None and frame.pts <= previous):
                index.sequential = True  # timestamps out of presentation order: not to be trusted
                return None
            previous = frame.pts
            if not landed:
                landed = True
                if frame.pts > first_pts:
                    return None  # the seek went past the first frame wanted
            number = by_pts.get(frame.pts)
            if number is not None:
                out[number] = _to_rgb(frame, _target_size(frame, short_side))
            if frame.pts >= last_pts:
                break
    except (av.FFmpegError, OSError, ValueError) as error:
        raise VideoReadError(f"{path}: decoding failed ({_reason(error)})") from None
    finally:
        container.close()
    return out


def read_frames(
    path: str | os.PathLike[str],
    indices: Sequence[int],
    *,
    short_side: int | None = None,
    index: FrameIndex | None = None,
) -> np.ndarray:
    """Frames ``indices`` of the video at ``path`` as a (len(indices), H, W, 3) uint8 RGB array.

    Only the frames needed are decoded (seek, then decode forward). ``indices`` may repeat and
    be in any order; each must lie in [0, count_frames(path)). ``short_side`` resizes each frame
    so its short side has that many pixels, aspect kept (FFmpeg's swscale: area
    filter when shrinking, bilinear when growing). Pass the
    ``index`` from :func:`frame_index` to skip demuxing the file again (datasets cache it per path).
    Raises :class:`VideoReadError` naming the file when it cannot be decoded or lacks a frame.
    """
    path = Path(path)
    wanted = sorted({int(i) for i in indices})
    if not wanted:
        raise InvalidInputError("read_frames needs at least one frame index")
    if wanted[0] < 0:
        raise InvalidInputError(f"{path}: frame indices must be >= 0, got {wanted[0]}")
    if video_backend() == "opencv":
        frames = _cv2_read(path, wanted, short_side)
    else:
        if index is None:
            index = frame_index(path)
        if wanted[-1] >= len(index):
            raise VideoReadError(f"{path}: has {len(index)} frames, frame {wanted[-1]} was asked for")
        frames = None if index.sequential else _read_by_pts(path, index, wanted, short_side)
        if frames is None or len(frames) != len(wanted):
            frames = _read_sequential(path, wanted, short_side)
    missing = [i for i in wanted if i not in frames]
    if missing:
        raise VideoReadError(f"{path}: frame {missing[0]} could not be decoded ({len(missing)} of {len(wanted)} missing)")
    return np.stack([frames[int(i)] for i in indices])


def read_all_frames(path: str | os.PathLike[str], *, short_side: int | None = None) -> np.ndarray:
    """Every frame of the video at ``path``, decoded in order: (T, H, W, 3) uint8 RGB."""
    path = Path(path)
    if video_backend() == "opencv":
        frames = list(_cv2_frames(path, None, short_side))
    else:
        frames = [_to_rgb(frame, _target_size(frame, short_side)) for frame in _decode_from_start(path)]
    if not frames:
        raise VideoReadError(f"{path}: holds no decodable frames")
    return np.stack(frames)


# --- OpenCV fallback ---------------------------------------------------------------------------------------


def _cv2_capture(path: Path):
    import cv2

    if not path.is_file():
        raise VideoReadError(f"{path}: no such file")
    params = [cv2.CAP_PROP_N_THREADS, _DECODE_THREADS] if hasattr(cv2, "CAP_PROP_N_THREADS") and _DECODE_THREADS else []
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, params)
    if not capture.isOpened():
        raise VideoReadError(f"{path}: cannot open as a video")
    return capture


def _cv2_resize(image: np.ndarray, short_side: int | None) -> np.ndarray:
    import cv2

    size = resized_shape(image.shape[0], image.shape[1], short_side)
    if size == image.shape[:2]:
        return image
    shrinking = size[0] < image.shape[0]
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def _cv2_frames(path: Path, wanted: Sequence[int] | None, short_side: int | None):
    import cv2

    capture = _cv2_capture(path)
    wanted_set = None if wanted is None else set(wanted)
    last = math.inf if wanted is None else max(wanted)
    try:
        number = 0
        while number <= last and capture.grab():
            if wanted_set is None or number in wanted_set:
                ok, bgr = capture.retrieve()
                if not ok:
                    raise VideoReadError(f"{path}: frame {number} could not be decoded")
                yield _cv2_resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), short_side)
            number += 1
    finally:
        capture.release()


def _cv2_read(path: Path, wanted: Sequence[int], short_side: int | None) -> dict[int, np.ndarray]:
    frames = list(_cv2_frames(path, wanted, short_side))
    return dict(zip(wanted, frames))


def _cv2_count(path: Path) -> int:
    capture = _cv2_capture(path)
    try:
        count = 0
        while capture.grab():
            count += 1
    finally:
        capture.release()
    if not count:
        raise VideoReadError(f"{path}: holds no decodable frames")
    return count


# --- Writing (tests, generated datasets) -------------------------------------------------------------------


def write_video(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    *,
    fps: int = 25,
    codec: str = "h264",
    gop: int | None = None,
    crf: int = 18,
) -> Path:
    """Write (T, H, W, 3) uint8 RGB frames as a yuv420p video at ``path`` (atomically).

    ``codec`` is ``"h264"`` (libx264; B-frames on) or ``"mpeg4"``; ``gop`` the keyframe interval
    (None: the encoder's default). Without PyAV, OpenCV's ``mp4v`` writer is used (mpeg4).
    H and W must be even (yuv420p).
    """
    import tempfile

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise InvalidInputError(f"frames to write must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise InvalidInputError(f"yuv420p needs even frame sizes, got {frames.shape[2]}x{frames.shape[1]}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        if av is not None:
            _av_write(Path(temporary), frames, fps, codec, gop, crf)
        else:  # pragma: no cover - machines without PyAV
            _cv2_write(Path(temporary), frames, fps)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    return path


def _av_write(path: Path, frames: np.ndarray, fps: int, codec: str, gop: int | None, crf: int) -> None:
    name = {"h264": "libx264", "libx264": "libx264", "mpeg4": "mpeg4"}.get(codec)
    if name is None:
        raise InvalidInputError(f"codec must be 'h264' or 'mpeg4', got {codec!r}")
    if name not in av.codecs_available:
        name = "mpeg4"
    options = {"crf": str(crf), "preset": "veryfast"} if name == "libx264" else {}
    if gop is not None and name == "libx264":
        options["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(name, rate=fps, options=options)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.thread_count = 1  # deterministic output, and cheap at these sizes
        if gop is not None:
            stream.codec_context.gop_size = gop
        if name == "mpeg4":
            stream.codec_context.bit_rate = 4_000_000
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _cv2_write(path: Path, frames: np.ndarray, fps: int) -> None:  # pragma: no cover
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frames.shape[2], frames.shape[1]))
    if not writer.isOpened():
        raise VideoReadError(f"{path}: OpenCV cannot write mp4v video here")
    try:
        for image in frames:
            writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
