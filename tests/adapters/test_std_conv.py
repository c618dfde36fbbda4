"""Weight-standardised convolutions (timm's StdConv2d family, rule ``std_conv``): the 3D module
against F.conv3d on a kernel standardised independently in numpy, and NFNet and BiT ResNetV2
inflated with no frame-wise op, exact on boring clips and sensitive to frame order."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from timm.layers import GroupNormAct, ScaledStdConv2d, ScaledStdConv2dSame, StdConv2d, StdConv2dSame
from timm.models.resnetv2 import ResNetV2
from torch import nn

from inflate import check_boring_video, check_order_sensitivity, inflate_model
from inflate.adapters.torch.handlers.std_conv import StdConv3d
from inflate.checks import boring_clip
from inflate.testing import randomize_weights
from tests.helpers import boring_tolerance


def _numpy_standardized(weight: np.ndarray, eps: float, gain: np.ndarray | None, scale: float) -> np.ndarray:
    """Weight standardisation written out in float64, per output channel over every other axis."""
    out = np.empty_like(weight, dtype=np.float64)
    for o in range(weight.shape[0]):
        w = weight[o].astype(np.float64)
        centred = w - w.sum() / w.size
        std = np.sqrt((centred ** 2).sum() / w.size + eps)
        out[o] = centred / std * scale * (1.0 if gain is None else float(gain[o]))
    return out


def _tf_same(n: int, k: int, s: int) -> tuple[int, int]:
    """TF SAME padding of one axis (REFERENCES.md): the odd element at the back."""
    total = max(k - s, 0) if n % s == 0 else max(k - n % s, 0)
    return total // 2, total - total // 2


class _Wrap(nn.Module):
    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x):
        return self.conv(x)


def _randomize_conv(conv: nn.Module, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.3 + 0.05)
        if getattr(conv, "gain", None) is not None:
            conv.gain.copy_(torch.rand(conv.gain.shape, generator=generator) + 0.5)
        if conv.bias is not None:
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=generator))
    return conv


CONVS = {
    "StdConv2d": lambda: StdConv2d(5, 6, 3, stride=2, eps=1e-5, bias=True),
    "StdConv2dSame": lambda: StdConv2dSame(5, 6, 3, stride=2, eps=1e-5),
    "ScaledStdConv2d": lambda: ScaledStdConv2d(5, 6, 3, gamma=1.7, eps=1e-4),
    "ScaledStdConv2dSame": lambda: ScaledStdConv2dSame(5, 6, 3, stride=2, gamma=1.7, eps=1e-4, bias=False),
}


@pytest.mark.parametrize("name", list(CONVS), ids=list(CONVS))
def test_std_conv3d_is_conv3d_on_the_standardised_kernel(name: str) -> None:
    """The inflated module, on a clip, equals F.conv3d with its stored 3D kernel standardised in numpy
    over (C_in, k_t, k_h, k_w) with the module's eps and scale (the stem: time stride 2, zero time
    padding); and, with edge frames repeated in time, a boring clip gives the 2D op."""
    conv2d = _randomize_conv(CONVS[name](), seed=3).eval()
    model3d = inflate_model(_Wrap(conv2d), t=4, input_size=(5, 9, 9), policy="i3d", pad_mode="zeros").eval()
    conv3d = model3d.conv
    assert type(conv3d) is StdConv3d and conv3d.kernel_size == (3, 3, 3)
    assert conv3d.eps == pytest.approx(conv2d.eps / 9) and conv3d.scale == pytest.approx(getattr(conv2d, "scale", 1.0) / 3)

    clip = torch.randn(2, 5, 4, 9, 9, generator=torch.Generator().manual_seed(0))
    gain = conv3d.gain.detach().numpy().reshape(-1) if conv3d.gain is not None else None
    kernel = _numpy_standardized(conv3d.weight.detach().numpy(), conv3d.eps, gain, conv3d.scale)
    padded = F.pad(clip, (0, 0, 0, 0, 1, 1))  # zeros in time, as pad_mode="zeros" asks
    if conv3d.same_padding:
        front, back = _tf_same(9, 3, 2)
        padded = F.pad(padded, (front, back, front, back))
    expected = F.conv3d(padded.double(), torch.from_numpy(kernel), None if conv3d.bias is None else conv3d.bias.double(),
                        conv3d.stride, (0, *conv3d.padding[1:]))
    with torch.no_grad():
        got = model3d(clip)
    torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=1e-5)

    image = clip[:, :, 0]
    replicate = inflate_model(_Wrap(conv2d), t=4, input_size=(5, 9, 9)).eval()  # edge frames repeat: exact
    with torch.no_grad():
        boring = replicate(boring_clip(image, 4))
        reference = conv2d(image)
    for step in range(boring.shape[2]):
        torch.testing.assert_close(boring[:, :, step], reference, atol=1e-5, rtol=1e-5)


def test_std_conv_refuses_center_init() -> None:
    """Zero slices change a kernel's statistics: centre init cannot keep the 2D output, so it is refused
    with the way out (tile, or a time kernel of 1)."""
    from inflate.core import InvalidInputError

    with pytest.raises(InvalidInputError, match="init 'center'.*use init 'tile'"):
        inflate_model(_Wrap(StdConv2d(3, 4, 3)), t=4, input_size=(3, 8, 8), init="center")
    model3d = inflate_model(_Wrap(StdConv2d(3, 4, 3)), t=4, input_size=(3, 8, 8), init="center",
                            overrides={"conv": 1})
    assert model3d.conv.kernel_size == (1, 3, 3)


def _assert_family(model2d: nn.Module, t: int, input_size: tuple[int, int, int]) -> None:
    model3d, report = inflate_model(model2d, t=t, input_size=input_size, return_report=True)
    assert report.frame_wise == (), report.table()
    standardised = [r for r in report.inflated if r.kind == "std_conv"]
    assert standardised and any(r.time_kernel > 1 for r in standardised), report.table()

    boring = check_boring_video(model2d, model3d, t=t, tolerance=boring_tolerance(model2d, input_size))
    print(f"\n{boring}")
    assert boring.max_abs_2d > 0
    assert boring.passed, str(boring)
    order = check_order_sensitivity(model3d, t=t)
    print(order)
    assert order.passed, str(order)


def test_nfnet_inflates_its_scaled_std_convs() -> None:
    """test_nfnet (ScaledStdConv2d in every NormFreeBlock): no frame-wise op, exact on boring clips."""
    model2d = randomize_weights(timm.create_model("test_nfnet", pretrained=False, num_classes=10).eval(), seed=1)
    _assert_family(model2d, 8, (3, 96, 96))


def test_small_bit_resnetv2_inflates_its_std_convs() -> None:
    """BiT's ResNetV2 (StdConv2d, eps 1e-8, GroupNormAct), one narrow block per stage (8 groups): no frame-wise op."""
    model2d = ResNetV2(layers=[1, 1, 1, 1], channels=(64, 128, 256, 512), num_classes=10, stem_type="fixed",
                       conv_layer=partial(StdConv2d, eps=1e-8), norm_layer=partial(GroupNormAct, num_groups=8))
    _assert_family(randomize_weights(model2d.eval(), seed=1, input_size=(3, 64, 64)), 8, (3, 64, 64))


