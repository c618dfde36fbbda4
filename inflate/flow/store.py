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


# A video's flow is at most this large (about 9 hours at 25 fps of 256×340): a larger header is a
# damaged or hostile file, refused before anything is decompressed.
MAX_FLOW_BYTES = 1 << 34


def load_flow(path: str | os.PathLike[str]) -> np.ndarray:
    """The uint8 flow array (T - 1, H, W, 2) stored at ``path`` (no pickles are read; the array's
    header is checked before its data is decompressed)."""
    import zipfile

    try:
        archive = np.load(str(path), allow_pickle=False)
    except ValueError as error:  # numpy's message would suggest allow_pickle: never passed on
        raise ValueError(f"{path} is not a flow file of `inflate flow` (refused: "
                         f"{'it holds pickled objects' if 'pickle' in str(error) else 'unreadable'})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is not a flow file of `inflate flow` (a bare array, not an .npz archive)")
    with archive:
        if "flow" not in archive.files:
            raise ValueError(f"{path} holds no 'flow' array (found {', '.join(archive.files) or 'nothing'})")
        try:
            with archive.zip.open("flow.npy") as member:
                version = np.lib.format.read_magic(member)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(member)
        except (ValueError, KeyError, zipfile.BadZipFile) as error:
            raise ValueError(f"{path}: its 'flow' array header is damaged ({error})") from None
        if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 2 or int(np.prod(shape, dtype=object)) > MAX_FLOW_BYTES:
            raise ValueError(f"{path}: expected uint8 flow (T-1, H, W, 2) of at most {MAX_FLOW_BYTES >> 30} GiB, "
                             f"got {dtype} {tuple(shape)}")
        return archive["flow"]
