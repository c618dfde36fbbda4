"""How flow is stored on disk: one compressed uint8 array per video, as the released I3D pipeline quantises it.

``inflate flow VIDEOS OUT`` writes, for the video at ``VIDEOS/<rel>``, the file
``OUT/<rel with its suffix replaced by .npz>`` holding one array ``flow`` of shape
(T - 1, H, W, 2), uint8: channel 0 is x, channel 1 is y, each displacement f (pixels,
frame t to frame t + 1) clipped to [-BOUND, BOUND] and stored as round((f + BOUND) * 255 / (2 * BOUND)).
The training dataset reads the same files back with :func:`load_flow` and maps them to
[-1, 1] with :func:`dequantize` (``u8 / 255 * 2 - 1``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["BOUND", "FLOW_SUFFIX", "quantize", "dequantize", "flow_path", "save_flow", "load_flow"]

BOUND = 20.0
FLOW_SUFFIX = ".npz"


def quantize(flow: np.ndarray, bound: float = BOUND) -> np.ndarray:
    """Float flow in pixels → uint8: clip to ±bound, map [-bound, bound] linearly onto [0, 255], round."""
    flow = np.clip(np.asarray(flow, dtype=np.float32), -bound, bound)
    return np.rint((flow + bound) * (255.0 / (2.0 * bound))).astype(np.uint8)


def dequantize(u8: np.ndarray, *, pixels: bool = False, bound: float = BOUND) -> np.ndarray:
    """uint8 flow → float32 in [-1, 1] (the network's input), or in pixels with ``pixels=True``."""
    unit = np.asarray(u8, dtype=np.float32) / 255.0 * 2.0 - 1.0
    return unit * bound if pixels else unit


def flow_path(out_root: str | os.PathLike[str], relative: str | os.PathLike[str]) -> Path:
    """Where the flow of the video at ``VIDEOS/relative`` lives under ``out_root``."""
    return Path(out_root) / Path(relative).with_suffix(FLOW_SUFFIX)


def save_flow(path: str | os.PathLike[str], u8: np.ndarray) -> Path:
    """Write quantised flow (T - 1, H, W, 2) uint8 atomically: a temporary beside ``path``, then a rename."""
    from ..core.files import atomic_output

    u8 = np.asarray(u8)
    if u8.dtype != np.uint8 or u8.ndim != 4 or u8.shape[-1] != 2:
        raise ValueError(f"flow to store must be uint8 (T-1, H, W, 2), got {u8.dtype} {u8.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, force=True) as temporary, open(temporary, "wb") as stream:
        np.savez_compressed(stream, flow=u8)  # a file object: savez would add ".npz" to a name
    return path


def load_flow(path: str | os.PathLike[str]) -> np.ndarray:
    """The uint8 flow array (T - 1, H, W, 2) stored at ``path`` (no pickles are read)."""
    with np.load(str(path), allow_pickle=False) as archive:
        if "flow" not in archive.files:
            raise ValueError(f"{path} holds no 'flow' array (found {', '.join(archive.files) or 'nothing'})")
        flow = archive["flow"]
    if flow.dtype != np.uint8 or flow.ndim != 4 or flow.shape[-1] != 2:
        raise ValueError(f"{path}: expected uint8 flow (T-1, H, W, 2), got {flow.dtype} {flow.shape}")
    return flow
