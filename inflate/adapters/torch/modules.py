"""The 3D modules an inflated model is built from.

Each keeps the attribute names of its 2D counterpart (``weight``, ``bias``, ``act``...)
so state-dict keys stay recognisable, and pads time separately from space: the time
axis is padded with ``replicate`` (edge frames) or ``zeros``, space as the 2D op did.

A layer with no temporal extent (time kernel 1, time stride 1, no time padding) does the
2D layer's work on every frame, so it runs as the 2D op on frames folded into the batch
(:func:`fold_frames`), keeping its 5D weights. Folding is a view when the clip's memory
runs frame after frame (channels_last_3d, or the (B, T, C, H, W) order that a folded op
leaves behind), so a run of time-1 layers stays folded until a temporal layer; on a
contiguous clip it costs a copy, which only a spatial convolution repays. Exports (ONNX,
``torch.export``, ``torch.jit.trace``) see the 3D ops, as before.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...core.geometry import NEG_INF, pad_mode_for, pad_value, tf_same_pads
from .space_time import JointAttention
from .timm_joint import JOINT_FORMS

__all__ = [
    "frame_folding",
    "frame_major",
    "fold_frames",
    "unfold_frames",
    "pad_time",
    "pad_same_spatial",
    "InflatedConv3d",
    "InflatedMaxPool3d",
    "InflatedAvgPool3d",
    "avg_pool3d",
    "InflatedBatchNorm3d",
    "BatchNormAct3d",
    "Upsample3d",
    "ConvMlp3d",
    "PatchEmbed3d",
    "SpaceTimeAttention",
]


# ----- time-1 layers on folded frames -----

_folding = True


@contextlib.contextmanager
def frame_folding(enabled: bool) -> Iterator[None]:
    """Within the block, run time-1 layers as 2D ops on folded frames (``True``, the default)
    or as the 3D ops they are (``False``). Both compute the same function; the kernels differ,
    so results may differ by rounding. Not thread-local, as ``torch.backends`` flags."""
    global _folding
    previous, _folding = _folding, bool(enabled)
    try:
        yield
    finally:
        _folding = previous


_is_exporting = getattr(torch.compiler, "is_exporting", None)


def _may_fold(x: torch.Tensor) -> bool:
    """Folding is on, ``x`` is a (B, C, T, H, W) clip, and no export is traced: exported
    graphs keep the 3D ops, so their files and runtimes are as before."""
    if not _folding or x.dim() != 5 or torch.jit.is_tracing():
        return False
    return not (_is_exporting is not None and _is_exporting())


def frame_major(x: torch.Tensor) -> bool:
    """Whether (B, C, T, H, W) ``x`` folds into a dense (B·T, C, H, W) tensor as a view: its
    memory in channels_last_3d order, or frame after frame ((B, T, C, H, W) order)."""
    return x.transpose(1, 2).is_contiguous() or x.is_contiguous(memory_format=torch.channels_last_3d)


def fold_frames(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) → (B·T, C, H, W), frames of a clip consecutive: a view where
    :func:`frame_major`, a copy otherwise. A channels_last_3d clip gives channels_last frames."""
    return x.transpose(1, 2).flatten(0, 1)


def unfold_frames(y: torch.Tensor, batch: int) -> torch.Tensor:
    """(B·T, C, H, W) → (B, C, T, H, W), always a view, undoing :func:`fold_frames`: contiguous
    frames give a clip in (B, T, C, H, W) memory order, channels_last frames a channels_last_3d one."""
    return y.view(batch, -1, *y.shape[1:]).transpose(1, 2)  # Tensor.unflatten costs 5 µs of Python a call


def _time_one(kernel: int, stride: int, pads: Sequence[int] | str, in_op: int = 0) -> bool:
    """No temporal extent: kernel 1, stride 1, no time padding (SAME pads nothing then)."""
    return kernel == 1 and stride == 1 and in_op == 0 and (pads == "same" or not any(pads))


def pad_time(x: torch.Tensor, pads: Sequence[int], mode: str) -> torch.Tensor:
    """Pad axis 2 of a (B, C, T, H, W) tensor by (front, back) frames (mode replicate, zeros or neg_inf)."""
    front, back = pads
    if not isinstance(front, torch.Tensor) and front == 0 and back == 0:
        return x
    if mode == "replicate":
        return F.pad(x, (0, 0, 0, 0, front, back), mode="replicate")
    return F.pad(x, (0, 0, 0, 0, front, back), mode="constant", value=pad_value(mode))


def _resolve_time_pads(x: torch.Tensor, pads: Sequence[int] | str, kernel: int, stride: int, dilation: int) -> Sequence[int]:
    if pads == "same":
        return tf_same_pads(x.shape[2], kernel, stride, dilation)
    return pads  # type: ignore[return-value]


