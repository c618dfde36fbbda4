"""Convolutions (rules ``conv``, ``conv_transpose``): nn.Conv2d → InflatedConv3d,
nn.ConvTranspose2d → InflatedConvTranspose3d, kernels inflated by the core rule on numpy."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import fx, nn

from ....core.spec import InflatedOp, OpSpec
from .. import modules as m3d
from ..registry import handles
from ..rewriter import HandlerResult, LayerRecord, ModuleResult, Rewriter
from ._common import set_params, to_numpy

__all__ = ["inflate_conv_module", "conv_result", "InflatedConvTranspose3d"]


def _conv_spec(rw: Rewriter, path: str, conv: nn.Module, same: bool, kind: str) -> OpSpec:
    padding: Any = conv.padding
    if isinstance(padding, str):  # torch's "same" (stride 1) pads as TF does; "valid" is none
        padding = "same" if padding == "same" else (0, 0)
    return OpSpec(
        kind, path, tuple(conv.kernel_size), tuple(conv.stride),
        "same" if same or padding == "same" else tuple(padding),
        tuple(conv.dilation), conv.groups, role=rw.role(path),
    )


def _weights(conv: nn.Module) -> dict[str, Any]:
    weights = {"weight": to_numpy(conv.weight)}
    if conv.bias is not None:
        weights["bias"] = to_numpy(conv.bias)
    return weights


def inflate_conv_module(rw: Rewriter, path: str, conv: nn.Conv2d, same: bool = False,
                        kind: str = "conv") -> tuple[nn.Module, InflatedOp]:
    """Build the :class:`~..modules.InflatedConv3d` for a 2D convolution at ``path`` with the
    rule ``kind`` ("conv", or "patch_embed" for a patch embedding's tubelets)."""
    spec = _conv_spec(rw, path, conv, same, kind)
    op, weights3d = rw.inflate_op(spec, _weights(conv))
    conv3d = m3d.InflatedConv3d(
        conv.in_channels, conv.out_channels, op.kernel, op.stride, op.padding, op.dilation, op.groups,
        conv.bias is not None, op.time_pads, op.time_pad_mode, device="meta",
    )
    set_params(conv3d, weights3d, conv)
    return conv3d, op


def conv_result(rw: Rewriter, node: fx.Node, same: bool = False) -> ModuleResult:
    """A 2D convolution node (``same``: TF SAME padding at run time, timm's Conv2dSame) → its 3D form."""
    module = rw.submodule(node)
    path = str(node.target)
    conv3d, op = inflate_conv_module(rw, path, module, same=same)
    return ModuleResult(conv3d, LayerRecord.of(path, type(module).__name__, type(conv3d).__name__, op))


@handles("conv", nn.Conv2d)
def conv(rw: Rewriter, node: fx.Node) -> HandlerResult | ModuleResult:
    module = rw.submodule(node)
    if module.padding_mode != "zeros":
        return rw.frame_wise(node, f"padding_mode={module.padding_mode!r} has no inflation rule")
    return conv_result(rw, node)


# ----- transposed convolution -----

class InflatedConvTranspose3d(nn.ConvTranspose3d):
    """A 3D transposed convolution at time stride 1, time padded separately (edge frames or zeros).

    Input (B, C_in, T, H, W) → output (B, C_out, T, H', W'): the clip is padded by
    ``time_pads`` frames, and the op's own time padding of d·(k_t − 1) trims the output back,
    so every output frame is a full window of input frames (a convolution with the
    time-flipped kernel).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Sequence[int],
        stride: Sequence[int],
        padding: Sequence[int],
        output_padding: Sequence[int],
        groups: int = 1,
        bias: bool = True,
        dilation: Sequence[int] = (1, 1, 1),
        time_pads: Sequence[int] = (0, 0),
        time_pad_mode: str = "replicate",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.time_pads = (int(time_pads[0]), int(time_pads[1]))
        self.time_pad_mode = time_pad_mode
        trim = int(dilation[0]) * (int(kernel_size[0]) - 1)
        super().__init__(
            in_channels, out_channels, tuple(kernel_size), tuple(stride), (trim, *padding), (0, *output_padding),
            groups, bias, tuple(dilation), device=device, dtype=dtype,
        )

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        return super().forward(m3d.pad_time(x, self.time_pads, self.time_pad_mode), output_size)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", time_pads={self.time_pads}, time_pad_mode={self.time_pad_mode!r}"


@handles("conv_transpose", nn.ConvTranspose2d)
def conv_transpose(rw: Rewriter, node: fx.Node) -> HandlerResult | ModuleResult:
    module = rw.submodule(node)
    if module.padding_mode != "zeros" or len(node.args) > 1 or node.kwargs:
        return rw.frame_wise(node, "a transposed conv with a padding mode or an output_size argument")
    path = str(node.target)
    op, weights3d = rw.inflate_op(_conv_spec(rw, path, module, False, "conv_transpose"), _weights(module))
    conv3d = InflatedConvTranspose3d(
        module.in_channels, module.out_channels, op.kernel, op.stride, op.padding, module.output_padding,
        op.groups, module.bias is not None, op.dilation, op.time_pads, op.time_pad_mode, device="meta",
    )
    set_params(conv3d, weights3d, module)
    return ModuleResult(conv3d, LayerRecord.of(path, type(module).__name__, type(conv3d).__name__, op))


