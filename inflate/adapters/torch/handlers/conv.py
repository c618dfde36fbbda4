"""Convolutions (rules ``conv``, ``conv_transpose``, ``filter``): nn.Conv2d → InflatedConv3d,
nn.ConvTranspose2d → InflatedConvTranspose3d, kernels inflated by the core rule on numpy;
F.conv2d with a kernel that carries no time → F.conv3d, its kernel inflated at run time."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn

from ....core.spec import InflatedOp, OpSpec
from ....core.weights import center_index
from .. import modules as m3d
from ..layout import Clip
from ..registry import handles
from ..rewriter import HandlerResult, LayerRecord, ModuleResult, Rewriter, node_path
from ._common import arg, pair, set_params, to_numpy

__all__ = ["inflate_conv_module", "conv_result", "InflatedConvTranspose3d", "inflate_kernel_tensor",
           "functional_conv3d"]


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
                        kind: str = "conv", role: Optional[str] = None) -> tuple[nn.Module, InflatedOp]:
    """Build the :class:`~..modules.InflatedConv3d` for a 2D convolution at ``path`` with the
    rule ``kind`` ("conv", or "patch_embed" for a patch embedding's tubelets); ``role`` overrides
    the one its path gives (the convs of a stem module kept whole are all the stem's)."""
    spec = _conv_spec(rw, path, conv, same, kind)
    if role is not None:
        spec = replace(spec, role=role)  # type: ignore[arg-type]
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




# ----- functional convolution -----

def inflate_kernel_tensor(weight: torch.Tensor, time_kernel: int, init: str) -> torch.Tensor:
    """A (O, I/g, kh, kw) kernel → (O, I/g, k_t, kh, kw), as :func:`inflate.core.weights.inflate_kernel`
    does on numpy ("tile": repeated and divided by k_t; "center": the middle slice, zeros elsewhere),
    on a tensor at run time, so the kernel follows its buffer (device, dtype, later changes)."""
    if time_kernel == 1:
        return weight.unsqueeze(2)
    if init == "center":
        kernel = weight.new_zeros(weight.shape[0], weight.shape[1], time_kernel, *weight.shape[2:])
        kernel[:, :, center_index(time_kernel)] = weight
        return kernel
    return (weight / time_kernel).unsqueeze(2).expand(-1, -1, time_kernel, -1, -1)


def functional_conv3d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], kernel_t: int,
                      stride: Sequence[int], padding: Sequence[int] | str, dilation: Sequence[int], groups: int,
                      init: str, time_pads: Sequence[int] | str, time_pad_mode: str) -> torch.Tensor:
    """F.conv2d's 3D form on a (B, C, T, H, W) clip: the 2D ``weight`` inflated to ``kernel_t``
    frames (:func:`inflate_kernel_tensor`), time padded with ``time_pads`` (edge frames or zeros),
    space as the 2D call (``padding`` (h, w) or "same"). Output (B, C_out, T', H', W')."""
    if m3d._time_one(kernel_t, stride[0], time_pads):  # each frame as in 2D: the 2D conv on folded frames
        frames = m3d.fold_frames(x)
        if padding == "same":
            frames = m3d.pad_same_spatial(frames, weight.shape[2:], stride[1:], dilation[1:])
        y = F.conv2d(frames, weight, bias, tuple(stride[1:]), 0 if padding == "same" else tuple(padding),
                     tuple(dilation[1:]), groups)
        return m3d.unfold_frames(y, x.shape[0])
    pads = m3d._resolve_time_pads(x, time_pads, kernel_t, stride[0], dilation[0])
    x = m3d.pad_time(x, pads, time_pad_mode)
    if padding == "same":
        x = m3d.pad_same_spatial(x, weight.shape[2:], stride[1:], dilation[1:])
    spatial = (0, 0) if padding == "same" else tuple(padding)
    return F.conv3d(x, inflate_kernel_tensor(weight, kernel_t, init), bias, tuple(stride), (0, *spatial),
                    tuple(dilation), groups)


def _is_parameter(model: nn.Module, target: str) -> bool:
    owner_path, _, name = target.rpartition(".")
    try:
        owner = model.get_submodule(owner_path) if owner_path else model
    except AttributeError:
        return False
    return isinstance(getattr(owner, name, None), nn.Parameter)


def _learnable(rw: Rewriter, node: fx.Node) -> bool:
    """Whether a value of the 2D graph is computed from a model parameter, not from buffers and constants only."""
    seen: set[fx.Node] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        if current.op == "get_attr" and _is_parameter(rw.model, str(current.target)):
            return True
        stack.extend(current.all_input_nodes)
    return False


@handles("filter", F.conv2d, torch.conv2d)
def conv2d_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    """F.conv2d(x, weight, ...) with a weight that carries no time → F.conv3d with the weight
    inflated at run time. A fixed kernel (a buffer: timm's BlurPool2d anti-aliasing in TResNet,
    the ResNet-D/ECA "aa" layers) takes the ``filter`` rule: spatial unless an override says. A kernel
    computed from parameters takes the ``conv`` rule (the policy's time kernel); its time slices
    stay tied, being the one 2D parameter. A kernel that carries time (dynamic convolutions) runs
    frame by frame."""
    weight, bias = arg(node, 1, "weight"), arg(node, 2, "bias")
    if not isinstance(weight, fx.Node) or rw.info(weight) is not None or \
            (isinstance(bias, fx.Node) and rw.info(bias) is not None):
        return rw.frame_wise(node, "a kernel or bias computed from the clip")
    first = rw.info(node.args[0])
    if not isinstance(first, Clip) or first.rank2d != 4:
        return rw.frame_wise(node, "a convolution of other than a 4D map")
    x, _ = rw.move_time(rw.env[node.args[0]][0], first, 2)
    padding: Any = arg(node, 4, "padding", 0)
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            return rw.frame_wise(node, f"padding {padding!r}")
        padding = "same" if padding == "same" else (0, 0)
    else:
        padding = pair(padding)
    shape = rw.shape2d(weight)
    path = node_path(node)
    kind = "conv" if _learnable(rw, weight) else "filter"
    spec = OpSpec(kind, path, (int(shape[2]), int(shape[3])), pair(arg(node, 3, "stride", 1)), padding,
                  pair(arg(node, 5, "dilation", 1)), int(arg(node, 6, "groups", 1)), role=rw.role(path))
    op, _ = rw.inflate_op(spec)
    out = rw.call_function(functional_conv3d, x, rw.value(weight), rw.value(bias), op.kernel[0], op.stride,
                           op.padding, op.dilation, op.groups, op.time.init, op.time_pads, op.time_pad_mode)
    rw.note(LayerRecord.of(path, "F.conv2d", "F.conv3d", op))
    return out, first.with_(td=2)
