"""Clips for training and evaluation: sampling in time, resizing, cropping, flipping, normalising.

A sample is addressed by ``(index, epoch)`` (the :class:`~inflate.data.loader.EpochSampler`
yields these): its random choices come from ``np.random.default_rng((seed, epoch, index))``,
so the same sample is drawn whichever worker or rank loads it, and a resumed run sees the
clips an uninterrupted one would.

Geometry (the paper's recipe, scaled to the crop ``size``): frames are resized so their short
side is ``round(size * 256 / 224)`` (``scale_jitter=(a, b)`` draws it uniformly from
``[a, b] * size / 224`` instead, SlowFast's [256, 320]); training takes a random ``size``² crop
and flips the whole clip left-right with probability 0.5; evaluation crops the centre.

Flow (``stream="flow"``): the clip is read from the ``inflate flow`` store
(:func:`inflate.flow.store.load_flow`, T - 1 fields per video), dequantised to [-1, 1] and not
normalised further. Resizing flow by a factor k also multiplies its displacements by k (a
motion of d pixels is k·d pixels in the resized frame), then clips them to [-1, 1] again;
flipping left-right negates the x channel (the PyTorch I3D port's flip forgets this).
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..core.errors import InflateError, InvalidInputError
from .layouts import VideoRecord, VideoSet
from .normalization import I3D_MEAN, I3D_STD
from .video import FrameIndex, VideoReadError, frame_index, read_all_frames, read_frames

__all__ = [
    "STREAMS",
    "EVAL_VIEWS",
    "ClipDataset",
    "collate_clips",
    "normalize_clip",
    "short_side_for",
    "clip_starts",
    "crop_offsets",
    "flip_flow",
    "resize_flow",
]

STREAMS = ("rgb", "flow")
EVAL_VIEWS = ("center", "multi", "whole")


def short_side_for(size: int) -> int:
    """The short side frames are resized to before a ``size``² crop: the paper's 256 for 224."""
    return int(round(size * 256 / 224))


def clip_starts(length: int, span: int, num_clips: int) -> list[int]:
    """First frames of ``num_clips`` clips spread uniformly over a ``length``-frame video.

    Each clip covers ``span`` frames; the video is cut into ``num_clips`` equal stretches and a
    clip is centred in each (mmaction2's test-time sampling). A video shorter than a clip gives
    start 0 for every clip (the clip is looped).
    """
    if length <= span:
        return [0] * num_clips
    stretch = (length - span + 1) / num_clips
    return [int(stretch * k + stretch / 2) for k in range(num_clips)]