@pytest.mark.slow
def test_bit_resnetv2_50x1() -> None:
    """The smallest BiT of timm's registry, resnetv2_50x1_bit, at 64² and 4 frames."""
    model2d = randomize_weights(timm.create_model("resnetv2_50x1_bit", pretrained=False, num_classes=10).eval(),
                                seed=1, input_size=(3, 64, 64))
    _assert_family(model2d, 4, (3, 64, 64))


def test_weight_file_of_nfnet_equals_inflate_model() -> None:
    """The weight-file adapter tells ScaledStdConv2d kernels by their ``gain`` and applies the std_conv
    rule: the same tensors as inflate_model's 3D model, and centre init refused as there."""
    from inflate import InvalidInputError
    from inflate.adapters.safetensors import inflate_state_dict
    from inflate.adapters.safetensors.weights import plan_state_dict
    from inflate.core import get_policy

    model2d = randomize_weights(timm.create_model("test_nfnet", pretrained=False, num_classes=10).eval(), seed=2,
                                input_size=(3, 64, 64))
    expected = inflate_model(model2d, t=8, input_size=(3, 64, 64)).state_dict()
    got = inflate_state_dict(model2d.state_dict(), t=8)
    assert list(got) == list(expected)
    for key in expected:
        assert torch.equal(got[key], expected[key]), key
    shapes = {k: tuple(v.shape) for k, v in model2d.state_dict().items()}
    kinds = {p.key: p.kind for p in plan_state_dict(shapes, get_policy("i3d")) if p.time_kernel is not None}
    assert kinds["stem.conv1.weight"] == "std_conv" and kinds["stages.0.0.attn_last.fc1.weight"] == "conv"
    with pytest.raises(InvalidInputError, match="init 'center'"):
        inflate_state_dict(model2d.state_dict(), t=8, init="center")
