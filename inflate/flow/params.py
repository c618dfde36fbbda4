"""TV-L1 parameters (OpenCV's ``DualTVL1OpticalFlow`` defaults) and OpenCV's RGB → gray conversion.

Imports numpy only, so the OpenCV worker processes start without torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import numpy as np

from ..core.errors import InvalidInputError, ShapeMismatchError

__all__ = ["TVL1Params", "to_gray"]

# OpenCV's fixed-point RGB → gray weights (0.299, 0.587, 0.114 in 1/2**15), rounded half up: bit-exact
# with cv2.cvtColor(COLOR_RGB2GRAY) on all 2**24 colours (OpenCV 5.0).
_GRAY_WEIGHTS = (9798, 19235, 3735)
_GRAY_SHIFT = 15


@dataclass(frozen=True)
class TVL1Params:
    """The parameters of OpenCV's ``cv2.optflow.DualTVL1OpticalFlow``, with its defaults.

    ``lambda_`` is OpenCV's ``lambda`` (a Python keyword). ``median_filtering`` is the
    median kernel applied to the flow before every outer iteration: 1 turns it off,
    3 or 5 as OpenCV allows for float images.
    """

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    gamma: float = 0.0
    median_filtering: int = 5

    def __post_init__(self) -> None:
        positive = {"tau": self.tau, "lambda_": self.lambda_, "theta": self.theta}
        for name, value in positive.items():
            if not value > 0:
                raise InvalidInputError(f"TV-L1 {name} must be > 0, got {value}")
        for name in ("nscales", "warps", "inner_iterations", "outer_iterations"):
            if int(getattr(self, name)) < 1:
                raise InvalidInputError(f"TV-L1 {name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.scale_step < 1:
            raise InvalidInputError(f"TV-L1 scale_step must be in (0, 1), got {self.scale_step}")
        if self.epsilon < 0 or self.gamma < 0:
            raise InvalidInputError(f"TV-L1 epsilon and gamma must be >= 0, got {self.epsilon}, {self.gamma}")
        if self.median_filtering not in (0, 1, 3, 5):
            raise InvalidInputError(f"TV-L1 median_filtering must be 1 (off), 3 or 5, got {self.median_filtering}")

    @classmethod
    def from_kwargs(cls, params: Mapping[str, Any]) -> "TVL1Params":
        """Build from keyword arguments; ``lambda`` is accepted for ``lambda_``. Unknown names raise."""
        params = dict(params)
        if "lambda" in params:
            params["lambda_"] = params.pop("lambda")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise InvalidInputError(f"unknown TV-L1 parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**params)

    def opencv_kwargs(self) -> dict[str, Any]:
        """The arguments of ``cv2.optflow.DualTVL1OpticalFlow_create`` (its binding spells 'innnerIterations')."""
        return dict(tau=self.tau, lambda_=self.lambda_, theta=self.theta, nscales=self.nscales, warps=self.warps,
                    epsilon=self.epsilon, innnerIterations=self.inner_iterations,
                    outerIterations=self.outer_iterations, scaleStep=self.scale_step, gamma=self.gamma,
                    medianFiltering=self.median_filtering)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def to_gray(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB → (T, H, W) uint8 gray, bit-exact with ``cv2.cvtColor(..., COLOR_RGB2GRAY)``.

    (T, H, W) uint8 frames are returned as they are.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise InvalidInputError(f"frames must be uint8, got {frames.dtype}")
    if frames.ndim == 3:
        return frames
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ShapeMismatchError("frames", ("T", "H", "W", "3 (RGB) or none (gray)"), frames.shape)
    r, g, b = (frames[..., i].astype(np.int32) for i in range(3))
    wr, wg, wb = _GRAY_WEIGHTS
    gray = (r * wr + g * wg + b * wb + (1 << (_GRAY_SHIFT - 1))) >> _GRAY_SHIFT
    return gray.astype(np.uint8)
