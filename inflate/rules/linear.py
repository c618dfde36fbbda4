"""Ops on the last axes (linear layers, layer norm): time must stay out of those axes, and
their weights carry over unchanged."""

from __future__ import annotations

from ..core.rules import register_rule
from ..core.spec import InflatedOp, OpSpec, TimeSpec
from ._common import pointwise_in_time


@register_rule("linear")
def inflate_linear(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Linear layer on the last axis: the same weights applied to every frame's features."""
    return pointwise_in_time(op, time)


@register_rule("layer_norm")
def inflate_layer_norm(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Layer norm over the last axes: per token and frame, same affine parameters."""
    return pointwise_in_time(op, time)