def _same_pads(size: int | torch.Tensor, kernel: int, stride: int, dilation: int) -> tuple:
    """TF "SAME" pads (front, back) for one axis: :func:`inflate.core.geometry.tf_same_pads`, or the
    same arithmetic on tensors where TorchScript tracing (ONNX export) hands sizes over as tensors:
    kept in the graph, or the example size's pads would be frozen and other sizes padded wrong."""
    if isinstance(size, torch.Tensor):
        total = torch.clamp(((size + stride - 1) // stride - 1) * stride + (kernel - 1) * dilation + 1 - size, min=0)
        return total // 2, total - total // 2
    return tf_same_pads(size, kernel, stride, dilation)


def pad_same_spatial(
    x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int], value: float = 0.0
) -> torch.Tensor:
    """TensorFlow "SAME" padding of the last two axes, computed from the input size."""
    top, bottom = _same_pads(x.shape[-2], kernel[0], stride[0], dilation[0])
    left, right = _same_pads(x.shape[-1], kernel[1], stride[1], dilation[1])
    if isinstance(top, torch.Tensor) or top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom), value=value)
    return x


def _time_settings(time_pads: Sequence[int] | str, time_pad_mode: str) -> tuple[tuple[int, int] | str, bool]:
    """The time padding, and whether it can be left to the op itself (zeros, symmetric, static)."""
    if time_pads == "same":
        return "same", False
    front, back = int(time_pads[0]), int(time_pads[1])
    return (front, back), time_pad_mode == "zeros" and front == back


