"""The inflated pool modules take every input their 2D op takes, with the 2D op's values."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inflate import check_boring_video, inflate_model
from inflate.adapters.torch.modules import InflatedAvgPool3d, avg_pool3d, frame_folding

# (H, W, kernel, stride, padding, ceil_mode): windows larger than the unpadded map, which
# F.avg_pool3d refuses and F.avg_pool2d accepts, and ordinary ones that take the plain op.
WINDOWS = [
    pytest.param(2, 2, 3, 1, 1, False, id="2x2-k3s1p1"),
    pytest.param(2, 3, 3, 2, 1, True, id="2x3-k3s2p1-ceil"),
    pytest.param(1, 1, 3, 2, 1, True, id="1x1-k3s2p1-ceil"),
    pytest.param(2, 2, (3, 2), (2, 1), (1, 0), False, id="2x2-k3x2"),
    pytest.param(5, 5, 3, 2, 1, True, id="5x5-k3s2p1-ceil"),
    pytest.param(7, 6, 3, 1, 1, False, id="7x6-k3s1p1"),
]


def _triple(value: int | tuple[int, int], time: int) -> tuple[int, int, int]:
    return (time, *value) if isinstance(value, tuple) else (time, value, value)


@pytest.mark.parametrize("count_include_pad", [True, False], ids=["include-pad", "exclude-pad"])
@pytest.mark.parametrize("height, width, kernel, stride, padding, ceil_mode", WINDOWS)
def test_avg_pool3d_matches_avg_pool2d_on_every_frame(height: int, width: int, kernel, stride, padding,
                                                      ceil_mode: bool, count_include_pad: bool) -> None:
    clip = torch.randn(2, 3, 4, height, width, dtype=torch.float64)
    expected = torch.stack([F.avg_pool2d(clip[:, :, i], kernel, stride, padding, ceil_mode, count_include_pad)
                            for i in range(clip.shape[2])], dim=2)
    got = avg_pool3d(clip, _triple(kernel, 1), _triple(stride, 1), _triple(padding, 0), ceil_mode,
                     count_include_pad)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_avg_pool3d_divisor_override_on_a_small_map() -> None:
    clip = torch.randn(1, 2, 3, 2, 2, dtype=torch.float64)
    expected = torch.stack([F.avg_pool2d(clip[:, :, i], 3, 1, 1, divisor_override=4) for i in range(3)], dim=2)
    torch.testing.assert_close(avg_pool3d(clip, (1, 3, 3), (1, 1, 1), (0, 1, 1), divisor_override=4), expected)


def test_avg_pool3d_with_a_time_window_on_a_small_map() -> None:
    # A 2×3×3 window over 2×2 maps: the time axis averaged, space as avg_pool2d per frame pair.
    clip = torch.randn(1, 2, 4, 2, 2, dtype=torch.float64)
    expected = torch.stack([F.avg_pool2d((clip[:, :, i] + clip[:, :, i + 1]) / 2, 3, 1, 1, count_include_pad=False)
                            for i in range(3)], dim=2)
    got = avg_pool3d(clip, (2, 3, 3), (1, 1, 1), (0, 1, 1), count_include_pad=False)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("folding", [True, False], ids=["folded", "3d-op"])
def test_inflated_avg_pool_takes_a_map_smaller_than_its_window(folding: bool) -> None:
    # inception_v4's pool (3×3, stride 1, padding 1, count_include_pad=False) on the 2×2 maps of a 128² input.
    pool2d = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    pool3d = InflatedAvgPool3d((1, 3, 3), (1, 1, 1), (1, 1), count_include_pad=False)
    clip = torch.randn(2, 8, 4, 2, 2)
    expected = torch.stack([pool2d(clip[:, :, i]) for i in range(4)], dim=2)
    with frame_folding(folding):
        got = pool3d(clip.transpose(1, 2).contiguous().transpose(1, 2))  # frame-major: the folded path if on
        plain = pool3d(clip)  # contiguous (B, C, T, H, W): the 3D op
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(plain, expected)


class _SmallMapPool(nn.Module):
    """The smallest net with inception's tail: the map shrinks to 2×2, then a padded 3×3 pool,
    as a module (inception_v4's ``nn.AvgPool2d``) or as a function (inception_v3's ``F.avg_pool2d``)."""

    def __init__(self, functional: bool) -> None:
        super().__init__()
        self.functional = functional
        self.conv = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x))
        x = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1) if self.functional else self.pool(x)
        return self.head(x.mean((2, 3)))


@pytest.mark.parametrize("functional", [
    pytest.param(False, id="module"),
    pytest.param(True, id="function"),
])
def test_inflated_net_runs_where_the_map_is_smaller_than_the_pool_window(functional: bool) -> None:
    model2d = _SmallMapPool(functional).eval()
    model3d = inflate_model(model2d, t=4, input_size=(3, 8, 8))
    report = check_boring_video(model2d, model3d, t=4, image=torch.randn(2, 3, 8, 8))
    assert report.passed, str(report)
