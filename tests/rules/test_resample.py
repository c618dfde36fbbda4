"""Upsampling and padding: space only."""

import pytest
import torch
from torch import nn
import torch.nn.functional as F

from tests.helpers import assert_boring_equal


@pytest.mark.parametrize(
    "layer",
    [lambda: nn.Upsample(scale_factor=2, mode="nearest"), lambda: nn.Upsample(size=(11, 13), mode="bilinear"),
     lambda: nn.ZeroPad2d((1, 2, 0, 3)), lambda: nn.ReflectionPad2d(2), lambda: nn.ReplicationPad2d((0, 1, 2, 0)),
     lambda: nn.ConstantPad2d(1, 0.5)],
    ids=["up-nearest", "up-bilinear-size", "zeropad", "reflect", "replicate", "constpad"],
)
def test_resample_boring_equals_2d(layer) -> None:
    assert_boring_equal(nn.Sequential(nn.Conv2d(3, 4, 1), layer()), 3, torch.randn(2, 3, 7, 8))


class FunctionalPad(nn.Module):
    def forward(self, x):
        y = F.pad(x, (1, 1, 2, 0))
        y = F.pad(y, (1, 1, 1, 1), mode="reflect")
        return F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)


def test_functional_pad_and_interpolate() -> None:
    assert_boring_equal(FunctionalPad(), 3, torch.randn(1, 2, 6, 6))
