"""Ops on the last axes (rules ``linear``, ``layer_norm``): linear layers and layer norms run as
in 2D once time is out of the axes they act on; their weights are the 2D module's."""

from __future__ import annotations

import torch.nn.functional as F
from torch import fx, nn

from ..layout import Clip
from ..registry import handles
from ..rewriter import HandlerResult, LayerRecord, Rewriter
from ._common import arg, first_clip

__all__ = ["last_axes"]


def last_axes(rw: Rewriter, node: fx.Node, count: int) -> HandlerResult:
    """An op on the last ``count`` axes (F.linear, F.layer_norm): time must not be among them."""
    x, clip = first_clip(rw, node)
    if clip.td > clip.rank2d - count:
        x, clip = rw.move_time(x, clip, 1)
        if clip.td > clip.rank2d - count:
            return rw.frame_wise(node)
    args = (x,) + tuple(rw.value(a) for a in node.args[1:])
    out = rw.emit_like(node, args, rw.value(node.kwargs))
    return out, Clip(clip.td, len(rw.shape2d(node)), clip.collapsed)


@handles("linear", F.linear, nn.Linear)
def linear(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return last_axes(rw, node, 1)


# RMS norms (torch ≥ 2.4) normalise the last axes as layer norms do
_RMS_FUNCTIONS = tuple(f for f in (getattr(F, "rms_norm", None),) if f is not None)
_RMS_MODULES = tuple(m for m in (getattr(nn, "RMSNorm", None),) if m is not None)


@handles("layer_norm", F.layer_norm, *_RMS_FUNCTIONS)
def layer_norm_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    shape = arg(node, 1, "normalized_shape")
    return last_axes(rw, node, len(shape) if isinstance(shape, (tuple, list)) else 1)


@handles("layer_norm", nn.LayerNorm, *_RMS_MODULES)
def layer_norm(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return last_axes(rw, node, len(rw.submodule(node).normalized_shape))


@handles("linear", nn.Conv1d)
def pointwise_conv1d(rw: Rewriter, node: fx.Node) -> HandlerResult:
    """A Conv1d of kernel 1 over (B, C, L) tokens is a linear layer over channels: it runs as in 2D
    on the tokens of all time slots (CoaT's class-token aggregation). Wider kernels mix
    neighbouring tokens and run frame by frame."""
    module = rw.submodule(node)
    x, clip = first_clip(rw, node)
    if module.kernel_size != (1,) or module.stride != (1,) or module.padding not in ((0,), "valid") or \
            clip.rank2d != 3 or clip.td == 1:
        return rw.frame_wise(node, "a Conv1d wider than one token")
    path = str(node.target)
    x, clip = rw.move_time(x, clip, 2)
    slots = rw.frames(x, clip)
    out = rw.call_module(path, rw.call_method("flatten", x, 2, 3))
    rw.note(LayerRecord(path, "Conv1d", "same op on the tokens of every frame", "per-frame", kind="linear"))
    return rw.call_method("unflatten", out, 2, (slots, -1)), Clip(2, 3, clip.collapsed)