def _check_window_fits(x: torch.Tensor, kernel: Sequence[int], padding: Sequence[int], what: str) -> None:
    """A clear error where a VALID window is larger than its (padded) input, e.g. a clip too short."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return
    sizes = [x.shape[2 + i] + 2 * int(padding[i]) for i in range(3)]
    if any(size < k for size, k in zip(sizes, kernel)):
        from ...core.errors import ShapeMismatchError

        raise ShapeMismatchError(
            f"{what} with a {tuple(kernel)} window on a (T, H, W) = {tuple(x.shape[2:])} input", tuple(kernel),
            tuple(x.shape[2:]), "the clip is too short or too small for this model: give more frames or a larger crop",
        )


def _pool_output_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output length (the last window must start inside the input or its
    front padding under ``ceil_mode``)."""
    out = (size + 2 * padding - kernel + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def avg_pool3d(
    x: torch.Tensor,
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int] = (0, 0, 0),
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> torch.Tensor:
    """``F.avg_pool3d`` that accepts every input ``F.avg_pool2d`` accepts, with the same values.

    (B, C, T, H, W) → (B, C, T', H', W'). ``F.avg_pool3d`` refuses an input smaller than the
    window before padding (``input image (T: 4 H: 2 W: 2) smaller than kernel size``) where
    ``F.avg_pool2d`` pools the padded input: inception_v3/v4 at 128² end on 2×2 maps under a
    3×3 padded pool. There the padding is applied explicitly and the op pools the padded
    input: windows and divisors are the padded op's (``count_include_pad=False`` divides by
    the pooled count of real elements instead), and under ``ceil_mode`` the extra last
    window the unpadded op would not start is cut off.
    """
    kernel, stride, padding = tuple(kernel), tuple(stride), tuple(padding)
    if all(x.shape[2 + i] >= kernel[i] for i in range(3)):
        return F.avg_pool3d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    pads = (padding[2], padding[2], padding[1], padding[1], padding[0], padding[0])
    y = F.avg_pool3d(F.pad(x, pads), kernel, stride, 0, ceil_mode, True, divisor_override)
    if divisor_override is None and not count_include_pad and any(padding):
        ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
        y = y / F.avg_pool3d(F.pad(ones, pads), kernel, stride, 0, ceil_mode, True)
    if ceil_mode:
        sizes = [_pool_output_size(x.shape[2 + i], kernel[i], stride[i], padding[i], True) for i in range(3)]
        y = y[:, :, :sizes[0], :sizes[1], :sizes[2]]
    return y


class InflatedConv3d(nn.Conv3d):
    """A 3D convolution with separate temporal padding and optional TF "SAME" spatial padding.

    Input (B, C_in, T, H, W) → output (B, C_out, T', H', W').
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
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.time_pads, symmetric_zeros = _time_settings(time_pads, time_pad_mode)
        self.time_pad_mode = time_pad_mode
        self.same_padding = padding == "same"
        spatial = (0, 0) if self.same_padding else tuple(int(p) for p in padding)
        time_in_op = self.time_pads[0] if symmetric_zeros else 0  # type: ignore[index]
        self.explicit_time_pads = (0, 0) if symmetric_zeros else self.time_pads
        super().__init__(
            in_channels, out_channels, tuple(kernel_size), tuple(stride), (time_in_op, *spatial),
            tuple(dilation), groups, bias, device=device, dtype=dtype,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._folds(x):
            frames = fold_frames(x)
            if self.same_padding:
                frames = pad_same_spatial(frames, self.kernel_size[1:], self.stride[1:], self.dilation[1:])
            y = F.conv2d(frames, self.weight.squeeze(2), self.bias, self.stride[1:], self.padding[1:],
                         self.dilation[1:], self.groups)
            return unfold_frames(y, x.shape[0])
        if self._depthwise_by_forward_convs(x):
            return self._forward_depthwise(x)
        if self._depthwise_taps(x):
            y = self._forward_taps(x)
            if y is not None:
                return y
        if self._stacks_time(x):
            y = self._forward_stacked(x)
            if y is not None:
                return y
        return super().forward(self._pad_outside_op(x))

    def _pad_outside_op(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` padded as the op's own padding cannot: time pads other than symmetric zeros, and
        TF "SAME" spatial padding."""
        pads = _resolve_time_pads(x, self.explicit_time_pads, self.kernel_size[0], self.stride[0], self.dilation[0])
        x = pad_time(x, pads, self.time_pad_mode)
        if self.same_padding:
            x = pad_same_spatial(x, self.kernel_size[1:], self.stride[1:], self.dilation[1:])
        return x

    def _depthwise_by_forward_convs(self, x: torch.Tensor) -> bool:
        """A depthwise convolution with a time kernel and stride 1, on a device where its backward
        runs as forward convolutions (:class:`_DepthwiseConv3d`, :func:`depthwise_backward_as_forward`)
        while autograd records; not under autocast (the backward would see the autocast dtypes)."""
        return (self.groups == self.in_channels == self.out_channels and self.kernel_size[0] > 1
                and all(s == 1 for s in self.stride) and self.padding_mode == "zeros" and _may_fold(x)
                and torch.is_grad_enabled() and depthwise_backward_as_forward(x.device)
                and x.dtype == self.weight.dtype and not torch.is_autocast_enabled(x.device.type)
                and all(0 <= p <= d * (k - 1) for p, d, k in zip(self.padding, self.dilation, self.kernel_size)))

    def _forward_depthwise(self, x: torch.Tensor) -> torch.Tensor:
        """The stride-1 depthwise convolution as :class:`_DepthwiseConv3d`: conv3d forward, its
        gradients as two more forward convolutions. (B, C, T, H, W) → (B, C, T', H', W')."""
        y = _DepthwiseConv3d.apply(self._pad_outside_op(x), self.weight, tuple(self.padding), tuple(self.dilation))
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1, 1)

    def _own_time_pads(self, x: torch.Tensor) -> tuple[Sequence[int], str]:
        """(front, back) time pads and their mode, for the forms that pad time themselves (time
        taps, stacked frames): the op's own symmetric zero padding, or the explicit pads (SAME
        resolved for ``x``)."""
        if self.explicit_time_pads == (0, 0):  # symmetric zero padding, left to the op
            return (self.padding[0], self.padding[0]), "zeros"
        pads = _resolve_time_pads(x, self.explicit_time_pads, self.kernel_size[0], self.stride[0], self.dilation[0])
        return pads, self.time_pad_mode

    def _depthwise_taps(self, x: torch.Tensor) -> bool:
        """A depthwise convolution with a time kernel (ConvNeXt's k×k×k), time stride 1, on a clip that
        folds as a view: cuDNN and oneDNN run such 3D depthwise convolutions several times slower than
        the same work as 2D depthwise convolutions, one per time tap (:meth:`_forward_taps`)."""
        return (self.groups == self.in_channels == self.out_channels and self.kernel_size[0] > 1
                and self.stride[0] == 1 and self.padding_mode == "zeros" and _may_fold(x) and frame_major(x)
                and depthwise_taps_enabled(x.device))

    def _forward_taps(self, x: torch.Tensor) -> torch.Tensor | None:
        """y[t] = Σ_dt conv2d(x[t + dt·d − front], w[:, :, dt]): each tap a 2D depthwise convolution
        over all frames folded, shifted in time; frames before the first (after the last) are the
        first (last) frame under replicate padding, zeros otherwise. (B, C, T, H, W) → (B, C, T', H', W');
        None where the clip is shorter than the kernel."""
        batch, frames = x.shape[0], x.shape[2]
        kernel, dilation = self.kernel_size[0], self.dilation[0]
        (front, back), mode = self._own_time_pads(x)
        out_frames = frames + front + back - dilation * (kernel - 1)
        if out_frames < 1:
            return None  # a clip too short for the kernel: conv3d gives the error
        folded = fold_frames(x)
        if self.same_padding:
            folded = pad_same_spatial(folded, self.kernel_size[1:], self.stride[1:], self.dilation[1:])
        y = None
        for tap in range(kernel):
            shift = tap * dilation - front  # output frame t reads input frame t + shift
            lo = min(max(0, -shift), out_frames)  # output frames [lo, hi) read real input frames
            hi = max(min(out_frames, frames - shift), lo)
            if hi == lo and mode != "replicate":
                continue  # this tap reads only padding zeros
            out = unfold_frames(F.conv2d(folded, self.weight[:, :, tap], None, self.stride[1:], self.padding[1:],
                                         self.dilation[1:], self.groups), batch)
            part = out[:, :, lo + shift:hi + shift]
            if lo > 0 or hi < out_frames:
                part = _edge_frames(out, part, lo, out_frames - hi, mode)
            y = part if y is None else y + part
        if y is None:  # every tap in the zero padding
            y = unfold_frames(F.conv2d(folded, self.weight[:, :, 0] * 0, None, self.stride[1:], self.padding[1:],
                                       self.dilation[1:], self.groups), batch)[:, :, :1].expand(-1, -1, out_frames,
                                                                                                 -1, -1)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1, 1)

    def _stacks_time(self, x: torch.Tensor) -> bool:
        """A dense convolution with a time kernel (no time dilation, no groups) on a device where one
        2D convolution over the k_t frames of each window stacked on the channels beats conv3d
        (:func:`time_stacking_enabled`). Grouped ones keep conv3d: stacked, a depthwise 7×7×7
        (ConvNeXt) ran 5× slower than oneDNN's 3D depthwise kernel."""
        return (self.kernel_size[0] > 1 and self.dilation[0] == 1 and self.groups == 1
                and self.padding_mode == "zeros" and _may_fold(x) and time_stacking_enabled(x, self.stride[1:]))

    def _forward_stacked(self, x: torch.Tensor) -> torch.Tensor | None:
        """y[t] = conv2d(x[s·t − front … s·t − front + k_t − 1] stacked on the channels, the kernel's
        (C_in, k_t) axes flattened alike): the 3D convolution as one 2D convolution over B·T' frames,
        each window's frames padded as conv3d pads them. (B, C, T, H, W) → (B, C', T', H', W'), frame
        after frame in memory; None where the clip is shorter than the kernel."""
        x = pad_time(x, *self._own_time_pads(x))
        kernel, stride = self.kernel_size[0], self.stride[0]
        out_frames = (x.shape[2] - kernel) // stride + 1
        if out_frames < 1:
            return None  # a clip too short for the kernel: conv3d gives the error
        last = stride * (out_frames - 1) + 1
        windows = torch.stack([x[:, :, tap:tap + last:stride] for tap in range(kernel)], dim=2)  # (B, C, k_t, T', H, W)
        frames = windows.permute(0, 3, 1, 2, 4, 5).flatten(2, 3).flatten(0, 1)  # (B·T', C·k_t, H, W)
        if self.same_padding:
            frames = pad_same_spatial(frames, self.kernel_size[1:], self.stride[1:], self.dilation[1:])
        y = F.conv2d(frames, self.weight.flatten(1, 2), self.bias, self.stride[1:], self.padding[1:],
                     self.dilation[1:], self.groups)
        return unfold_frames(y, windows.shape[0])

    def _folds(self, x: torch.Tensor) -> bool:
        """Run as conv2d on folded frames: no temporal extent, and the fold is a view or, for a
        spatial kernel, worth its copy (a 1×1 conv is a plain matrix product either way)."""
        if not (_time_one(self.kernel_size[0], self.stride[0], self.explicit_time_pads, self.padding[0])
                and self.padding_mode == "zeros" and _may_fold(x)):
            return False
        return frame_major(x) or tuple(self.kernel_size[1:]) != (1, 1)

    def extra_repr(self) -> str:
        extra = f", time_pads={self.time_pads}, time_pad_mode={self.time_pad_mode!r}"
        return super().extra_repr() + extra + (", padding='same'" if self.same_padding else "")


