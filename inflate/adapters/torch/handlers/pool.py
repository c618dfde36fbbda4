"""Pooling (rules ``max_pool``, ``avg_pool``, ``adaptive_avg_pool``, ``adaptive_max_pool``), as
modules and as functions: windowed pools take the policy's time window (1 unless an override
says), padded with edge frames or, for max pooling under zeros, -inf; a global pool pools time."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ....core.geometry import pad_mode_for
from ....core.rules import get_rule
from ....core.spec import OpSpec
from .. import modules as m3d
from ..registry import handles
from ..rewriter import HandlerResult, LayerRecord, ModuleResult, Rewriter, node_path
from ._common import arg, first_clip, pair

__all__ = ["pool_result"]


def pool_result(rw: Rewriter, node: fx.Node, kind: str, same: bool = False) -> HandlerResult | ModuleResult:
    """A max or average pool module (``same``: TF SAME padding at run time) → its 3D form."""
    module = rw.submodule(node)
    path = str(node.target)
    stride = module.stride if module.stride is not None else module.kernel_size
    padding = "same" if same else pair(module.padding)
    dilation = pair(getattr(module, "dilation", 1))
    spec = OpSpec(kind, path, pair(module.kernel_size), pair(stride), padding, dilation, role=rw.role(path))
    op, _ = rw.inflate_op(spec)
    if get_rule(kind).temporal.pool == "max":
        if module.return_indices:
            return rw.frame_wise(node, "max pooling with return_indices")
        pool: nn.Module = m3d.InflatedMaxPool3d(op.kernel, op.stride, op.padding, op.dilation, module.ceil_mode,
                                                op.time_pads, op.time_pad_mode)
    else:
        pool = m3d.InflatedAvgPool3d(op.kernel, op.stride, op.padding, module.ceil_mode, module.count_include_pad,
                                     module.divisor_override, op.time_pads, op.time_pad_mode)
    return ModuleResult(pool, LayerRecord.of(path, type(module).__name__, type(pool).__name__, op))


@handles("max_pool", nn.MaxPool2d)
def max_pool(rw: Rewriter, node: fx.Node) -> HandlerResult | ModuleResult:
    return pool_result(rw, node, "max_pool")


@handles("avg_pool", nn.AvgPool2d)
def avg_pool(rw: Rewriter, node: fx.Node) -> HandlerResult | ModuleResult:
    return pool_result(rw, node, "avg_pool")


def _adaptive(rw: Rewriter, node: fx.Node, kind: str, cls: type) -> ModuleResult:
    module = rw.submodule(node)
    path = str(node.target)
    size = module.output_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    op, _ = rw.inflate_op(OpSpec(kind, path, output_size=size, role=rw.role(path)))
    pool = cls(op.output_size)
    return ModuleResult(pool, LayerRecord.of(path, type(module).__name__, type(pool).__name__, op),
                        collapses=op.output_size[0] == 1)


@handles("adaptive_avg_pool", nn.AdaptiveAvgPool2d)
def adaptive_avg_pool(rw: Rewriter, node: fx.Node) -> ModuleResult:
    return _adaptive(rw, node, "adaptive_avg_pool", nn.AdaptiveAvgPool3d)


@handles("adaptive_max_pool", nn.AdaptiveMaxPool2d)
def adaptive_max_pool(rw: Rewriter, node: fx.Node) -> HandlerResult | ModuleResult:
    if rw.submodule(node).return_indices:
        return rw.frame_wise(node, "adaptive max pooling with return_indices")
    return _adaptive(rw, node, "adaptive_max_pool", nn.AdaptiveMaxPool3d)


# ----- functional forms -----

def ncthw(rw: Rewriter, node: fx.Node) -> tuple[Any, Any]:
    """A node's first argument as a (B, C, T, H, W) clip; a map of another rank is refused."""
    x, clip = first_clip(rw, node)
    if clip.rank2d != 4:
        raise rw.unsupported(node, f"expected a 4D feature map, got {clip.rank2d}D")
    return rw.move_time(x, clip, 2)


def _pad_time_fn(x: torch.Tensor, pads: Any, mode: str, kernel: int, stride: int) -> torch.Tensor:
    return m3d.pad_time(x, m3d._resolve_time_pads(x, pads, kernel, stride, 1), mode)


