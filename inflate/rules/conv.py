"""Convolution: k_h×k_w → k_t×k_h×k_w, weights bootstrapped by ``tile`` or ``center``."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..core.errors import ShapeMismatchError
from ..core.rules import register_rule
from ..core.spec import InflatedOp, OpSpec, TimeSpec
from ..core.weights import inflate_kernel
from ._common import windowed


def conv_weights(weights: Mapping[str, np.ndarray], op: InflatedOp) -> dict[str, np.ndarray]:
    """``weight`` (O, I/g, kh, kw) → (O, I/g, k_t, kh, kw); ``bias`` is copied."""
    out: dict[str, np.ndarray] = {}
    for name, value in weights.items():
        if name == "weight":
            if value.ndim != 4 or tuple(value.shape[2:]) != tuple(op.kernel[1:]):
                raise ShapeMismatchError(
                    f"weight of conv '{op.source.path}'", ("O", "I", *op.kernel[1:]), value.shape
                )
            out[name] = inflate_kernel(value, op.kernel[0], op.time.init)
        else:
            out[name] = np.array(value, copy=True)
    return out


@register_rule("conv", weights=conv_weights)
def inflate_conv(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Convolution: temporal kernel, stride, dilation and padding from the policy."""
    return windowed(op, time)
