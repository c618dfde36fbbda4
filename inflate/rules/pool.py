"""Pooling: windowed pools get the policy's temporal window; global pools pool time too."""

from __future__ import annotations

from dataclasses import replace

from ..core.rules import Temporal, register_rule
from ..core.spec import InflatedOp, OpSpec, TimeSpec
from ._common import windowed


@register_rule("max_pool", temporal=Temporal(pool="max"))
def inflate_max_pool(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Max pooling: k_h×k_w → k_t×k_h×k_w (k_t = 1 unless the policy says)."""
    return windowed(op, time)


@register_rule("avg_pool", temporal=Temporal(pool="avg"))
def inflate_avg_pool(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Average pooling: k_h×k_w → k_t×k_h×k_w (k_t = 1 unless the policy says)."""
    return windowed(op, time)


def _adaptive(op: OpSpec, time: TimeSpec) -> InflatedOp:
    size = tuple(op.output_size or ())
    # A global spatial pool becomes a global space-time pool: the 3D counterpart of
    # "one vector per image" is "one vector per clip", and time is pooled before the head.
    time_size = 1 if size and all(s == 1 for s in size) else None
    return replace(windowed(op, time.with_(kernel=1, stride=1)), output_size=(time_size, *size))


@register_rule("adaptive_avg_pool")
def inflate_adaptive_avg_pool(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Adaptive average pooling: a (1, 1) target pools time too; others keep every frame."""
    return _adaptive(op, time)


@register_rule("adaptive_max_pool")
def inflate_adaptive_max_pool(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Adaptive max pooling: a (1, 1) target pools time too; others keep every frame."""
    return _adaptive(op, time)
