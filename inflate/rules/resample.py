"""Resampling and padding: space only, time is left as it is."""

from __future__ import annotations

from ..core.rules import register_rule
from ..core.spec import InflatedOp, OpSpec, TimeSpec
from ._common import pointwise_in_time


@register_rule("upsample")
def inflate_upsample(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Upsampling: scale (s_h, s_w) → (1, s_h, s_w); a target size keeps the clip length."""
    return pointwise_in_time(op, time)


@register_rule("pad")
def inflate_pad(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Spatial padding: the time axis gets none."""
    return pointwise_in_time(op, time)
