"""Convolution and transposed convolution: k_h×k_w → k_t×k_h×k_w, weights bootstrapped by ``tile`` or ``center``."""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping

import numpy as np

from ..core.errors import InvalidInputError, ShapeMismatchError
from ..core.rules import Temporal, register_rule
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


@register_rule("conv", weights=conv_weights, temporal=Temporal("kernel", stem=True, weighted=True))
def inflate_conv(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Convolution: temporal kernel, stride, dilation and padding from the policy."""
    return windowed(op, time)


@register_rule("conv_transpose", weights=conv_weights, temporal=Temporal("kernel", weighted=True))
def inflate_conv_transpose(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Transposed convolution: a conv's time kernel at time stride 1, weights tiled or centred as a conv's.

    At time stride 1 a transposed convolution is the convolution with the time-flipped kernel,
    so the time padding is a conv's with the odd frame in front: the centre slice of a
    ``center`` kernel then sees the current frame, as a conv's does, and the weights (in, out,
    k_t, kh, kw) map exactly as a conv's, which is what a weight file alone gets. A time
    stride (upsampling time) or TF SAME time padding has no rule.
    """
    if time.stride != 1 or time.padding == "same":
        raise InvalidInputError(
            f"transposed conv '{op.path}': a temporal stride ({time.stride}) or SAME time padding has no rule; "
            "give it a policy override with stride 1 and static padding"
        )
    front, back = time.pads  # type: ignore[misc]
    return replace(windowed(op, time), time_pads=(back, front) if time.padding is None else (front, back))


@register_rule("filter", weights=conv_weights, temporal=Temporal("none", weighted=True))
def inflate_filter(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Fixed-kernel convolution (F.conv2d with a buffer kernel: anti-aliasing blurs): time 1 unless an override says."""
    return windowed(op, time)
