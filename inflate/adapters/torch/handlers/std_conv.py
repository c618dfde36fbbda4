"""Weight-standardised convolutions (rule ``std_conv``): timm's StdConv2d, StdConv2dSame,
ScaledStdConv2d and ScaledStdConv2dSame (NFNet, BiT ResNetV2, ViT hybrids) → StdConv3d.

Registered with timm's layer types (:mod:`.timm`) since the 2D modules are timm's; the
arithmetic (eps / k_t², scale / k_t) is the core rule's, in :mod:`inflate.rules.std_conv`.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from .. import modules as m3d
from ..rewriter import HandlerResult, LayerRecord, ModuleResult, Rewriter
from ._common import set_params, to_numpy
from .conv import _conv_spec

__all__ = ["StdConv3d", "std_conv_result"]


class StdConv3d(m3d.InflatedConv3d):
    """A 3D convolution whose kernel is weight-standardised in forward, per output channel over
    (C_in/g, k_t, k_h, k_w): ``gain · scale · (w − μ) / √(σ² + eps)``, as timm's StdConv2d
    (no gain) and ScaledStdConv2d (gain a (C_out, 1, 1, 1) parameter) over (C_in/g, k_h, k_w).

    ``eps`` and ``scale`` are the inflated ones (the 2D values over k_t² and k_t, see
    :mod:`inflate.rules.std_conv`). Input (B, C_in, T, H, W) → output (B, C_out, T', H', W');
    time padding and TF SAME spatial padding as :class:`~..modules.InflatedConv3d`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Sequence[int],
        stride: Sequence[int] = (1, 1, 1),
        padding: Sequence[int] | str = (0, 0),
        dilation: Sequence[int] = (1, 1, 1),
        groups: int = 1,
        bias: bool = True,
        time_pads: Sequence[int] = (0, 0),
        time_pad_mode: str = "replicate",
        eps: float = 1e-6,
        scale: float = 1.0,
        gain: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         time_pads, time_pad_mode, device=device, dtype=dtype)
        self.eps = float(eps)
        self.scale = float(scale)
        self.gain: Optional[nn.Parameter] = (
            nn.Parameter(torch.ones(out_channels, 1, 1, 1, device=device, dtype=dtype)) if gain else None)

    def standardized_weight(self) -> torch.Tensor:
        """The (C_out, C_in/g, k_t, k_h, k_w) kernel the convolution applies."""
        # F.batch_norm over (1, C_out, fan_in) as timm does: the same biased variance and rounding
        affine = (self.gain * self.scale).view(-1) if self.gain is not None else None
        weight = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None, weight=affine,
                              training=True, momentum=0.0, eps=self.eps).reshape_as(self.weight)
        return weight if self.gain is not None else weight * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.standardized_weight()
        if self._folds(x):
            frames = m3d.fold_frames(x)
            if self.same_padding:
                frames = m3d.pad_same_spatial(frames, self.kernel_size[1:], self.stride[1:], self.dilation[1:])
            y = F.conv2d(frames, weight.squeeze(2), self.bias, self.stride[1:], self.padding[1:],
                         self.dilation[1:], self.groups)
            return m3d.unfold_frames(y, x.shape[0])
        pads = m3d._resolve_time_pads(x, self.explicit_time_pads, self.kernel_size[0], self.stride[0],
                                      self.dilation[0])
        x = m3d.pad_time(x, pads, self.time_pad_mode)
        if self.same_padding:
            x = m3d.pad_same_spatial(x, self.kernel_size[1:], self.stride[1:], self.dilation[1:])
        return self._conv_forward(x, weight, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", eps={self.eps:.3g}, scale={self.scale:.4g}, gain={self.gain is not None}"


def std_conv_result(rw: Rewriter, node: fx.Node, same: bool = False) -> HandlerResult | ModuleResult:
    """A weight-standardised 2D conv node (``same``: TF SAME padding at run time) → StdConv3d."""
    module = rw.submodule(node)
    if module.padding_mode != "zeros":
        return rw.frame_wise(node, f"padding_mode={module.padding_mode!r} has no inflation rule")
    path = str(node.target)
    weights: dict[str, Any] = {"weight": to_numpy(module.weight), "eps": np.float64(module.eps)}
    gain = getattr(module, "gain", None)
    if gain is not None:
        weights["gain"] = to_numpy(gain)
        weights["scale"] = np.float64(module.scale)
    if module.bias is not None:
        weights["bias"] = to_numpy(module.bias)
    op, weights3d = rw.inflate_op(_conv_spec(rw, path, module, same, "std_conv"), weights)
    eps, scale = float(weights3d.pop("eps")), float(weights3d.pop("scale"))
    conv3d = StdConv3d(
        module.in_channels, module.out_channels, op.kernel, op.stride, op.padding, op.dilation, op.groups,
        module.bias is not None, op.time_pads, op.time_pad_mode, eps=eps, scale=scale, gain=gain is not None,
        device="meta",
    )
    set_params(conv3d, weights3d, module)
    return ModuleResult(conv3d, LayerRecord.of(path, type(module).__name__, type(conv3d).__name__, op))
