"""Pieces shared by the rule modules."""

from __future__ import annotations

from ..core.spec import InflatedOp, OpSpec, TimeSpec


def windowed(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """The 3D description of a windowed op (conv, pool): time settings in front of space."""
    return InflatedOp(
        kind=op.kind,
        kernel=(time.kernel, *op.kernel),
        stride=(time.stride, *op.stride),
        dilation=(time.dilation, *op.dilation),
        padding=op.padding,
        time_pads=time.pads if time.kernel > 1 or time.padding == "same" else (0, 0),
        time_pad_mode=time.pad_mode,
        groups=op.groups,
        source=op,
        time=time,
    )


def pointwise_in_time(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """The 3D description of an op with no temporal extent (norms, resampling)."""
    return InflatedOp(
        kind=op.kind,
        kernel=(1, *op.kernel),
        stride=(1, *op.stride),
        dilation=(1, *op.dilation),
        padding=op.padding,
        time_pads=(0, 0),
        time_pad_mode=time.pad_mode,
        groups=op.groups,
        output_size=op.output_size,
        scale=None if op.scale is None else (1.0, *op.scale),
        source=op,
        time=time.with_(kernel=1, stride=1, dilation=1, padding=None),
    )
