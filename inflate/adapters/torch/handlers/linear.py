"""Ops on the last axes (rules ``linear``, ``layer_norm``): linear layers and layer norms run as
in 2D once time is out of the axes they act on; their weights are the 2D module's."""

from __future__ import annotations

import torch.nn.functional as F
from torch import fx, nn

from ..layout import Clip
from ..registry import handles
from ..rewriter import HandlerResult, Rewriter
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


@handles("layer_norm", F.layer_norm)
def layer_norm_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    shape = arg(node, 1, "normalized_shape")
    return last_axes(rw, node, len(shape) if isinstance(shape, (tuple, list)) else 1)


@handles("layer_norm", nn.LayerNorm)
def layer_norm(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return last_axes(rw, node, len(rw.submodule(node).normalized_shape))
