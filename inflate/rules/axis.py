"""Ops that name tensor axes (reshape, permute, cat, split, indexing, reductions, softmax).

They have no weights and no time settings: the adapter renumbers their axis arguments
around the time axis, which travels with the 2D axis it precedes. An op whose axes would mix
time with others (a reshape across it) runs frame by frame instead and is reported.
"""

from __future__ import annotations

from ..core.rules import register_rule
from ..core.spec import InflatedOp, OpSpec, TimeSpec
from ._common import pointwise_in_time


@register_rule("axis")
def inflate_axis(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Axis ops (reshape, permute, cat, reductions, softmax...): axis numbers renumbered around time."""
    return pointwise_in_time(op, time)
