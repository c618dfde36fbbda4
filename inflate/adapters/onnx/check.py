"""The boring-video check for ONNX files, in onnxruntime."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np


def boring_video_onnx(model2d: str | os.PathLike[str], model3d: str | os.PathLike[str], t: int, seed: int = 0,
                      size: Optional[tuple[int, int]] = None) -> float:
    """max |out_3d(repeated frame) − out_2d(frame)| / max |out_2d| for a seeded random image.

    The image has the 2D graph's input shape; a dynamic batch is 1, dynamic height and width
    are ``size`` (default 224×224), which replaces fixed ones too (the graph must take it).
    """
    import onnxruntime as ort

    session2d = ort.InferenceSession(str(model2d), providers=["CPUExecutionProvider"])
    session3d = ort.InferenceSession(str(model3d), providers=["CPUExecutionProvider"])
    spec = session2d.get_inputs()[0]
    fixed = [d if isinstance(d, int) and d > 0 else None for d in spec.shape]
    shape = [fixed[0] or 1, fixed[1] or 3, *(size or [d or 224 for d in fixed[2:]])]
    image = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    out2d = session2d.run(None, {spec.name: image})[0]
    out3d = session3d.run(None, {session3d.get_inputs()[0].name: np.repeat(image[:, :, None], t, axis=2)})[0]
    if out3d.shape != out2d.shape:
        out3d = out3d[:, :, 0] if out3d.ndim == out2d.ndim + 1 else out3d
    scale = float(np.abs(out2d).max()) or 1.0
    return float(np.abs(out3d - out2d).max()) / scale
