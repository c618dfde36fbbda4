"""Resampling and padding (rules ``upsample``, ``pad``), as modules and as functions: space is
resampled or padded as in 2D; the rule gives time its scale (1) and its padding (none)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import fx, nn

from ....core.spec import OpSpec
from .. import layout
from .. import modules as m3d
from ..registry import handles
from ..rewriter import HandlerResult, LayerRecord, ModuleResult, Rewriter, node_path
from ._common import arg, first_clip
from .pool import ncthw

_MODES_3D = {"nearest": "nearest", "bilinear": "trilinear", "nearest-exact": "nearest-exact"}


def _pair_or_none(value: Any) -> tuple | None:
    return None if value is None else ((value, value) if not isinstance(value, (tuple, list)) else tuple(value))


@handles("upsample", nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)
def upsample(rw: Rewriter, node: fx.Node) -> HandlerResult | ModuleResult:
    module = rw.submodule(node)
    if module.mode not in _MODES_3D:
        return rw.frame_wise(node, f"upsampling mode {module.mode!r} has no 3D form")
    path = str(node.target)
    scale = _pair_or_none(module.scale_factor)
    spec = OpSpec("upsample", path, role=rw.role(path), output_size=_pair_or_none(module.size),
                  scale=None if scale is None else (float(scale[0]), float(scale[1])))
    op, _ = rw.inflate_op(spec)
    # Upsample3d keeps the clip length: the rule's time scale is 1 (op.scale[0]).
    up = m3d.Upsample3d(op.output_size, None if op.scale is None else op.scale[1:], module.mode, module.align_corners)
    return ModuleResult(up, LayerRecord(path, type(module).__name__, type(up).__name__, "per-frame", kind=op.kind))


def _pad_spec(rw: Rewriter, path: str) -> OpSpec:
    return OpSpec("pad", path, role=rw.role(path))


@handles("pad", nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d)
def pad(rw: Rewriter, node: fx.Node) -> ModuleResult:
    module = rw.submodule(node)
    path = str(node.target)
    op, _ = rw.inflate_op(_pad_spec(rw, path))
    padding = tuple(module.padding) + tuple(op.time_pads)  # (left, right, top, bottom, front, back)
    if isinstance(module, (nn.ZeroPad2d, nn.ConstantPad2d)):
        pad3d: nn.Module = nn.ConstantPad3d(padding, getattr(module, "value", 0.0))
    elif isinstance(module, nn.ReflectionPad2d):
        pad3d = nn.ReflectionPad3d(padding)
    else:
        pad3d = nn.ReplicationPad3d(padding)
    return ModuleResult(pad3d, LayerRecord(path, type(module).__name__, type(pad3d).__name__, "per-frame",
                                           kind=op.kind))


@handles("pad", F.pad)
def pad_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = first_clip(rw, node)
    pads = list(rw.value(arg(node, 1, "pad")))
    mode = arg(node, 2, "mode", "constant")
    value = arg(node, 3, "value", None)
    covered = len(pads) // 2
    op, _ = rw.inflate_op(_pad_spec(rw, node_path(node)))  # time gets op.time_pads: none
    if clip.td > clip.rank2d - covered:  # time must stay out of the padded trailing axes
        x, clip = rw.move_time(x, clip, 1)
    if mode != "constant":
        if not (clip.rank2d == 4 and covered == 2):
            return rw.frame_wise(node, f"{mode} padding of other than the last two axes of a 4D map")
        x, clip = rw.move_time(x, clip, 2)
        pads = pads + list(op.time_pads)  # non-constant modes pad (T, H, W) of a 5D input
    kwargs = {"mode": mode} if value is None else {"mode": mode, "value": value}
    return rw.call_function(F.pad, x, tuple(pads), **kwargs), clip


@handles("upsample", F.interpolate)
def interpolate_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = ncthw(rw, node)
    size = rw.value(arg(node, 1, "size"))
    scale = rw.value(arg(node, 2, "scale_factor"))
    mode = arg(node, 3, "mode", "nearest")
    align = arg(node, 4, "align_corners")
    mode3d = _MODES_3D.get(mode)
    if mode3d is None:
        return rw.frame_wise(node, f"mode {mode!r} has no 3D form")
    if size is not None:
        target = rw.call_function(layout.insert_time, size if not isinstance(size, int) else (size, size), 0,
                                  rw.frames(x, clip))
        return rw.call_function(F.interpolate, x, size=target, mode=mode3d, align_corners=align), clip
    sh, sw = (scale, scale) if not isinstance(scale, (tuple, list)) else scale
    path = node_path(node)
    op, _ = rw.inflate_op(OpSpec("upsample", path, role=rw.role(path), scale=(float(sh), float(sw))))
    return rw.call_function(F.interpolate, x, scale_factor=op.scale, mode=mode3d, align_corners=align), clip
