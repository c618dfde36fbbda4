"""Element-wise ops (rule ``pointwise``) as functions, tensor methods and modules, and channel
dropout (rule ``channel_dropout``): emitted unchanged once broadcast operands are aligned
with the time axis (:func:`~..rewriter.pointwise_result`)."""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..registry import handles
from ..rewriter import HandlerResult, LayerRecord, ModuleResult, Rewriter, pointwise_result

__all__ = ["POINTWISE_FUNCTIONS", "POINTWISE_METHODS", "POINTWISE_MODULES", "pointwise"]

POINTWISE_FUNCTIONS = (
    operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.pow,
    operator.neg, operator.iadd, operator.imul, operator.isub, operator.itruediv,
    torch.add, torch.sub, torch.mul, torch.div, torch.sigmoid, torch.tanh, torch.relu, torch.clamp,
    torch.exp, torch.sqrt, torch.rsqrt, torch.abs, torch.where, torch.maximum, torch.minimum, torch.erf,
    torch.clip, torch.neg, torch.pow, torch.square,
    F.relu, F.relu6, F.gelu, F.silu, F.sigmoid, F.hardsigmoid, F.hardswish, F.leaky_relu, F.elu, F.selu,
    F.mish, F.softplus, F.tanh, F.hardtanh, F.dropout, F.celu, F.prelu, F.threshold,
)
POINTWISE_METHODS = (
    "add", "sub", "mul", "div", "sigmoid", "tanh", "relu", "clamp", "clamp_min", "clamp_max", "exp", "sqrt",
    "rsqrt", "abs", "neg", "pow", "square", "erf", "add_", "mul_", "sub_", "div_", "sigmoid_", "relu_",
    "clamp_", "contiguous", "clone", "float", "half", "double", "bfloat16", "to", "type_as", "detach",
    "masked_fill", "where", "maximum", "minimum", "tanh_", "hardtanh_", "exp_",
)
POINTWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.LeakyReLU,
    nn.ELU, nn.SELU, nn.CELU, nn.Mish, nn.Softplus, nn.Hardtanh, nn.Identity, nn.Dropout, nn.AlphaDropout,
    nn.PReLU, nn.Threshold, nn.LogSigmoid, nn.Softsign, nn.Tanhshrink,
)


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