# (device type, autograd recording) → taps or not, where _DepthwiseConv3d is not taken (CUDA;
# on the CPU spatial strides and autocast). Measured on the CPU (oneDNN, 2 threads):
# convnext_tiny under the I3D policy at 1×8×112² ran its forward at 1.09× the 2D model with taps,
# 0.77× with conv3d (benchmarks/speed.py); a 3×7×7 depthwise layer's training step is 1.6–3.3×
# faster as taps, its forward 1.1–1.2× slower (benchmarks/profile_step.py --depthwise). On an
# H100 (bf16) a 7×7×7 depthwise layer took 2.9 / 9.4 ms as taps against 9.2 / 37.5 ms as conv3d
# (forward / training).
_depthwise_taps_on: dict[tuple[str, bool], bool] = {("cpu", False): False, ("cpu", True): True,
                                                    ("cuda", False): True, ("cuda", True): True}


class _DepthwiseConv3d(torch.autograd.Function):
    """A stride-1 depthwise 3D convolution (no bias) whose backward is two forward convolutions.

    oneDNN's backward of a depthwise convolution runs 10–40× slower than its forward on the
    CPU, its weight gradient above all (benchmarks/profile_step.py --depthwise: a 7×7×7 layer
    of 96 channels on 4 frames of 28² took 6.3 ms forward and 187 ms forward + backward with
    conv3d's own backward, 12 ms in this form). Both gradients are depthwise convolutions too:
    the input's is the output gradient convolved with the kernel flipped in every axis, padded
    by d·(k − 1) − p; the weight's, per channel, the input correlated with the output gradient
    as a kernel (the input zero-padded by p, strided by the dilation), each sample a group of
    its own and the samples summed. (B, C, T, H, W) → (B, C, T', H', W'). The
    backward is made of differentiable ops, so double backward works as through conv3d. The
    same form for the 2D depthwise convolutions of folded time-1 layers was faster at 7×7 and
    slower at 3×3 in a trial, so those keep autograd's backward, as in the 2D model.
    """

    generate_vmap_rule = True  # torch.func transforms (vmap, per-sample gradients) see plain conv3d calls

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, padding: tuple, dilation: tuple) -> torch.Tensor:
        return F.conv3d(x, weight, None, 1, padding, dilation, weight.shape[0])

    @staticmethod
    def setup_context(ctx, inputs: tuple, output: torch.Tensor) -> None:
        x, weight, padding, dilation = inputs
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.dilation = padding, dilation

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple:
        x, weight = ctx.saved_tensors
        padding, dilation, channels = ctx.padding, ctx.dilation, weight.shape[0]
        kernel = weight.shape[2:]
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            back = tuple(d * (k - 1) - p for k, p, d in zip(kernel, padding, dilation))
            grad_x = F.conv3d(grad, weight.flip(2, 3, 4), None, 1, back, dilation, channels)
        if ctx.needs_input_grad[1]:
            batch = x.shape[0]
            grad_w = F.conv3d(x.reshape(1, batch * channels, *x.shape[2:]),
                              grad.reshape(batch * channels, 1, *grad.shape[2:]), None, dilation, padding, 1,
                              batch * channels)
            grad_w = grad_w[..., :kernel[0], :kernel[1], :kernel[2]].reshape(batch, channels, 1, *kernel).sum(0)
        return grad_x, grad_w, None, None


