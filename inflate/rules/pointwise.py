"""Element-wise ops (activations, arithmetic, dropout) and channel dropout: no time settings.

An element-wise op computes each value from the values at the same position, so it runs on
a clip as on each of its frames; the adapter only aligns broadcast operands with the time axis.
"""

from __future__ import annotations

from ..core.rules import register_rule
from ..core.spec import InflatedOp, OpSpec, TimeSpec
from ._common import pointwise_in_time


@register_rule("pointwise")
def inflate_pointwise(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Element-wise ops (activations, arithmetic, dropout): applied to every frame as it is."""
    return pointwise_in_time(op, time)


@register_rule("channel_dropout")
def inflate_channel_dropout(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Channel dropout 2D → 3D: a dropped channel is dropped for the whole clip."""
    return pointwise_in_time(op, time)
