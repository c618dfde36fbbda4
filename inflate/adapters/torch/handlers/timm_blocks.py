"""timm blocks kept whole by the tracer (a leaf: timm marks them untraceable, or their reshapes
fold space into the batch) that have a 3D form built from their parts:

- CSATv2's ``LearnableDct2d`` stem → :class:`LearnableDct3d`: the fixed block DCT per frame, its
  three 1×1 convs inflated as the stem's;
- MobileNetV5's ``MobileNetV5MultiScaleFusionAdapter`` → :class:`MultiScaleFusion3d`: the resizes in
  3D (time kept), its inner block and norm inflated by a nested conversion under the same policy.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn

from .. import modules as m3d
from ..layout import Clip
from ..registry import handles
from ..rewriter import HandlerResult, LayerRecord, Rewriter
from .conv import inflate_conv_module

__all__ = ["register_timm_blocks", "LearnableDct3d", "MultiScaleFusion3d"]


class LearnableDct3d(nn.Module):
    """CSATv2's DCT stem on a (B, 3, T, H, W) clip → (B, C_out, T', H/k, W/k).

    ``dct`` is the 2D stem with its three 1×1 convs taken out (identities): what is left (RGB to
    YCbCr, the k×k block DCT, zig-zag order, frequency normalisation) is a fixed transform of
    each frame, from buffers only, with no kernel to inflate, so it runs on the frames folded into
    the batch; ``conv_y``, ``conv_cb`` and ``conv_cr`` are the inflated 1×1 convs (the stem's time
    kernel and stride), applied to the (B, k², T, H/k, W/k) coefficients of each colour channel.
    """

    def __init__(self, dct: nn.Module, conv_y: nn.Module, conv_cb: nn.Module, conv_cr: nn.Module) -> None:
        super().__init__()
        self.dct = dct
        self.conv_y, self.conv_cb, self.conv_cr = conv_y, conv_cb, conv_cr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coefficients = m3d.unfold_frames(self.dct(m3d.fold_frames(x)), x.shape[0])  # (B, 3·k², T, h, w)
        y, cb, cr = coefficients.chunk(3, dim=1)
        return torch.cat([self.conv_y(y), self.conv_cb(cb), self.conv_cr(cr)], dim=1)


class MultiScaleFusion3d(nn.Module):
    """MobileNetV5's multi-scale fusion adapter on clips: (B, C_i, T, H_i, W_i) maps → (B, C_out, T, h, w).

    Each map smaller than the first is resized to the first's frame size (time kept: "nearest" or
    "trilinear" at time scale 1 leaves frames apart), the maps are joined on channels and go
    through ``ffn`` (the inflated inner block); the result is pooled (a (1, s_h, s_w) window) or
    resized to ``output_resolution`` as the 2D adapter does, then ``norm`` (inflated).
    """

    def __init__(self, ffn: nn.Module, norm: nn.Module, output_resolution: Sequence[int], mode: str) -> None:
        super().__init__()
        self.ffn, self.norm = ffn, norm
        self.output_resolution = (int(output_resolution[0]), int(output_resolution[1]))
        self.mode = mode

    def _resize(self, x: torch.Tensor, size: Sequence[int], mode: str) -> torch.Tensor:
        mode3d = {"bilinear": "trilinear", "linear": "trilinear"}.get(mode, mode)
        return F.interpolate(x, size=(x.shape[2], int(size[0]), int(size[1])), mode=mode3d)

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        high = inputs[0].shape[-2:]
        resized = [self._resize(x, high, self.mode) if x.shape[-2] < high[0] or x.shape[-1] < high[1] else x
                   for x in inputs]
        x = self.ffn(torch.cat(resized, dim=1))
        out_h, out_w = self.output_resolution
        if (high[0], high[1]) != (out_h, out_w):
            if high[0] % out_h or high[1] % out_w:
                x = self._resize(x, (out_h, out_w), "bilinear")
            else:
                window = (1, high[0] // out_h, high[1] // out_w)
                x = F.avg_pool3d(x, window, window)
        return self.norm(x)


def _nested(rw: Rewriter, prefix: str, module: nn.Module, input_size: tuple[int, int, int]) -> nn.Module:
    """``module`` inflated by a conversion of its own, under this conversion's policy as if its ops sat
    at ``prefix`` + their path (overrides and roles; its first conv is no stem of the model), its
    report lines added to this one's."""
    outer = rw.policy

    def as_placed(op: Any, proposed: Any) -> Any:
        path = f"{prefix}.{op.path}"
        return outer.time_for(dataclasses.replace(op, path=path, role=rw.role(path)))

    model3d, report = rw.nested(module, t=rw.t, policy=outer.with_(overrides=as_placed), strict=rw.strict,
                                    input_size=input_size, return_report=True)
    for record in report.layers:
        rw.note(dataclasses.replace(record, path=f"{prefix}.{record.path}"))
    return model3d


