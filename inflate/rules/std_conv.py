"""Weight-standardised convolution (timm's StdConv2d, ScaledStdConv2d and their SAME-padded forms).

The 2D op standardises its kernel in forward, per output channel over (C_in/g, k_h, k_w):
ŵ = gain · scale · (w − mean) / sqrt(var + eps), with the biased variance; ``gain`` and
``scale`` = γ · fan_in^-1/2 only for the scaled form. The 3D op standardises the
k_t×k_h×k_w kernel over (C_in/g, k_t, k_h, k_w) and scales the result by 1/k_t, so it is
still weight standardisation (one statistic per output channel over the whole 3D fan-in)
and, on a clip of one repeated frame, gives back the 2D op:

- the stored kernel is the plain conv rule's ``tile`` (the 2D kernel repeated k_t times
  and divided by k_t), so a weight file inflated by the conv rule holds the same numbers;
- the mean and the standard deviation of that kernel are the 2D kernel's divided by k_t, so
  with ``eps`` divided by k_t² the standardised slices are exactly the 2D ŵ;
- the 1/k_t on the standardised kernel makes its sum over time ŵ again.

Training then moves the slices apart and the 3D statistics follow. ``center`` init cannot
keep the equality (the zero slices change the kernel's statistics by a factor that depends
on its values), so the rule refuses it for a time kernel above 1.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..core.errors import InvalidInputError
from ..core.rules import Temporal, register_rule
from ..core.spec import InflatedOp, OpSpec, TimeSpec
from ._common import windowed
from .conv import conv_weights

__all__ = ["std_conv_weights", "standardize_kernel"]


def standardize_kernel(weight: np.ndarray, eps: float, gain: np.ndarray | None = None,
                       scale: float = 1.0) -> np.ndarray:
    """Weight standardisation of a (O, I, *k) kernel, per output channel over all other axes,
    with the biased variance as ``F.batch_norm`` computes it: gain · scale · (w − μ) / √(σ² + eps).
    ``gain`` is (O,) or (O, 1, ...); returns an array of ``weight``'s shape (float64)."""
    flat = weight.astype(np.float64).reshape(weight.shape[0], -1)
    mean = flat.mean(axis=1, keepdims=True)
    var = flat.var(axis=1, keepdims=True)
    out = (flat - mean) / np.sqrt(var + eps) * scale
    if gain is not None:
        out = out * np.asarray(gain, dtype=np.float64).reshape(-1, 1)
    return out.reshape(weight.shape)


def std_conv_weights(weights: Mapping[str, np.ndarray], op: InflatedOp) -> dict[str, np.ndarray]:
    """``weight`` (O, I/g, kh, kw) → the conv rule's (O, I/g, k_t, kh, kw); ``gain`` and ``bias``
    are copied; the scalars ``eps`` → eps / k_t² and ``scale`` → scale / k_t (1 / k_t when the
    op has no scale, as StdConv2d), which the 3D module applies (see the module docstring).
    A weight file holds no ``eps``: its kernels alone map as the conv rule's."""
    k_t = op.kernel[0]
    out = conv_weights({k: v for k, v in weights.items() if k not in ("eps", "scale")}, op)
    if "eps" in weights:
        out["eps"] = np.asarray(weights["eps"], dtype=np.float64) / k_t ** 2
        out["scale"] = np.asarray(weights.get("scale", 1.0), dtype=np.float64) / k_t
    return out


@register_rule("std_conv", weights=std_conv_weights, temporal=Temporal("kernel", stem=True, weighted=True))
def inflate_std_conv(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Weight-standardised conv: the kernel standardised over (C_in, k_t, k, k) and scaled by 1/k_t."""
    if time.kernel > 1 and time.init != "tile":
        raise InvalidInputError(
            f"weight-standardised conv '{op.path}': init {time.init!r} cannot keep a repeated-frame clip's "
            "output (standardising a kernel with zero slices changes its statistics); use init 'tile', or an "
            f"override giving '{op.path}' a time kernel of 1"
        )
    return windowed(op, time)
