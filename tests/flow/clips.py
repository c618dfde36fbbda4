"""Tiny videos written with PyAV for the flow tests: a smooth random texture moving by a known step."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random uint8 gray texture (sum of a few random sinusoids), TV-L1 friendly."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    image = np.zeros((height, width))
    for _ in range(6):
        fy, fx = rng.uniform(0.05, 0.25, size=2)
        image += np.sin(fy * y + fx * x + rng.uniform(0, 2 * np.pi))
    image = (image - image.min()) / (image.max() - image.min())
    return (image * 220 + 20).astype(np.uint8)


def moving_frames(count: int, height: int = 48, width: int = 64, step: tuple[int, int] = (1, 0), seed: int = 0) -> np.ndarray:
    """(count, height, width, 3) uint8 RGB: a texture translated by ``step`` (dx, dy) pixels per frame."""
    big = texture(height + 4 * count, width + 4 * count, seed)
    frames = []
    for t in range(count):
        y0, x0 = 2 * count - t * step[1], 2 * count - t * step[0]
        gray = big[y0:y0 + height, x0:x0 + width]
        frames.append(np.repeat(gray[..., None], 3, axis=-1))
    return np.stack(frames)


def write_clip(path: Path, frames: np.ndarray, fps: int = 25) -> Path:
    """Encode RGB frames (T, H, W, 3) with PyAV's MPEG-4 part 2 encoder (always built in)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "2"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