# device type → a depthwise convolution's backward as forward convolutions (_DepthwiseConv3d)
# while training. Measured on the CPU (oneDNN, 2 threads, benchmarks/profile_step.py
# --depthwise, 4 frames, C 96 at 28² to 768 at 3²): a training step of a 7×7×7 layer took
# 2.2–12 ms against 23–78 ms as time taps and 11–187 ms with conv3d's own backward; of a
# 3×7×7 layer 2.0–5.3 ms (taps 10–61, conv3d 9–106). Not on CUDA, where cuDNN's backward was
# not measured against it.
_depthwise_backward_as_forward_on: dict[str, bool] = {"cpu": True}


def depthwise_backward_as_forward(device: torch.device) -> bool:
    """Whether a depthwise convolution with a time kernel computes its gradients as forward
    convolutions (:class:`_DepthwiseConv3d`) on ``device``'s type while training."""
    return _depthwise_backward_as_forward_on.get(device.type, False)


def depthwise_taps_enabled(device: torch.device) -> bool:
    """Whether depthwise convolutions with a time kernel run as one 2D convolution per time tap on
    ``device``'s type, for the current autograd mode (both compute the same function; which is
    faster was measured per device and mode: ``benchmarks/profile_step.py --depthwise``,
    ``benchmarks/speed.py``)."""
    return _depthwise_taps_on.get((device.type, torch.is_grad_enabled()), False)


def time_stacking_enabled(x: torch.Tensor, stride: Sequence[int]) -> bool:
    """Whether a convolution with a time kernel on ``x`` runs as one 2D convolution over each
    window's frames stacked on the channels (:meth:`InflatedConv3d._forward_stacked`). Measured
    with oneDNN on the CPU (``benchmarks/profile_step.py --dense``: 3×3×3, C → C, 4 time slots,
    2 threads, resnet50's shapes from C=64 at 28² to 512 at 4²): the forward 1.2–2.1× faster than
    conv3d; a training step 1.9–4.5× faster down to 7², but 1.6× slower at 512, 4² (the stacked
    kernel's backward), so while autograd records only for output frames of at least 7×7. Where
    the k_t-fold copy of the input outweighs the gain, conv3d stays: I3D's RGB stem (3 channels,
    224², 2.6× slower stacked) and its 56² layer (1.4× slower), so only for inputs of at least
    16 channels and frames of at most 28². Not used on CUDA, where cuDNN's conv3d was not
    measured against it."""
    if x.device.type != "cpu" or x.shape[1] < 16 or x.shape[-2] * x.shape[-1] > 28 * 28:
        return False
    if not torch.is_grad_enabled():
        return True
    height = (x.shape[-2] - 1) // stride[0] + 1
    width = (x.shape[-1] - 1) // stride[1] + 1
    return height * width >= 49


def _edge_frames(out: torch.Tensor, part: torch.Tensor, front: int, back: int, mode: str) -> torch.Tensor:
    """``part`` with ``front``/``back`` frames added in time: copies of ``out``'s first/last frame
    (replicate padding), or zeros."""
    pieces = []
    if front:
        edge = out[:, :, :1] if mode == "replicate" else torch.zeros_like(out[:, :, :1])
        pieces.append(edge.expand(-1, -1, front, -1, -1))
    pieces.append(part)
    if back:
        edge = out[:, :, -1:] if mode == "replicate" else torch.zeros_like(out[:, :, -1:])
        pieces.append(edge.expand(-1, -1, back, -1, -1))
    return torch.cat(pieces, dim=2)


