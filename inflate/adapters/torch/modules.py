"""The 3D modules an inflated model is built from.

Each keeps the attribute names of its 2D counterpart (``weight``, ``bias``, ``act``...)
so state-dict keys stay recognisable, and pads time separately from space: the time
axis is padded with ``replicate`` (edge frames) or ``zeros``, space as the 2D op did.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "pad_time",
    "pad_same_spatial",
    "InflatedConv3d",
    "InflatedMaxPool3d",
    "InflatedAvgPool3d",
    "BatchNormAct3d",
    "Upsample3d",
    "ConvMlp3d",
]


def pad_time(x: torch.Tensor, pads: Sequence[int], mode: str) -> torch.Tensor:
    """Pad axis 2 of a (B, C, T, H, W) tensor by (front, back) frames (mode replicate, zeros or neg_inf)."""
    front, back = pads
    if front == 0 and back == 0:
        return x
    if mode == "replicate":
        return F.pad(x, (0, 0, 0, 0, front, back), mode="replicate")
    return F.pad(x, (0, 0, 0, 0, front, back), mode="constant", value=float("-inf") if mode == "neg_inf" else 0.0)


def _resolve_time_pads(x: torch.Tensor, pads: Sequence[int] | str, kernel: int, stride: int, dilation: int) -> Sequence[int]:
    if pads == "same":
        return _same_pads(x.shape[2], kernel, stride, dilation)
    return pads  # type: ignore[return-value]


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    # TF "SAME": pad so that ceil(size / stride) outputs fit; the odd element at the back.
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def pad_same_spatial(
    x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int], value: float = 0.0
) -> torch.Tensor:
    """TensorFlow "SAME" padding of the last two axes, computed from the input size."""
    top, bottom = _same_pads(x.shape[-2], kernel[0], stride[0], dilation[0])
    left, right = _same_pads(x.shape[-1], kernel[1], stride[1], dilation[1])
    if top or bottom or left or right:
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
        pads = _resolve_time_pads(x, self.explicit_time_pads, self.kernel_size[0], self.stride[0], self.dilation[0])
        x = pad_time(x, pads, self.time_pad_mode)
        if self.same_padding:
            x = pad_same_spatial(x, self.kernel_size[1:], self.stride[1:], self.dilation[1:])
        return super().forward(x)

    def extra_repr(self) -> str:
        extra = f", time_pads={self.time_pads}, time_pad_mode={self.time_pad_mode!r}"
        return super().extra_repr() + extra + (", padding='same'" if self.same_padding else "")


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
        # Zero frames could win over negative activations: max pooling pads time with -inf.
        self.time_pad_mode = "replicate" if time_pad_mode == "replicate" else "neg_inf"
        if self.time_pads != "same" and not any(self.time_pads):
            self.time_pads = (0, 0)
        self.same_padding = padding == "same"
        spatial = (0, 0) if self.same_padding else tuple(int(p) for p in padding)
        super().__init__(tuple(kernel_size), tuple(stride), (0, *spatial), tuple(dilation), ceil_mode=ceil_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = _resolve_time_pads(x, self.time_pads, self.kernel_size[0], self.stride[0], self.dilation[0])
        x = pad_time(x, pads, self.time_pad_mode)
        if self.same_padding:
            x = pad_same_spatial(x, self.kernel_size[1:], self.stride[1:], self.dilation[1:], float("-inf"))
        return super().forward(x)


class InflatedAvgPool3d(nn.AvgPool3d):
    """3D average pooling with separate temporal padding and optional TF "SAME" spatial padding."""

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
        pads = _resolve_time_pads(x, self.time_pads, self.kernel_size[0], self.stride[0], 1)
        x = pad_time(x, pads, self.time_pad_mode)
        if self.same_padding:
            x = pad_same_spatial(x, self.kernel_size[1:], self.stride[1:], (1, 1))
        _check_window_fits(x, self.kernel_size, self.padding, "average pooling")
        return super().forward(x)


class BatchNormAct3d(nn.BatchNorm3d):
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(super().forward(x)))


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
    """Tubelet embedding: (B, C, T, H, W) → tokens (B, T', N, D), T' = T / k_t, N = H/p · W/p.

    ``proj`` is the k_t×p×p conv with stride (k_t, p, p); ``time_embed`` is a learned
    per-time-slot embedding that starts at zero (resampled linearly for other clip lengths).
    """

    def __init__(self, proj: nn.Conv3d, norm: nn.Module, time_slots: int, temporal_embedding: bool = True,
                 channels_last: bool = False) -> None:
        super().__init__()
        self.channels_last = channels_last  # (B, T', H', W', D) tokens, as Swin's NHWC patch embedding
        self.proj = proj
        self.norm = norm
        self.tubelet = proj.kernel_size[0]
        self.patch_size = tuple(proj.kernel_size[1:])
        dim = proj.out_channels
        self.time_embed = nn.Parameter(torch.zeros(1, time_slots, 1, dim)) if temporal_embedding else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, frames, height, width = x.shape
        if frames % self.tubelet or height % self.patch_size[0] or width % self.patch_size[1]:
            from ...core.errors import ShapeMismatchError

            raise ShapeMismatchError(
                "clip (T, H, W) for a tubelet embedding", (f"T % {self.tubelet} == 0", f"H % {self.patch_size[0]} == 0",
                                                           f"W % {self.patch_size[1]} == 0"),
                (frames, height, width),
                f"the clip length must be a multiple of the tubelet size {self.tubelet} and the frame size a multiple "
                f"of the patch size {self.patch_size}",
            )
        x = self.proj(x)  # (B, D, T', H', W')
        x = x.permute(0, 2, 3, 4, 1) if self.channels_last else x.flatten(3).permute(0, 2, 3, 1)  # (B, T', N, D)
        if self.time_embed is not None:
            embed = self.time_embed if not self.channels_last else self.time_embed.unsqueeze(2)
            if embed.shape[1] != x.shape[1]:
                dim = embed.shape[-1]
                resized = F.interpolate(self.time_embed.reshape(1, -1, dim).transpose(1, 2), size=x.shape[1],
                                        mode="linear", align_corners=False).transpose(1, 2)  # (1, T', D)
                embed = resized.reshape(1, x.shape[1], *([1] * (x.dim() - 3)), dim)
            x = x + embed
        return self.norm(x)


class SpaceTimeAttention(nn.Module):
    """Wraps a 2D token attention for (B, T', N, C) space-time tokens.

    * joint: one attention over all T'·N tokens (ViViT model 1);
    * divided: a temporal attention over T' for each token position, added through
      ``temporal_fc`` (zero at start, so the block starts as the image model), then the
      spatial attention per time slot (TimeSformer's order);
    * frames: the spatial attention per time slot only.
    """

    def __init__(self, attn: nn.Module, mode: str, temporal_attn: nn.Module | None = None,
                 temporal_fc: nn.Linear | None = None) -> None:
        super().__init__()
        self.attn = attn
        self.mode = mode
        self.temporal_attn = temporal_attn
        self.temporal_fc = temporal_fc

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        if attn_mask is not None or is_causal:
            from ...core.errors import InvalidInputError

            raise InvalidInputError("attention masks are not supported on space-time tokens; call without attn_mask")
        batch, slots, tokens, dim = x.shape
        if self.mode == "joint":
            return self.attn(x.reshape(batch, slots * tokens, dim)).reshape(batch, slots, tokens, -1)
        if self.mode == "divided":
            across_time = x.permute(0, 2, 1, 3).reshape(batch * tokens, slots, dim)
            temporal = self.temporal_attn(across_time).reshape(batch, tokens, slots, dim).permute(0, 2, 1, 3)
            x = x + self.temporal_fc(temporal)
        return self.attn(x.reshape(batch * slots, tokens, dim)).reshape(batch, slots, tokens, -1)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
