"""Inception-v1 with batch norm in the layout and end-point names of I3D's network, as a 2D model.

This is the 2D network the I3D paper inflates: every conv without bias, then BN (eps 1e-3)
and ReLU, TensorFlow "SAME" padding throughout (timm's Conv2dSame / MaxPool2dSame, which
put the odd padding element at the end). End points keep the names of DeepMind's 3D code
(Conv3d_1a_7x7, Mixed_3b, ...) so that a checkpoint maps by name. On its own it is a
usable image classifier: (B, C, 224, 224) → (B, classes).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from timm.layers.conv2d_same import Conv2dSame
from timm.layers.pool2d_same import MaxPool2dSame
from torch import nn

from ..core.errors import InvalidInputError
from .registry import register_preset

__all__ = ["InceptionV1", "Unit", "Mixed", "MIXED_WIDTHS", "LOGITS_POOLS", "inception_v1_bn"]

# [Branch_0 | Branch_1 1×1 → 3×3 | Branch_2 1×1 → 3×3 | Branch_3 pool → 1×1] output widths.
MIXED_WIDTHS: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


class Unit(nn.Module):
    """conv (TF SAME) → BN → ReLU; ``use_bn=False`` gives a plain conv with bias (the logits)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1,
                 use_bn: bool = True, activation: bool = True) -> None:
        super().__init__()
        self.conv = Conv2dSame(in_channels, out_channels, kernel, stride, bias=not use_bn)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-3, momentum=0.01) if use_bn else nn.Identity()
        self.act = nn.ReLU(inplace=False) if activation else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Mixed(nn.Module):
    """An Inception block: four branches concatenated on channels."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = widths
        self.Branch_0 = nn.Sequential(OrderedDict(Conv3d_0a_1x1=Unit(in_channels, b0)))
        self.Branch_1 = nn.Sequential(OrderedDict(Conv3d_0a_1x1=Unit(in_channels, b1a), Conv3d_0b_3x3=Unit(b1a, b1b, 3)))
        self.Branch_2 = nn.Sequential(OrderedDict(Conv3d_0a_1x1=Unit(in_channels, b2a), Conv3d_0b_3x3=Unit(b2a, b2b, 3)))
        self.Branch_3 = nn.Sequential(OrderedDict(MaxPool3d_0a_3x3=MaxPool2dSame(3, 1), Conv3d_0b_1x1=Unit(in_channels, b3)))
        self.out_channels = b0 + b1b + b2b + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.Branch_0(x), self.Branch_1(x), self.Branch_2(x), self.Branch_3(x)], dim=1)


LOGITS_POOLS = ("valid", "adaptive")


class Logits(nn.Module):
    """7×7 average pool (VALID, stride 1) → dropout → 1×1 conv with bias.

    ``pool="adaptive"`` averages the whole feature map instead (any input size); the module
    keeps its name, so checkpoints load either way (the pool has no weights).
    """

    def __init__(self, in_channels: int, num_classes: int, drop_rate: float, pool: str = "valid") -> None:
        super().__init__()
        self.AvgPool_0a_7x7 = nn.AvgPool2d(7, stride=1) if pool == "valid" else nn.AdaptiveAvgPool2d(1)
        self.Dropout_0b = nn.Dropout(drop_rate)
        self.Conv3d_0c_1x1 = Unit(in_channels, num_classes, use_bn=False, activation=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.Conv3d_0c_1x1(self.Dropout_0b(self.AvgPool_0a_7x7(x)))


class InceptionV1(nn.Module):
    """Inception-v1 (BN) in I3D's layout. Input (B, in_chans, 224, 224) → logits (B, num_classes)."""

    def __init__(self, num_classes: int = 400, in_chans: int = 3, drop_rate: float = 0.5,
                 logits_pool: str = "valid") -> None:
        super().__init__()
        if logits_pool not in LOGITS_POOLS:
            raise InvalidInputError(f"logits_pool must be one of {', '.join(LOGITS_POOLS)}, got {logits_pool!r}")
        self.num_classes = num_classes
        self.Conv3d_1a_7x7 = Unit(in_chans, 64, 7, 2)
        self.MaxPool3d_2a_3x3 = MaxPool2dSame(3, 2)
        self.Conv3d_2b_1x1 = Unit(64, 64)
        self.Conv3d_2c_3x3 = Unit(64, 192, 3)
        self.MaxPool3d_3a_3x3 = MaxPool2dSame(3, 2)
        channels = 192
        for name in ("Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
                     "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c"):
            if name.startswith("MaxPool"):
                setattr(self, name, MaxPool2dSame(3 if name.endswith("3x3") else 2, 2))
            else:
                block = Mixed(channels, MIXED_WIDTHS[name])
                setattr(self, name, block)
                channels = block.out_channels
        self.num_features = channels
        self.Logits = Logits(channels, num_classes, drop_rate, logits_pool)
        # What inflate_model and load_inflated read (timm's conventions).
        self.pretrained_cfg = {"architecture": "inception_v1_bn", "input_size": (in_chans, 224, 224),
                               "first_conv": "Conv3d_1a_7x7.conv", "classifier": "Logits.Conv3d_0c_1x1.conv",
                               "num_classes": num_classes}
        self.inflate_source = "inception_v1_bn"
        self.inflate_source_kwargs = {"num_classes": num_classes, "in_chans": in_chans}
        if logits_pool != "valid":  # saved models rebuild with it; older files hold no entry (VALID)
            self.inflate_source_kwargs["logits_pool"] = logits_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name, module in self.named_children():
            if name == "Logits":
                break
            x = module(x)
        return self.Logits(x).flatten(1)


@register_preset("inception_v1_bn")
def inception_v1_bn(num_classes: int = 400, in_chans: int = 3, drop_rate: float = 0.5,
                    logits_pool: str = "valid") -> InceptionV1:
    """The 2D Inception-v1 (BN) of I3D's layout; ``logits_pool`` "valid" (7×7) or "adaptive" (global)."""
    return InceptionV1(num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, logits_pool=logits_pool)
