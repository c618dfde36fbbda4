"""The non-strict fallback at the level of the enclosing module: where an op inside a module
cannot be split into frames (a reshape that moves the batch axis), the whole module runs per
frame, is reported, and the conversion goes on; strict=True still raises, naming the node."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from inflate import check_boring_video, check_order_sensitivity, inflate_model
from inflate.core.errors import UnsupportedOpError
from inflate.testing import randomize_weights


class ChannelMixer(nn.Module):
    """Splits channels into heads merged with the batch axis, (B·heads, C/heads, H·W), as
    hand-written attention does (HaloNet, BoTNet), mixes positions within each image, and merges
    back: each image maps to itself, so per frame it is exact, but no op inside keeps the batch
    axis on its own."""

    def __init__(self, channels: int, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.proj(x).reshape(b * self.heads, c // self.heads, h * w)
        attn = (q.transpose(1, 2) @ q).softmax(dim=-1)  # (B·heads, HW, HW)
        out = (q @ attn).reshape(b, c, h, w)
        return out + x


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.mixer = ChannelMixer(8)
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mixer(torch.relu(self.bn(self.stem(x))))
        return self.fc(self.pool(self.conv(x)).flatten(1))


@pytest.fixture(scope="module")
def model2d() -> nn.Module:
    torch.manual_seed(0)
    return randomize_weights(Net().eval(), input_size=(3, 16, 16))


def test_strict_names_the_node(model2d: nn.Module) -> None:
    with pytest.raises(UnsupportedOpError, match="mixer"):
        inflate_model(model2d, t=4, strict=True, input_size=(3, 16, 16))


def test_enclosing_module_runs_per_frame(model2d: nn.Module) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model3d, report = inflate_model(model2d, t=4, input_size=(3, 16, 16), return_report=True)
    assert [r.path for r in report.frame_wise] == ["mixer"]
    assert any("mixer" in str(w.message) and "frame by frame" in str(w.message) for w in caught)
    boring = check_boring_video(model2d, model3d, t=4)
    assert boring.passed, boring
    # the convs around it still see time: the model is not frame-wise as a whole
    assert check_order_sensitivity(model3d, torch.randn(1, 3, 4, 16, 16)).relative_change > 1e-3