class InflatedMaxPool3d(nn.MaxPool3d):
    """3D max pooling; padded frames repeat the edge frames (or are -inf), never zeros."""

    def __init__(
        self,
        kernel_size: Sequence[int],
        stride: Sequence[int],
        padding: Sequence[int] | str = (0, 0),
        dilation: Sequence[int] = (1, 1, 1),
        ceil_mode: bool = False,
        time_pads: Sequence[int] = (0, 0),
        time_pad_mode: str = "replicate",
    ) -> None:
        self.time_pads = "same" if time_pads == "same" else (int(time_pads[0]), int(time_pads[1]))
        self.time_pad_mode = pad_mode_for("max", time_pad_mode)  # -inf, never zeros
        if self.time_pads != "same" and not any(self.time_pads):
            self.time_pads = (0, 0)
        self.same_padding = padding == "same"
        spatial = (0, 0) if self.same_padding else tuple(int(p) for p in padding)
        super().__init__(tuple(kernel_size), tuple(stride), (0, *spatial), tuple(dilation), ceil_mode=ceil_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _time_one(self.kernel_size[0], self.stride[0], self.time_pads) and not self.return_indices \
                and _may_fold(x) and frame_major(x):
            frames = fold_frames(x)
            if self.same_padding:
                frames = pad_same_spatial(frames, self.kernel_size[1:], self.stride[1:], self.dilation[1:],
                                          pad_value(NEG_INF))
            y = F.max_pool2d(frames, self.kernel_size[1:], self.stride[1:], self.padding[1:], self.dilation[1:],
                             self.ceil_mode)
            return unfold_frames(y, x.shape[0])
        pads = _resolve_time_pads(x, self.time_pads, self.kernel_size[0], self.stride[0], self.dilation[0])
        x = pad_time(x, pads, self.time_pad_mode)
        if self.same_padding:
            x = pad_same_spatial(x, self.kernel_size[1:], self.stride[1:], self.dilation[1:], pad_value(NEG_INF))
        return super().forward(x)


class InflatedAvgPool3d(nn.AvgPool3d):
    """3D average pooling with separate temporal padding and optional TF "SAME" spatial padding.

    Takes every input the 2D pool takes, a padded window larger than the feature map
    included (see :func:`avg_pool3d`)."""

    def __init__(
        self,
        kernel_size: Sequence[int],
        stride: Sequence[int],
        padding: Sequence[int] | str = (0, 0),
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
        time_pads: Sequence[int] = (0, 0),
        time_pad_mode: str = "replicate",
    ) -> None:
        self.time_pads = "same" if time_pads == "same" else (int(time_pads[0]), int(time_pads[1]))
        self.time_pad_mode = time_pad_mode
        self.same_padding = padding == "same"
        spatial = (0, 0) if self.same_padding else tuple(int(p) for p in padding)
        if divisor_override is not None:
            divisor_override = divisor_override * int(kernel_size[0])
        super().__init__(
            tuple(kernel_size), tuple(stride), (0, *spatial), ceil_mode, count_include_pad, divisor_override
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _time_one(self.kernel_size[0], self.stride[0], self.time_pads) and _may_fold(x) and frame_major(x):
            frames = fold_frames(x)
            if self.same_padding:
                frames = pad_same_spatial(frames, self.kernel_size[1:], self.stride[1:], (1, 1))
            _check_window_fits(frames.unsqueeze(2), self.kernel_size, self.padding, "average pooling")
            y = F.avg_pool2d(frames, self.kernel_size[1:], self.stride[1:], self.padding[1:], self.ceil_mode,
                             self.count_include_pad, self.divisor_override)
            return unfold_frames(y, x.shape[0])
        pads = _resolve_time_pads(x, self.time_pads, self.kernel_size[0], self.stride[0], 1)
        x = pad_time(x, pads, self.time_pad_mode)
        if self.same_padding:
            x = pad_same_spatial(x, self.kernel_size[1:], self.stride[1:], (1, 1))
        _check_window_fits(x, self.kernel_size, self.padding, "average pooling")
        return avg_pool3d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                          self.divisor_override)


class InflatedBatchNorm3d(nn.BatchNorm3d):
    """Batch norm over (B, T, H, W) per channel: ``nn.BatchNorm3d``, run as 2D batch norm on
    folded frames where folding is a view (the same statistics over the same B·T·H·W values)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (4, 5):  # 4D: folded frames
            raise ValueError(f"expected a 5D (B, C, T, H, W) input, got {input.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _may_fold(x) and frame_major(x):
            return unfold_frames(self._normalise(fold_frames(x)), x.shape[0])
        return self._normalise(x)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)


class BatchNormAct3d(InflatedBatchNorm3d):
    """Batch norm over (B, T, H, W) per channel, then ``drop`` and ``act`` (timm's BatchNormAct2d in 3D)."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        drop: nn.Module | None = None,
        act: nn.Module | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)
        self.drop = drop if drop is not None else nn.Identity()
        self.act = act if act is not None else nn.Identity()

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(super()._normalise(x)))


class Upsample3d(nn.Module):
    """Spatial upsampling of a (B, C, T, H, W) clip; the time axis keeps its length."""

    def __init__(
        self,
        size: Sequence[int] | None = None,
        scale_factor: Sequence[float] | None = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
    ) -> None:
        super().__init__()
        self.size = None if size is None else tuple(int(s) for s in size)
        self.scale_factor = None if scale_factor is None else tuple(float(s) for s in scale_factor)
        self.mode = {"bilinear": "trilinear", "linear": "trilinear"}.get(mode, mode)
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is not None:
            return F.interpolate(x, size=(x.shape[2], *self.size), mode=self.mode, align_corners=self.align_corners)
        return F.interpolate(
            x, scale_factor=(1.0, *self.scale_factor), mode=self.mode, align_corners=self.align_corners
        )

    def extra_repr(self) -> str:
        what = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}"


