"""Normalisation (rules ``batch_norm``, ``group_norm``): statistics and affine parameters carry
over through the core rule; batch norm becomes InflatedBatchNorm3d (BatchNorm1d a 1D/2D batch
norm with time behind the channels), group norm keeps its module. Vector norms over axes (rule
``axis``: Tensor.norm, torch.norm, torch.linalg.vector_norm, as GRN computes them) reduce time
with the axis it travels with, scaled to the 2D norm on a boring clip."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ....core.geometry import reduce_axes
from ....core.spec import OpSpec
from .. import modules as m3d
from ..layout import Clip, clip_vector_norm
from ..registry import handles
from ..rewriter import HandlerResult, LayerRecord, ModuleResult, Rewriter, node_path
from ._common import arg, first_clip, module_weights, set_params

__all__ = ["batch_norm_result"]


def batch_norm_result(rw: Rewriter, node: fx.Node, cls: type = m3d.InflatedBatchNorm3d,
                      **extra: Any) -> ModuleResult:
    """A 2D batch norm node → ``cls`` (a 3D batch norm) holding the rule's weights: statistics
    over (B, T, H, W) with the same running statistics and affine parameters."""
    module = rw.submodule(node)
    path = str(node.target)
    _, weights3d = rw.inflate_op(OpSpec("batch_norm", path, role=rw.role(path)), module_weights(module))
    bn = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats,
             device="meta", **extra)
    set_params(bn, weights3d, module)
    return ModuleResult(bn, LayerRecord(path, type(module).__name__, type(bn).__name__, "per-frame",
                                        kind="batch_norm"))


@handles("batch_norm", nn.BatchNorm2d)
def batch_norm(rw: Rewriter, node: fx.Node) -> ModuleResult:
    return batch_norm_result(rw, node)


@handles("batch_norm", nn.BatchNorm1d)
def batch_norm_1d(rw: Rewriter, node: fx.Node) -> HandlerResult:
    """BatchNorm1d on (N, C) or (N, C, L) (NextViT's E-MHSA norm on tokens, BN heads on pooled
    features): with time behind the channels the input is (N, C, T[, L]), normalised per channel
    over (N, T[, L]) by BatchNorm1d (3D input) or BatchNorm2d (4D), holding the 2D module's weights."""
    x, clip = first_clip(rw, node)
    if clip.rank2d not in (2, 3):
        return rw.frame_wise(node, f"expected a (N, C) or (N, C, L) input, got {clip.rank2d}D")
    cls = nn.BatchNorm1d if clip.rank2d == 2 else nn.BatchNorm2d
    result = batch_norm_result(rw, node, cls)
    x, clip = rw.move_time(x, clip, 2)
    path = rw.replace_module(node, result.module, result.record)
    return rw.call_module(path, x), clip


@handles("group_norm", nn.GroupNorm)
def group_norm(rw: Rewriter, node: fx.Node) -> HandlerResult:
    """GroupNorm takes any (N, C, *) input: with time behind the channels its statistics are
    over (C/G, T, H, W), its 3D form; the rule keeps its parameters, so the module stays."""
    module = rw.submodule(node)
    path = str(node.target)
    op, _ = rw.inflate_op(OpSpec("group_norm", path, role=rw.role(path)))
    x, clip = first_clip(rw, node)
    if clip.td < 2:
        x, clip = rw.move_time(x, clip, 2)
    rw.note(LayerRecord(path, type(module).__name__, type(module).__name__, "per-frame", kind=op.kind))
    return rw.call_module(path, x), clip



@handles("group_norm", F.group_norm)
def group_norm_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    """F.group_norm (timm's GroupNorm1 in MetaFormer/PoolFormer, EfficientViT, SHViT) as the module:
    on (N, C, *) with time behind the channels, statistics over (C/G, T, H, W), weights as in 2D."""
    path = node_path(node)
    op, _ = rw.inflate_op(OpSpec("group_norm", path, role=rw.role(path)))
    x, clip = first_clip(rw, node)
    if clip.collapsed:
        return rw.frame_wise(node)
    if clip.td < 2:
        x, clip = rw.move_time(x, clip, 2)
    args = (x,) + tuple(rw.value(a) for a in node.args[1:])
    out = rw.emit_like(node, args, rw.value(node.kwargs))
    rw.note(LayerRecord(path, "group_norm", "group_norm", "per-frame", kind=op.kind))
    return out, clip


# ----- vector norms over axes -----

def _norm(rw: Rewriter, node: fx.Node, ord: Any, dim: Any, keepdim: Any, dtype: Any) -> HandlerResult:
    x, clip = first_clip(rw, node)
    if ord == "fro":
        ord = 2.0
    if isinstance(ord, str) or not isinstance(ord, (int, float)) or isinstance(ord, bool) or \
            not isinstance(keepdim, bool) or isinstance(dim, fx.Node):
        return rw.frame_wise(node, f"a matrix norm (p={ord!r}) or arguments computed at run time")
    if dim is None:  # the whole tensor, time and batch included: a scalar
        out = rw.call_function(clip_vector_norm, x, float(ord), None, keepdim, clip.td, dtype)
        return out, (clip.with_(collapsed=True) if keepdim else None)
    dims = list(dim) if isinstance(dim, (tuple, list)) else [dim]
    reduction = reduce_axes(dims, clip.td, clip.rank2d)
    out = rw.call_function(clip_vector_norm, x, float(ord), reduction.axes, keepdim,
                           clip.td if reduction.over_time else None, dtype)
    if keepdim:
        return out, clip.with_(collapsed=clip.collapsed or reduction.over_time)
    if reduction.time_axis is None:
        return out, None
    return out, Clip(reduction.time_axis, reduction.rank2d, clip.collapsed)


@handles("axis", "norm", torch.norm)
def norm(rw: Rewriter, node: fx.Node) -> HandlerResult:
    """Tensor.norm and torch.norm: p "fro" or a number over ``dim`` is a vector norm
    (torch computes it with torch.linalg.vector_norm); "nuc" runs frame by frame."""
    return _norm(rw, node, arg(node, 1, "p", "fro"), arg(node, 2, "dim"), arg(node, 3, "keepdim", False),
                 node.kwargs.get("dtype"))


@handles("axis", torch.linalg.vector_norm)
def vector_norm(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _norm(rw, node, arg(node, 1, "ord", 2), arg(node, 2, "dim"), arg(node, 3, "keepdim", False),
                 node.kwargs.get("dtype"))
