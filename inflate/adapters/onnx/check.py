"""The boring-video check for ONNX files, in onnxruntime."""

from __future__ import annotations

import os

import numpy as np


def boring_video_onnx(model2d: str | os.PathLike[str], model3d: str | os.PathLike[str], t: int, seed: int = 0) -> float:
    """max |out_3d(repeated frame) − out_2d(frame)| / max |out_2d| for a seeded random image."""
    import onnxruntime as ort

    session2d = ort.InferenceSession(str(model2d), providers=["CPUExecutionProvider"])
    session3d = ort.InferenceSession(str(model3d), providers=["CPUExecutionProvider"])
    spec = session2d.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape]
    image = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    out2d = session2d.run(None, {spec.name: image})[0]
    out3d = session3d.run(None, {session3d.get_inputs()[0].name: np.repeat(image[:, :, None], t, axis=2)})[0]
    if out3d.shape != out2d.shape:
        out3d = out3d[:, :, 0] if out3d.ndim == out2d.ndim + 1 else out3d
    scale = float(np.abs(out2d).max()) or 1.0
    return float(np.abs(out3d - out2d).max()) / scale