class ConvMlp3d(nn.Module):
    """VGG's convolutional pre-logits (timm ``ConvMlp``) on clips: fc1 → act1 → drop → fc2 → act2.

    As in 2D, a feature map smaller than fc1's kernel is first pooled up to it (per frame).
    """

    def __init__(
        self, fc1: nn.Module, act1: nn.Module, drop: nn.Module, fc2: nn.Module, act2: nn.Module, input_kernel_size: int
    ) -> None:
        super().__init__()
        self.input_kernel_size = input_kernel_size
        self.fc1, self.act1, self.drop, self.fc2, self.act2 = fc1, act1, drop, fc2, act2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.input_kernel_size
        if x.shape[-2] < k or x.shape[-1] < k:
            x = F.adaptive_avg_pool3d(x, (x.shape[2], max(k, x.shape[-2]), max(k, x.shape[-1])))
        return self.act2(self.fc2(self.drop(self.act1(self.fc1(x)))))


class PatchEmbed3d(nn.Module):
    """Tubelet embedding of a (B, C, T, H, W) clip, T' = T / k_t time slots, output as
    ``layout``: "tokens" (B, T', N, D), "channels_last" (B, T', H', W', D) as Swin's NHWC
    patch embedding, or "channels_first" (B, D, T', H', W') as PiT's.

    ``proj`` is the k_t×p×p conv with stride (k_t, s, s); ``time_embed`` (1, T', 1, D) is a
    learned per-time-slot embedding that starts at zero (resampled linearly for other clip lengths).
    ``norm`` is the 2D embedding's; under "channels_first" it takes the frames folded into the batch.
    T must be a multiple of k_t; H and W need only what the 2D conv needs (it floors, as in 2D).
    """

    LAYOUTS = ("tokens", "channels_last", "channels_first")

    def __init__(self, proj: nn.Conv3d, norm: nn.Module, time_slots: int, temporal_embedding: bool = True,
                 layout: str = "tokens") -> None:
        super().__init__()
        if layout not in self.LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}: use one of {self.LAYOUTS}")
        self.layout = layout
        self.proj = proj
        self.norm = norm
        self.tubelet = proj.kernel_size[0]
        self.patch_size = tuple(proj.kernel_size[1:])
        dim = proj.out_channels
        self.time_embed = nn.Parameter(torch.zeros(1, time_slots, 1, dim)) if temporal_embedding else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[2]
        # Only time must divide: space is cut as the 2D conv cuts it (a frame size that is not a
        # multiple of the stride drops the last rows, as in 2D; a 2D PatchEmbed that forbids that
        # has refused the size already).
        if frames % self.tubelet:
            from ...core.errors import ShapeMismatchError

            raise ShapeMismatchError(
                "clip (T, H, W) for a tubelet embedding", (f"T % {self.tubelet} == 0", "H", "W"), tuple(x.shape[2:]),
                f"the clip length must be a multiple of the tubelet size {self.tubelet}",
            )
        x = self.proj(x)  # (B, D, T', H', W')
        if self.layout == "tokens":
            x = x.flatten(3).permute(0, 2, 3, 1)  # (B, T', N, D)
        elif self.layout == "channels_last":
            x = x.permute(0, 2, 3, 4, 1)
        if self.time_embed is not None:
            x = x + self._time_embedding(x.shape[2 if self.layout == "channels_first" else 1])
        if self.layout == "channels_first" and not isinstance(self.norm, nn.Identity):
            # a 2D norm of (B, D, H', W') maps (BatchNorm2d, LayerNorm2d) on the frames folded into the
            # batch: BatchNorm2d's statistics over B·T'·H'·W' are BatchNorm3d's, a LayerNorm2d is per position
            return unfold_frames(self.norm(fold_frames(x)), x.shape[0])
        return self.norm(x)

    def _time_embedding(self, slots: int) -> torch.Tensor:
        """The temporal embedding for ``slots`` time slots, shaped to broadcast over the output."""
        embed = self.time_embed  # (1, T', 1, D)
        if embed.shape[1] != slots:
            dim = embed.shape[-1]
            embed = F.interpolate(embed.reshape(1, -1, dim).transpose(1, 2), size=slots, mode="linear",
                                  align_corners=False).transpose(1, 2).reshape(1, slots, 1, dim)
        if self.layout == "channels_last":
            return embed.unsqueeze(2)  # (1, T', 1, 1, D)
        if self.layout == "channels_first":
            return embed.permute(0, 3, 1, 2).unsqueeze(-1)  # (1, D, T', 1, 1)
        return embed


def _flag(value: object) -> object:
    """A 0-d boolean tensor as the Python bool it stands for; anything else as it is."""
    if isinstance(value, torch.Tensor) and value.dtype == torch.bool and value.dim() == 0:
        return bool(value)
    return value


