"""Normalisation: per-channel statistics and affine parameters carry over unchanged."""

from __future__ import annotations

from ..core.rules import register_rule
from ..core.spec import InflatedOp, OpSpec, TimeSpec
from ._common import pointwise_in_time


@register_rule("batch_norm")
def inflate_batch_norm(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Batch norm 2D → 3D: statistics over (N, T, H, W), same running stats and affine."""
    return pointwise_in_time(op, time)


@register_rule("group_norm")
def inflate_group_norm(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Group norm: statistics over (C/G, T, H, W); equal per frame on a boring video."""
    return pointwise_in_time(op, time)