def register_timm_blocks() -> None:
    """Register the handlers of the blocks above (those the installed timm has)."""
    import importlib

    # by module path: ``timm.models.csatv2`` as an attribute is the model's entry-point function
    csatv2 = importlib.import_module("timm.models.csatv2")
    mobilenetv5 = importlib.import_module("timm.models.mobilenetv5")

    @handles("conv", csatv2.LearnableDct2d)
    def learnable_dct(rw: Rewriter, node: fx.Node) -> HandlerResult:
        module = rw.submodule(node)
        x, clip = rw.env[node.args[0]][0], rw.info(node.args[0])
        if not isinstance(clip, Clip) or clip.rank2d != 4 or clip.collapsed:
            return rw.frame_wise(node, "a DCT stem on other than a clip of images")
        path = str(node.target)
        role = rw.role(path)  # the three convs are parallel branches: all take the stem's time, or none
        convs = {name: inflate_conv_module(rw, f"{path}.{name}", getattr(module, name), role=role)
                 for name in ("conv_y", "conv_cb", "conv_cr")}
        dct = copy.deepcopy(module)
        for name in convs:
            setattr(dct, name, nn.Identity())
        stem = LearnableDct3d(dct, *(conv for conv, _ in convs.values()))
        op = convs["conv_y"][1]
        x, clip = rw.move_time(x, clip, 2)
        target = rw.replace_module(node, stem, LayerRecord.of(path, type(module).__name__, type(stem).__name__, op))
        return rw.call_module(target, x), clip

    @handles("conv", mobilenetv5.MobileNetV5MultiScaleFusionAdapter)
    def multi_scale_fusion(rw: Rewriter, node: fx.Node) -> HandlerResult:
        module = rw.submodule(node)
        inputs = node.args[0]
        if len(node.args) != 1 or node.kwargs or not isinstance(inputs, (list, tuple)) or not inputs:
            return rw.frame_wise(node, "a fusion adapter called with other than one list of maps")
        infos = [rw.info(n) if isinstance(n, fx.Node) else None for n in inputs]
        if any(not isinstance(i, Clip) or i.rank2d != 4 or i.collapsed for i in infos):
            return rw.frame_wise(node, "a fusion adapter on maps that do not all carry time")
        path = str(node.target)
        shapes = [rw.shape2d(n) for n in inputs]
        height, width = shapes[0][2], shapes[0][3]
        ffn = _nested(rw, f"{path}.ffn", module.ffn, (sum(s[1] for s in shapes), height, width))
        out_shape = rw.shape2d(node)
        norm = _nested(rw, f"{path}.norm", module.norm, (out_shape[1], out_shape[2], out_shape[3]))
        fusion = MultiScaleFusion3d(ffn, norm, module.output_resolution, module.interpolation_mode)
        values = [rw.move_time(rw.env[n][0], i, 2)[0] for n, i in zip(inputs, infos)]
        target = rw.replace_module(node, fusion, LayerRecord(path, type(module).__name__, type(fusion).__name__,
                                                             "per-frame", kind="conv"))
        return rw.call_module(target, values), Clip(2, 4)
