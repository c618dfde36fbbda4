"""Normalisation (rules ``batch_norm``, ``group_norm``): statistics and affine parameters carry
over through the core rule; batch norm becomes InflatedBatchNorm3d, group norm keeps its module."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import fx, nn

from ....core.spec import OpSpec
from .. import modules as m3d
from ..registry import handles
from ..rewriter import HandlerResult, LayerRecord, ModuleResult, Rewriter, node_path
from ._common import first_clip, module_weights, set_params

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
def group_norm_function(rw: Rewriter, node: fx.Node) -> HandlerResult:
    """``F.group_norm`` (timm's GroupNormAct, GroupNorm1): as the module, statistics over
    (C/G, T, H, W) with time behind the channels."""
    path = node_path(node)
    op, _ = rw.inflate_op(OpSpec("group_norm", path, role=rw.role(path)))
    x, clip = first_clip(rw, node)
    replaced = {}
    if clip.td < 2:
        replaced[node.args[0]], clip = rw.move_time(x, clip, 2)
    rw.note(LayerRecord(path, "F.group_norm", "F.group_norm", "per-frame", kind=op.kind))
    return rw.emit_like(node, *rw.substitute(node, replaced)), clip
