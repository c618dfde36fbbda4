"""Pooling rules, module and functional forms."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from timm.layers.pool2d_same import AvgPool2dSame, MaxPool2dSame

from tests.helpers import assert_boring_equal


@pytest.mark.parametrize("time_kernel", [1, 3], ids=lambda k: f"kt{k}")
@pytest.mark.parametrize(
    "pool",
    [
        lambda: nn.MaxPool2d(3, 2, 1),
        lambda: nn.MaxPool2d(2),
        lambda: nn.MaxPool2d(3, 2, ceil_mode=True),
        lambda: nn.AvgPool2d(3, 1, 1),
        lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False),
        lambda: nn.AvgPool2d(2, ceil_mode=True),
        lambda: MaxPool2dSame(3, 2),
        lambda: AvgPool2dSame(3, 2),
    ],
    ids=["max3s2p1", "max2", "max3s2ceil", "avg3s1p1", "avg3s2-noinclude", "avg2ceil", "max-same", "avg-same"],
)
def test_pool_boring_equals_2d(pool, time_kernel: int) -> None:
    overrides = {"*": {"kernel": time_kernel}}
    # negative inputs: padding must never win a max
    assert_boring_equal(nn.Sequential(pool()), 5, torch.randn(2, 4, 13, 14) - 3, overrides=overrides)


class Functional(nn.Module):
    def forward(self, x):
        a = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        b = F.avg_pool2d(x, 3, 2, 1)
        c = F.adaptive_avg_pool2d(x, (3, 3))
        return a + b + F.interpolate(c, size=a.shape[-2:], mode="nearest")


def test_functional_pools() -> None:
    assert_boring_equal(Functional(), 4, torch.randn(2, 4, 12, 12))


@pytest.mark.parametrize("size", [1, (1, 1), (2, 3)], ids=["int1", "tuple1", "2x3"])
def test_adaptive_pools(size) -> None:
    for pool in (nn.AdaptiveAvgPool2d(size), nn.AdaptiveMaxPool2d(size)):
        model = nn.Sequential(nn.Conv2d(3, 4, 3), pool)
        image = torch.randn(2, 3, 10, 10)
        from inflate import inflate_model
        from inflate.checks import boring_clip

        model3d = inflate_model(model.eval(), t=4, input_size=(3, 10, 10)).eval()
        with torch.no_grad():
            got, expected = model3d(boring_clip(image, 4)), model(image)
        if size in (1, (1, 1)):  # global: time pooled away too
            assert got.shape == expected.shape
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        else:
            torch.testing.assert_close(got[:, :, 0], expected, atol=1e-5, rtol=1e-5)
