"""Convolution rule: on a boring clip the 3D conv equals the 2D conv at every time step."""

import pytest
import torch
from torch import nn
from timm.layers import Conv2dSame

from inflate.adapters.torch.modules import InflatedConv3d
from tests.helpers import assert_boring_equal

CASES = [
    # kernel, stride, padding, dilation, groups, bias
    (1, 1, 0, 1, 1, False),
    (3, 1, 1, 1, 1, True),
    (3, 2, 1, 1, 1, False),
    (5, 1, 2, 1, 4, True),
    (3, 1, 2, 2, 1, True),
    (3, 1, 1, 1, 8, False),  # depthwise
    (4, 2, 1, 1, 1, True),   # even kernel
    ((1, 7), 1, (0, 3), 1, 1, False),  # factorised
    (7, 2, 3, 1, 1, False),
]


@pytest.mark.parametrize("t", [1, 4, 7], ids=lambda t: f"t{t}")
@pytest.mark.parametrize("init", ["tile", "center"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "k{}-s{}-p{}-d{}-g{}-{}".format(*c[:5], "bias" if c[5] else "nobias"))
def test_conv_boring_equals_2d(case, init: str, t: int) -> None:
    kernel, stride, padding, dilation, groups, bias = case
    conv = nn.Conv2d(8, 8, kernel, stride, padding, dilation, groups, bias)
    model = assert_boring_equal(nn.Sequential(conv), t, torch.randn(2, 8, 17, 19), init=init)
    assert type(model[0]) is InflatedConv3d


@pytest.mark.parametrize("pad_mode", ["replicate", "zeros"])
@pytest.mark.parametrize("kernel,stride", [(3, 2), (4, 2), (5, 3), (2, 1)], ids=lambda v: str(v))
def test_tf_same_conv_asymmetric_padding(kernel: int, stride: int, pad_mode: str) -> None:
    conv = Conv2dSame(3, 6, kernel, stride, bias=True)
    if pad_mode == "replicate":
        assert_boring_equal(nn.Sequential(conv), 5, torch.randn(1, 3, 15, 16))
    else:
        # Zero time padding: the border frames differ from the 2D output, the middle ones do not.
        model = nn.Sequential(conv).eval()
        from inflate import inflate_model
        from inflate.checks import boring_clip

        model3d = inflate_model(model, t=9, pad_mode="zeros", overrides={"*": {"kernel": 3, "stride": 1}},
                                input_size=(3, 15, 16))
        image = torch.randn(1, 3, 15, 16)
        with torch.no_grad():
            out = model3d(boring_clip(image, 9))
            torch.testing.assert_close(out[:, :, 4], model(image), atol=1e-5, rtol=1e-5)
            assert not torch.allclose(out[:, :, 0], model(image), atol=1e-3)


def test_torch_same_padding_string() -> None:
    assert_boring_equal(nn.Sequential(nn.Conv2d(3, 4, 4, padding="same")), 3, torch.randn(1, 3, 9, 9))


def test_time_kernel_from_overrides_and_center_is_framewise() -> None:
    conv = nn.Conv2d(3, 4, 3, padding=1)
    model = nn.Sequential(conv).eval()
    from inflate import inflate_model

    model3d = inflate_model(model, t=4, init="center", overrides={"0": {"kernel": 3, "stride": 1}},
                            input_size=(3, 8, 8))
    assert model3d[0].kernel_size == (3, 3, 3)
    clip = torch.randn(1, 3, 4, 8, 8)
    with torch.no_grad():  # center init: each output frame is the 2D conv of its own frame
        out = model3d(clip)
        for step in range(4):
            torch.testing.assert_close(out[:, :, step], model(clip[:, :, step]), atol=1e-5, rtol=1e-5)
