"""Video datasets for training and evaluation: layouts, decoding, clip sampling and augmentation, loaders.

Decoding uses PyAV (OpenCV's reader where PyAV is missing); torch is needed for the dataset
and loaders. See :func:`discover`, :class:`ClipDataset` and :func:`build_loader`.
"""

from .clips import EVAL_VIEWS, STREAMS, ClipDataset, clip_starts, collate_clips, crop_offsets, flip_flow, resize_flow, short_side_for
from .layouts import LAYOUTS, VideoRecord, VideoSet, discover
from .loader import EpochSampler, ShardSampler, ShuffleSampler, build_loader, set_loader_epoch, worker_init
from .normalization import I3D_MEAN, I3D_STD, input_normalization
from .synthetic import DIRECTIONS, make_motion_dataset, motion_frames, motion_track
from .video import (
    VIDEO_SUFFIXES,
    FrameIndex,
    VideoReadError,
    count_frames,
    frame_index,
    read_all_frames,
    read_frames,
    resized_shape,
    set_decode_threads,
    video_backend,
    write_video,
)

__all__ = [
    "VideoReadError",
    "read_frames",
    "read_all_frames",
    "count_frames",
    "frame_index",
    "FrameIndex",
    "write_video",
    "resized_shape",
    "set_decode_threads",
    "video_backend",
    "VIDEO_SUFFIXES",
    "VideoRecord",
    "VideoSet",
    "discover",
    "LAYOUTS",
    "input_normalization",
    "I3D_MEAN",
    "I3D_STD",
    "ClipDataset",
    "collate_clips",
    "STREAMS",
    "EVAL_VIEWS",
    "short_side_for",
    "clip_starts",
    "crop_offsets",
    "flip_flow",
    "resize_flow",
    "EpochSampler",
    "ShuffleSampler",
    "ShardSampler",
    "build_loader",
    "set_loader_epoch",
    "worker_init",
    "make_motion_dataset",
    "motion_frames",
    "motion_track",
    "DIRECTIONS",
]
