"""``tvl1``: TV-L1 optical flow between consecutive frames, by OpenCV or by our batched PyTorch version."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..core.errors import InvalidInputError
from .params import TVL1Params, to_gray

__all__ = ["tvl1", "resolve_device", "MIN_SIDE"]

BACKENDS = ("torch", "opencv")
# The torch backend's pyramid and gradients need a few pixels; OpenCV stops its pyramid under 16.
MIN_SIDE = 16


def resolve_device(device: Any = None) -> Any:
    """A torch.device: the one given, else CUDA when available, else the CPU; "cuda" gets the current GPU's index
    (``torch.cuda.set_device`` refuses a CUDA device without one in some torch releases)."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise InvalidInputError(f"device {device!r} is not a torch device ({error}); try 'cpu' or 'cuda'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device {device} asked for, but torch sees no CUDA GPU; use 'cpu'")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _default_batch(device: Any, height: int, width: int) -> int:
    if device.type != "cuda":
        return 1  # measured: one pair at a time keeps the working set in cache, faster per pair than 4
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    # About 64 float32 planes of H × W live per pair (pyramid, warped images, flow, duals, median wires).
    per_pair = 64 * 4 * height * width
    return int(max(1, min(256, free * 0.5 // per_pair)))


def tvl1(frames: np.ndarray, backend: str = "torch", device: Any = None, *, batch_size: Optional[int] = None,
         workers: Optional[int] = None, compile: Optional[bool] = None, **params: Any) -> np.ndarray:
    """TV-L1 optical flow from each frame to the next.

    Args:
        frames: (T, H, W, 3) uint8 RGB or (T, H, W) uint8 gray, T >= 2, H and W >= 16. RGB is
            converted to gray exactly as ``cv2.cvtColor(..., cv2.COLOR_RGB2GRAY)``.
        backend: "torch" (ours, batched, CUDA or CPU) or "opencv" (``cv2.optflow``, needs
            opencv-contrib-python-headless).
        device: torch backend only: where to run (default: CUDA when available, else CPU).
        batch_size: torch backend: frame pairs per call (default: by free GPU memory; 1 on the CPU).
        workers: opencv backend: processes (default: every core).
        compile: torch backend: fuse the iterations with torch.compile (default: on CUDA only).
        **params: OpenCV's DualTVL1 parameters, same defaults: tau=0.25, lambda_=0.15 (or
            "lambda"), theta=0.3, nscales=5, warps=5, epsilon=0.01, inner_iterations=30,
            outer_iterations=10, scale_step=0.8, gamma=0.0, median_filtering=5.

    Returns:
        float32 (T - 1, H, W, 2): (x, y) displacement in pixels from frame t to t + 1, with
        OpenCV's convention I_t(p) ≈ I_{t+1}(p + flow[t, p]).
    """
    if backend not in BACKENDS:
        raise InvalidInputError(f"unknown flow backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    settings = TVL1Params.from_kwargs(params)
    gray = to_gray(frames)
    count, height, width = gray.shape
    if count < 2:
        raise InvalidInputError(f"flow needs at least 2 frames, got {count}")
    if min(height, width) < MIN_SIDE:
        raise InvalidInputError(f"frames of {height}×{width} are too small for TV-L1; both sides must be >= {MIN_SIDE}")
    if backend == "opencv":
        if device is not None and str(device) != "cpu":
            raise InvalidInputError(f"the opencv backend runs on the CPU; drop device={device!r} or use backend 'torch'")
        from .opencv_tvl1 import tvl1_opencv

        return tvl1_opencv(gray, settings, workers=workers)
    return _tvl1_torch(gray, settings, device, batch_size, compile)


def _tvl1_torch(gray: np.ndarray, params: TVL1Params, device: Any, batch_size: Optional[int],
                compile: Optional[bool]) -> np.ndarray:
    import torch

    from .torch_tvl1 import tvl1_pairs

    device = resolve_device(device)
    count, height, width = gray.shape
    batch = batch_size or _default_batch(device, height, width)
    if batch < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch}")
    frames = torch.from_numpy(np.ascontiguousarray(gray))
    out = np.empty((count - 1, height, width, 2), dtype=np.float32)
    for start in range(0, count - 1, batch):
        stop = min(start + batch, count - 1)
        chunk = frames[start:stop + 1].to(device, non_blocking=True).float().unsqueeze(1)
        flow = tvl1_pairs(chunk[:-1], chunk[1:], params, compile=compile)
        out[start:stop] = flow.permute(0, 2, 3, 1).cpu().numpy()
    return out