def crop_offsets(height: int, width: int, size: int, num_crops: int) -> list[tuple[int, int]]:
    """(top, left) of ``num_crops`` ``size``² crops spread along the long side, centred on the short one.

    One crop is the centre; three are left/centre/right (top/middle/bottom for portrait frames).
    """
    if num_crops == 1:
        return [((height - size) // 2, (width - size) // 2)]
    positions = [int(round(v)) for v in np.linspace(0, max(height, width) - size, num_crops)]
    if width >= height:
        return [((height - size) // 2, left) for left in positions]
    return [(top, (width - size) // 2) for top in positions]


def flip_flow(flow: np.ndarray) -> np.ndarray:
    """Mirror (…, H, W, 2) flow left-right: the image is reversed along W and the x motion changes sign."""
    flipped = flow[..., ::-1, :].copy()
    flipped[..., 0] = -flipped[..., 0]
    return flipped


def resize_flow(flow: np.ndarray, short_side: int) -> np.ndarray:
    """Resize (T, H, W, 2) float flow so the short side is ``short_side``; displacements scale with it.

    Each axis's displacement is multiplied by that axis's size ratio (equal for both axes up to
    rounding), since a motion of d pixels spans d·k pixels once the frame is k times larger.
    """
    import cv2

    from .video import resized_shape

    steps, height, width, _ = flow.shape
    new_h, new_w = resized_shape(height, width, short_side)
    if (new_h, new_w) == (height, width):
        return flow
    interpolation = cv2.INTER_AREA if new_h < height else cv2.INTER_LINEAR
    # cv2.resize takes up to 512 channels: resize the T fields' 2T channels together.
    stacked = np.ascontiguousarray(flow.transpose(1, 2, 0, 3).reshape(height, width, steps * 2), dtype=np.float32)
    parts = [cv2.resize(stacked[..., i:i + 512], (new_w, new_h), interpolation=interpolation).reshape(new_h, new_w, -1)
             for i in range(0, steps * 2, 512)]
    resized = np.concatenate(parts, axis=-1).reshape(new_h, new_w, steps, 2).transpose(2, 0, 1, 3)
    scale = np.array([new_w / width, new_h / height], dtype=np.float32)
    return np.ascontiguousarray(resized * scale)


class ClipDataset(Dataset):
    """Clips of the videos in ``videos``, as (C, T, S, S) float32 tensors, or (V, C, T, S, S) for "multi".

    ``frames`` T at ``stride`` s; ``size`` S is the crop. Training (``train=True``): a random
    start (videos shorter than the clip are looped, as the paper does), a random crop and a
    flip. Evaluation by ``eval_views``: ``"center"`` one clip centred in time and space;
    ``"multi"`` ``num_clips`` clips spread over the video × ``num_crops`` crops along the long
    side, V = num_clips · num_crops views ordered clip-major; ``"whole"`` every s-th frame of
    the video (looped up to T when shorter), centre crop, for the paper's protocol: clips then
    differ in length, so load them one per batch.

    ``mean``/``std`` normalise RGB in [0, 1] (:func:`~inflate.data.input_normalization`); flow
    is in [-1, 1] and left as it is. ``normalize=False`` returns RGB clips as uint8 (a quarter
    of the bytes to pin and copy): normalise them on the device with :func:`normalize_clip`.
    Items are ``(index, epoch)`` (a plain index means epoch 0);
    a sample is ``{"clip", "label", "index"}``, or ``{"error": "<path>: <reason>", "index"}`` for
    a video that cannot be read: a worker never raises for one bad video.
    """

    def __init__(
        self,
        videos: VideoSet,
        *,
        frames: int,
        stride: int = 1,
        size: int,
        train: bool,
        stream: str = "rgb",
        flow_root: str | Path | None = None,
        mean: Sequence[float] = I3D_MEAN,
        std: Sequence[float] = I3D_STD,
        scale_jitter: tuple[int, int] | None = None,
        eval_views: str = "center",
        num_clips: int = 10,
        num_crops: int = 3,
        seed: int = 0,
        normalize: bool = True,
        flip: float = 0.5,
    ) -> None:
        if not 0.0 <= flip <= 1.0:
            raise InvalidInputError(f"flip is a probability in [0, 1], got {flip}")
        if frames < 1 or stride < 1 or size < 1:
            raise InvalidInputError(f"frames, stride and size must be positive, got {frames}, {stride}, {size}")
        if stream not in STREAMS:
            raise InvalidInputError(f"stream must be one of {', '.join(STREAMS)}, got {stream!r}")
        if stream == "flow" and flow_root is None:
            raise InvalidInputError("the flow stream needs flow_root, the folder `inflate flow` wrote")
        if stream == "flow" and not Path(flow_root).is_dir():
            raise InvalidInputError(f"flow folder {flow_root} does not exist; run `inflate flow` on the videos first")
        if eval_views not in EVAL_VIEWS:
            raise InvalidInputError(f"eval_views must be one of {', '.join(EVAL_VIEWS)}, got {eval_views!r}")
        if num_clips < 1 or num_crops < 1:
            raise InvalidInputError(f"--clips and --crops (num_clips, num_crops) must be >= 1, got {num_clips}, "
                                   f"{num_crops}")
        if scale_jitter is not None:
            low, high = scale_jitter
            if not 0 < low <= high:
                raise InvalidInputError(f"scale_jitter must be (low, high) with 0 < low <= high, got {scale_jitter}")
        if stream == "rgb" and (len(mean) != 3 or len(std) != 3):
            raise InvalidInputError(f"RGB mean and std need 3 values each, got {len(mean)} and {len(std)}")
        if not len(videos.records):
            raise InvalidInputError(f"{videos.source or videos.root}: no videos to load")
        self.videos = videos
        self.records: list[VideoRecord] = list(videos.records)
        self.classes = list(videos.classes)
        self.frames, self.stride, self.size = int(frames), int(stride), int(size)
        self.train = bool(train)
        self.stream = stream
        self.flow_root = Path(flow_root) if flow_root is not None else None
        self.mean = torch.tensor([float(v) for v in mean], dtype=torch.float32).view(-1, 1, 1, 1)
        self.std = torch.tensor([float(v) for v in std], dtype=torch.float32).view(-1, 1, 1, 1)
        # x / 255 normalised is x · scale + shift: two passes instead of three.
        self._scale = 1.0 / (255.0 * self.std)
        self._shift = -self.mean / self.std
        self.normalize = bool(normalize) or stream == "flow"
        self.scale_jitter = scale_jitter
        self.eval_views = eval_views
        self.num_clips, self.num_crops = int(num_clips), int(num_crops)
        self.seed = int(seed)
        self.flip = float(flip)  # 0 for classes that a mirror changes (left/right motion, Something-Something)
        # Per-path caches, per process (each worker builds its own; nothing global).
        self._indices: dict[Path, FrameIndex] = {}
        self._flow_paths: dict[str, Path] = {}

    def __len__(self) -> int:
        return len(self.records)

    @property
    def channels(self) -> int:
        return 3 if self.stream == "rgb" else 2

    @property
    def span(self) -> int:
        """Frames a clip covers: (T - 1) · s + 1."""
        return (self.frames - 1) * self.stride + 1

    # -- entry --------------------------------------------------------------------------------------------------

    def __getitem__(self, item: tuple[int, int] | int) -> dict[str, Any]:
        index, epoch = (item, 0) if isinstance(item, (int, np.integer)) else item
        index, epoch = int(index), int(epoch)
        record = self.records[index]
        try:
            clip = self.load(index, epoch)
        except Exception as error:  # noqa: BLE001 - one bad file must not kill a worker and the epoch
            reason = str(error).splitlines()[0] if str(error) else ""
            if not isinstance(error, (InflateError, OSError, ValueError, EOFError, zipfile.BadZipFile)):
                reason = f"{type(error).__name__}: {reason}"  # unexpected: keep the kind visible
            message = reason if reason.startswith(str(record.path)) else f"{record.path}: {reason}"
            return {"error": message, "index": index}
        return {"clip": clip, "label": record.label, "index": index}

    def load(self, index: int, epoch: int = 0) -> torch.Tensor:
        """The clip of sample ``index`` at ``epoch``; raises for a video that cannot be read."""
        rng = np.random.default_rng((self.seed, epoch, index))
        record = self.records[index]
        short = self._short_side(rng)
        length = self._length(record)
        if self.train:
            start = int(rng.integers(0, max(length - self.span, 0) + 1))
            times = self._times(start, length)
            data = self._read(record, times, short)
            _, height, width, _ = data.shape
            top = int(rng.integers(0, height - self.size + 1))
            left = int(rng.integers(0, width - self.size + 1))
            flip = bool(rng.random() < self.flip)
            return self._finish(data, top, left, flip)
        if self.eval_views == "center":
            times = self._times(max((length - self.span) // 2, 0), length)
            data = self._read(record, times, short)
            (top, left), = crop_offsets(data.shape[1], data.shape[2], self.size, 1)
            return self._finish(data, top, left, False)
        if self.eval_views == "whole":
            count = max(math.ceil(length / self.stride), self.frames)
            times = (np.arange(count) * self.stride) % length
            data = self._read(record, times, short)
            (top, left), = crop_offsets(data.shape[1], data.shape[2], self.size, 1)
            return self._finish(data, top, left, False)
        starts = clip_starts(length, self.span, self.num_clips)
        times = np.concatenate([self._times(start, length) for start in starts])
        data = self._read(record, times, short)
        offsets = crop_offsets(data.shape[1], data.shape[2], self.size, self.num_crops)
        views = []
        for k in range(len(starts)):
            chunk = data[k * self.frames:(k + 1) * self.frames]
            views.extend(self._finish(chunk, top, left, False) for top, left in offsets)
        return torch.stack(views)

    # -- pieces -------------------------------------------------------------------------------------------------

    def _short_side(self, rng: np.random.Generator) -> int:
        if self.train and self.scale_jitter is not None:
            low = int(round(self.scale_jitter[0] * self.size / 224))
            high = int(round(self.scale_jitter[1] * self.size / 224))
            return max(self.size, int(rng.integers(low, high + 1)))
        return max(self.size, short_side_for(self.size))

    def _times(self, start: int, length: int) -> np.ndarray:
        return (start + np.arange(self.frames) * self.stride) % length

    def _length(self, record: VideoRecord) -> int:
        if self.stream == "flow":
            return int(self._load_flow(record).shape[0])
        return len(self._index(record))

    def _index(self, record: VideoRecord) -> FrameIndex:
        index = self._indices.get(record.path)
        if index is None:
            index = self._indices[record.path] = frame_index(record.path)
        return index

    def flow_file(self, record: VideoRecord) -> Path:
        """Where ``record``'s flow lies: FLOW_ROOT/<relative>.npz, or with leading folders of
        ``relative`` dropped (flow computed from DATA/train or DATA/UCF-101 rather than DATA)."""
        from ..flow.store import flow_path

        cached = self._flow_paths.get(record.relative)
        if cached is not None:
            return cached
        parts = Path(record.relative).parts
        for skip in range(len(parts)):
            candidate = flow_path(self.flow_root, Path(*parts[skip:]))
            if candidate.is_file():
                self._flow_paths[record.relative] = candidate
                return candidate
        raise VideoReadError(f"{record.path}: no flow file {flow_path(self.flow_root, record.relative)}; "
                             f"run `inflate flow` on the videos")

    def _load_flow(self, record: VideoRecord) -> np.ndarray:
        from ..flow.store import load_flow

        # The last file read is kept: _length and _read of one sample both need it.
        path = self.flow_file(record)
        if getattr(self, "_flow_cache", (None,))[0] != path:
            flow = load_flow(path)
            if flow.shape[0] == 0:
                raise VideoReadError(f"{path}: holds no flow fields")
            self._flow_cache = (path, flow)
        return self._flow_cache[1]

    def _read(self, record: VideoRecord, times: np.ndarray, short: int) -> np.ndarray:
        if self.stream == "flow":
            from ..flow.store import dequantize

            fields = dequantize(self._load_flow(record)[times])
            resized = resize_flow(fields, short)
            return np.clip(resized, -1.0, 1.0, out=resized) if resized is not fields else resized
        return read_frames(record.path, times, short_side=short, index=self._index(record))

    def _finish(self, data: np.ndarray, top: int, left: int, flip: bool) -> torch.Tensor:
        """Crop (T, H, W, C) to S², flip, and give the (C, T, S, S) float32 tensor."""
        crop = data[:, top:top + self.size, left:left + self.size]
        if self.stream == "flow":
            crop = flip_flow(crop) if flip else crop
            return torch.from_numpy(np.ascontiguousarray(crop.transpose(3, 0, 1, 2), dtype=np.float32))
        if flip:
            crop = crop[:, :, ::-1].copy()  # no negative strides for torch (ascontiguousarray keeps them at width 1)
        pixels = torch.from_numpy(crop).permute(3, 0, 1, 2)
        if not self.normalize:
            return pixels.contiguous()
        clip = torch.empty(pixels.shape, dtype=torch.float32)
        clip.copy_(pixels)  # converts and transposes in one pass
        return clip.mul_(self._scale).add_(self._shift)

    # -- whole videos, for prediction ---------------------------------------------------------------------------

    def read_video(self, path: str | Path) -> torch.Tensor:
        """Every frame of the video at ``path``, resized and centre-cropped as for evaluation: (3, T, S, S)."""
        data = read_all_frames(path, short_side=max(self.size, short_side_for(self.size)))
        (top, left), = crop_offsets(data.shape[1], data.shape[2], self.size, 1)
        return self._finish(data, top, left, False)


def normalize_clip(clip: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 RGB clips (…, 3, T, H, W), on any device, → float32 ``(x / 255 - mean) / std``.

    What :class:`ClipDataset` does in its workers, for clips it returned with ``normalize=False``.
    """
    if clip.dim() < 4 or clip.shape[-4] != len(mean):
        raise InvalidInputError(f"expected clips (…, {len(mean)}, T, H, W), got shape {tuple(clip.shape)}")
    shape = (len(mean), 1, 1, 1)
    mean_t = torch.tensor([float(v) for v in mean], dtype=torch.float32, device=clip.device).view(shape)
    std_t = torch.tensor([float(v) for v in std], dtype=torch.float32, device=clip.device).view(shape)
    return clip.to(torch.float32).mul_(1.0 / (255.0 * std_t)).add_(-mean_t / std_t)


def collate_clips(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch :class:`ClipDataset` samples, dropping the failed ones.

    Returns ``{"clip": (B, …) float32 or None when every sample failed, "label": (B,) long,
    "index": (B,) long, "failed": [error messages]}``.
    """
    good = [s for s in samples if "error" not in s]
    failed = [s["error"] for s in samples if "error" in s]
    if not good:
        empty = torch.zeros(0, dtype=torch.long)
        return {"clip": None, "label": empty, "index": empty.clone(), "failed": failed}
    shapes = {tuple(s["clip"].shape) for s in good}
    if len(shapes) > 1:
        raise InvalidInputError(
            f"clips of different shapes in one batch ({sorted(shapes)[:2]}); "
            f"eval_views='whole' gives one length per video: use batch 1"
        )
    return {
        "clip": torch.stack([s["clip"] for s in good]),
        "label": torch.tensor([int(s["label"]) for s in good], dtype=torch.long),
        "index": torch.tensor([int(s["index"]) for s in good], dtype=torch.long),
        "failed": failed,
    }