def _pool_fn(rw: Rewriter, node: fx.Node, kind: str) -> HandlerResult:
    x, clip = ncthw(rw, node)
    kernel = pair(arg(node, 1, "kernel_size"))
    stride_arg = arg(node, 2, "stride")
    stride = kernel if stride_arg in (None, [], ()) else pair(stride_arg)
    padding = pair(arg(node, 3, "padding", 0))
    path = node_path(node)
    op, _ = rw.inflate_op(OpSpec(kind, path, kernel, stride, padding, role=rw.role(path)))
    is_max = get_rule(kind).temporal.pool == "max"
    if op.time_pads == "same" or any(op.time_pads):
        mode = pad_mode_for(get_rule(kind).temporal.pool, op.time_pad_mode)  # -inf for max pooling, never zeros
        x = rw.call_function(_pad_time_fn, x, op.time_pads, mode, op.kernel[0], op.stride[0])
    if is_max:
        dilation = pair(arg(node, 4, "dilation", 1))
        ceil_mode = bool(arg(node, 5, "ceil_mode", False))
        out = rw.call_function(F.max_pool3d, x, op.kernel, op.stride, (0, *padding), (1, *dilation), ceil_mode)
    else:
        ceil_mode = bool(arg(node, 4, "ceil_mode", False))
        include = bool(arg(node, 5, "count_include_pad", True))
        divisor = arg(node, 6, "divisor_override", None)
        # modules.avg_pool3d takes every map avg_pool2d takes (a padded window larger than the map)
        out = rw.call_function(m3d.avg_pool3d, x, op.kernel, op.stride, (0, *padding), ceil_mode, include,
                               None if divisor is None else int(divisor) * op.kernel[0])
    rw.note(LayerRecord.of(path, f"F.{kind}2d", f"F.{kind}3d", op))
    return out, clip


@handles("max_pool", F.max_pool2d)
def max_pool_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _pool_fn(rw, node, "max_pool")


@handles("avg_pool", F.avg_pool2d)
def avg_pool_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _pool_fn(rw, node, "avg_pool")


def _adaptive_fn(rw: Rewriter, node: fx.Node, kind: str, fn3d: Any) -> HandlerResult:
    x, clip = ncthw(rw, node)
    size = rw.value(arg(node, 1, "output_size"))
    size2 = pair(size) if not isinstance(size, (tuple, list)) or None not in size else tuple(size)
    path = node_path(node)
    op, _ = rw.inflate_op(OpSpec(kind, path, output_size=size2, role=rw.role(path)))
    out = rw.call_function(fn3d, x, op.output_size)
    return out, clip.with_(collapsed=clip.collapsed or op.output_size[0] == 1)


@handles("adaptive_avg_pool", F.adaptive_avg_pool2d)
def adaptive_avg_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _adaptive_fn(rw, node, "adaptive_avg_pool", F.adaptive_avg_pool3d)


@handles("adaptive_max_pool", F.adaptive_max_pool2d)
def adaptive_max_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _adaptive_fn(rw, node, "adaptive_max_pool", F.adaptive_max_pool3d)


# ----- 1D pools over tokens -----

def _single(value: Any) -> int:
    return int(value[0]) if isinstance(value, (tuple, list)) else int(value)


def _pool1d(rw: Rewriter, node: fx.Node, kind: str) -> HandlerResult:
    """nn.AvgPool1d / nn.MaxPool1d on (N, C, L): with time as its own axis, (N, C, T, L) is pooled
    as (N, C, T, 1, L) by a 3D pool of window (k_t, 1, k) (k_t = 1 unless the policy says): each
    frame's tokens are pooled among themselves, as NextViT's E-MHSA reduces its keys and values."""
    module = rw.submodule(node)
    x, clip = first_clip(rw, node)
    if clip.rank2d != 3:
        return rw.frame_wise(node, f"expected a (N, C, L) input, got {clip.rank2d}D")
    if getattr(module, "return_indices", False):
        return rw.frame_wise(node, "max pooling with return_indices")
    path = str(node.target)
    kernel = _single(module.kernel_size)
    stride = kernel if module.stride in (None, (), []) else _single(module.stride)
    spec = OpSpec(kind, path, (1, kernel), (1, stride), (0, _single(module.padding)),
                  (1, _single(getattr(module, "dilation", 1))), role=rw.role(path))
    op, _ = rw.inflate_op(spec)
    if get_rule(kind).temporal.pool == "max":
        pool: nn.Module = m3d.InflatedMaxPool3d(op.kernel, op.stride, op.padding, op.dilation, module.ceil_mode,
                                                op.time_pads, op.time_pad_mode)
    else:
        pool = m3d.InflatedAvgPool3d(op.kernel, op.stride, op.padding, module.ceil_mode, module.count_include_pad,
                                     None, op.time_pads, op.time_pad_mode)
    x, clip = rw.move_time(x, clip, 2)  # (N, C, T, L)
    path = rw.replace_module(node, pool, LayerRecord.of(path, type(module).__name__, type(pool).__name__, op))
    out = rw.call_module(path, rw.call_method("unsqueeze", x, 3))
    return rw.call_method("squeeze", out, 3), clip


@handles("avg_pool", nn.AvgPool1d)
def avg_pool1d(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _pool1d(rw, node, "avg_pool")


@handles("max_pool", nn.MaxPool1d)
def max_pool1d(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _pool1d(rw, node, "max_pool")
