"""Weight bootstrapping on numpy arrays: a 2D kernel becomes a 3D one.

Both initialisers keep the sum over time equal to the 2D kernel, which is what makes a
clip of one repeated frame (a "boring video") give the 2D network's responses.
"""

from __future__ import annotations

import numpy as np

from .errors import InvalidInputError, ShapeMismatchError
from .spec import INITS

__all__ = ["inflate_kernel", "tile_kernel", "center_kernel", "center_index"]


def _check(kernel2d: np.ndarray, time_kernel: int) -> None:
    if not isinstance(kernel2d, np.ndarray):
        raise InvalidInputError(f"expected a numpy array, got {type(kernel2d).__name__}")
    if kernel2d.ndim != 4:
        raise ShapeMismatchError(
            "2D kernel", ("out", "in", "kh", "kw"), kernel2d.shape,
            "a 2D convolution kernel is (out_channels, in_channels/groups, kh, kw)",
        )
    if not isinstance(time_kernel, (int, np.integer)) or time_kernel < 1:
        raise InvalidInputError(f"temporal kernel size must be an integer >= 1, got {time_kernel!r}")


def center_index(time_kernel: int) -> int:
    """The slice of a temporal kernel that sees the current frame under default padding."""
    return (time_kernel - 1) // 2


def tile_kernel(kernel2d: np.ndarray, time_kernel: int) -> np.ndarray:
    """Repeat a (O, I, kh, kw) kernel ``time_kernel`` times along a new time axis and divide.

    Returns a (O, I, time_kernel, kh, kw) array of the input's dtype (I3D's bootstrapping).
    """
    _check(kernel2d, time_kernel)
    scaled = kernel2d / kernel2d.dtype.type(time_kernel)
    return np.repeat(scaled[:, :, None], time_kernel, axis=2)


def center_kernel(kernel2d: np.ndarray, time_kernel: int) -> np.ndarray:
    """Place a (O, I, kh, kw) kernel in the middle slice of a zero (O, I, k_t, kh, kw) kernel."""
    _check(kernel2d, time_kernel)
    out = np.zeros(
        (kernel2d.shape[0], kernel2d.shape[1], time_kernel, *kernel2d.shape[2:]), dtype=kernel2d.dtype
    )
    out[:, :, center_index(time_kernel)] = kernel2d
    return out


def inflate_kernel(kernel2d: np.ndarray, time_kernel: int, init: str = "tile") -> np.ndarray:
    """Inflate a 2D kernel by the named initialiser ("tile" or "center")."""
    if init == "tile":
        return tile_kernel(kernel2d, time_kernel)
    if init == "center":
        return center_kernel(kernel2d, time_kernel)
    raise InvalidInputError(f"unknown init {init!r}: use one of {', '.join(INITS)}")