class SpaceTimeAttention(nn.Module):
    """Wraps a 2D attention module, or a block holding one, for inputs with a time axis.

    The input has time at ``time_dim`` and channels at ``channel_dim``: (B, T', N, C) tokens,
    (B, T', H, W, C) maps, or (B, C, T', H, W) feature maps. Modes:

    * joint: attention over all space-time tokens (ViViT model 1). Timm's plain ``Attention``
      sees the T'·N tokens at once (``joint="tokens"``); other modules run on folded frames under
      :class:`space_time.JointAttention` (``joint="sdpa"``), so windows become space-time
      windows over the whole clip and position biases are tiled over temporal offsets;
      attention computed by hand has its own joint form (``joint`` a key of
      :data:`timm_joint.JOINT_FORMS`: ConViT's gated positional attention, LeViT's);
      further positional inputs that carry time (GCViT's global query) are folded with the
      input, their time axes in ``arg_time_dims``;
    * divided: ``temporal_attn`` over T' at each position (after ``temporal_norm``), added
      through ``temporal_fc`` (zero at start, so the model starts as the image model), then
      the 2D module per time slot (TimeSformer's order);
    * frames: the 2D module per time slot only.
    """

    def __init__(self, attn: nn.Module, mode: str, temporal_attn: nn.Module | None = None,
                 temporal_fc: nn.Linear | None = None, temporal_norm: nn.Module | None = None,
                 joint: str = "tokens", time_dim: int = 1, channel_dim: int = -1, where: str = "",
                 arg_time_dims: tuple[int, ...] = ()) -> None:
        super().__init__()
        # the time axes of the first positional arguments after x that carry time too (GCViT's
        # global query): folded with x where the module runs on folded frames
        self.arg_time_dims = tuple(arg_time_dims)
        self.attn = attn
        self.mode = mode
        self.temporal_norm = temporal_norm
        self.temporal_attn = temporal_attn
        self.temporal_fc = temporal_fc
        self.joint, self.time_dim, self.channel_dim, self.where = joint, time_dim, channel_dim, where

    def forward(self, x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        # flags the model forwards from its own inputs (is_causal) arrive as tensors when traced for export
        args = tuple(_flag(a) for a in args)
        kwargs = {name: _flag(value) for name, value in kwargs.items()}
        if self.joint == "tokens" and (kwargs.get("attn_mask") is not None or kwargs.get("is_causal")
                                       or any(a is not None and a is not False for a in args)):
            from ...core.errors import InvalidInputError

            raise InvalidInputError("attention masks are not supported on space-time tokens; call without attn_mask")
        batch, slots = x.shape[0], x.shape[self.time_dim]
        if self.mode == "divided":
            x = x + self._temporal(x)
        if self.mode == "joint" and self.joint == "tokens":
            _, _, tokens, dim = x.shape
            return self.attn(x.reshape(batch, slots * tokens, dim)).reshape(batch, slots, tokens, -1)
        if self.mode == "joint" and self.joint in JOINT_FORMS:
            return JOINT_FORMS[self.joint](self.attn, x, *args, **kwargs)
        folded = x.movedim(self.time_dim, 1).flatten(0, 1)
        arg_time_dims = getattr(self, "arg_time_dims", ())  # absent from modules saved before it
        if arg_time_dims:
            args = tuple(a.movedim(d, 1).flatten(0, 1) for a, d in zip(args, arg_time_dims)) + \
                args[len(arg_time_dims):]
        if self.mode != "joint":
            return self._unfold(self.attn(folded, *args, **kwargs), batch, slots)
        with JointAttention(batch, slots, self.where) as joint:
            y = self.attn(folded, *args, **kwargs)
        if joint.calls == 0:
            from ...core.errors import InflateError

            raise InflateError(f"'{self.where}' computed attention without F.scaled_dot_product_attention, so it "
                               "cannot span time; inflate with attention='frames' or 'divided'")
        return self._unfold(y, batch, slots)

    def _unfold(self, y: torch.Tensor | tuple, batch: int, slots: int) -> torch.Tensor | tuple:
        """Frames back out of the batch; a module that also returns sizes (MViTv2) keeps them."""
        if isinstance(y, tuple):
            return (self._unfold(y[0], batch, slots), *y[1:])
        return y.unflatten(0, (batch, slots)).movedim(1, self.time_dim)

    def _temporal(self, x: torch.Tensor) -> torch.Tensor:
        """The temporal branch: attention over time at every position, through temporal_fc."""
        rank = x.dim()  # non-negative axes: ONNX export of movedim mishandles negative ones
        axes = (self.time_dim % rank, self.channel_dim % rank)
        moved = x.movedim(axes, (rank - 2, rank - 1))
        sequences = moved.reshape(-1, *moved.shape[rank - 2:])  # (B·positions, T', C)
        if self.temporal_norm is not None:
            sequences = self.temporal_norm(sequences)
        out = self.temporal_fc(self.temporal_attn(sequences))
        return out.reshape(moved.shape).movedim((rank - 2, rank - 1), axes)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}" + (f", joint={self.joint!r}" if self.mode == "joint" else "")

