"""Element-wise ops (rule ``pointwise``) as functions, tensor methods and modules, and channel
dropout (rule ``channel_dropout``): emitted unchanged once broadcast operands are aligned
with the time axis (:func:`~..rewriter.pointwise_result`)."""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from ....core.geometry import torch_pointwise
from ..registry import handles
from ..rewriter import HandlerResult, LayerRecord, ModuleResult, Rewriter, pointwise_result

__all__ = ["POINTWISE_FUNCTIONS", "POINTWISE_METHODS", "POINTWISE_MODULES", "pointwise"]

# The element-wise ops of the shared table (inflate.core.geometry.POINTWISE_OPS), as torch objects.
POINTWISE_FUNCTIONS = tuple(
    [getattr(operator, name) for name in torch_pointwise("operator")]
    + [getattr(torch, name) for name in torch_pointwise("torch")]
    + [getattr(F, name) for name in torch_pointwise("F")])
POINTWISE_METHODS = torch_pointwise("Tensor")
POINTWISE_MODULES = tuple(getattr(nn, name) for name in torch_pointwise("nn"))


@handles("pointwise", *POINTWISE_FUNCTIONS, *POINTWISE_METHODS, *POINTWISE_MODULES)
def pointwise(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return pointwise_result(rw, node)


@handles("channel_dropout", nn.Dropout2d)
def dropout2d(rw: Rewriter, node: fx.Node) -> ModuleResult:
    module = rw.submodule(node)
    path = str(node.target)
    dropout = nn.Dropout3d(module.p, module.inplace)
    return ModuleResult(dropout, LayerRecord(path, type(module).__name__, type(dropout).__name__, "per-frame",
                                             kind="channel_dropout"))
