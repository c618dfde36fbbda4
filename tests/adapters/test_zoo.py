"""Every CNN family of the engine issue: boring-video invariance and frame-order sensitivity.

Weights are randomised first (inflate.testing.randomize_weights) so neither check passes
by accident. ``-m zoo`` runs the whole list; the default run takes a representative subset
covering each graph pattern (residual, SE + TF padding, channels-last norms, reshapes,
slicing, splits, upsampling).
"""

import pytest
import timm
import torch

from inflate import check_boring_video, check_order_sensitivity, inflate_model
from inflate.testing import randomize_weights

ARCHITECTURES = [
    "resnet18", "resnet50", "vgg16", "inception_v3", "inception_v4", "inception_resnet_v2", "densenet121",
    "efficientnet_b0", "tf_efficientnet_lite0", "mobilenetv3_large_100", "convnext_tiny", "regnetx_002",
    "cspresnet50", "dla34", "xception41", "mixnet_s", "hrnet_w18_small", "res2net50_26w_4s", "resnest14d",
    "ghostnet_100",
]
REPRESENTATIVE = {"resnet18", "tf_efficientnet_lite0", "convnext_tiny", "resnest14d", "ghostnet_100", "mixnet_s",
                  "hrnet_w18_small", "regnetx_002"}
PARAMS = [pytest.param(name, marks=() if name in REPRESENTATIVE else pytest.mark.zoo, id=name)
          for name in ARCHITECTURES]


@pytest.fixture(scope="module")
def figures() -> dict:
    return {}


@pytest.mark.parametrize("name", PARAMS)
def test_boring_video_and_frame_order(name: str) -> None:
    model2d = randomize_weights(timm.create_model(name, pretrained=False).eval(), seed=1)
    model3d, report = inflate_model(model2d, t=8, return_report=True)
    assert report.frame_wise == (), report.table()
    assert report.temporal_layers(), "no op mixes frames"

    boring = check_boring_video(model2d, model3d, t=8)
    print(f"\n{name}: {boring}")
    assert boring.max_abs_2d > 0
    assert boring.passed, str(boring)

    order = check_order_sensitivity(model3d, t=8)
    print(f"{name}: {order}")
    assert order.passed, str(order)


SMALL_REPRESENTATIVE = {"resnet18", "inception_v3"}  # inception_v3: avg pools on maps smaller than the window


@pytest.mark.parametrize("name", [pytest.param(name, marks=() if name in SMALL_REPRESENTATIVE else pytest.mark.zoo,
                                               id=name) for name in ARCHITECTURES])
def test_boring_video_and_frame_order_at_128(name: str) -> None:
    """The same list at 128², a usual video crop: the 3D model takes every size its 2D model takes."""
    model2d = randomize_weights(timm.create_model(name, pretrained=False).eval(), seed=1)
    image = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model2d(image)  # every model of the list runs at 128² in 2D
    model3d, report = inflate_model(model2d, t=8, input_size=(3, 128, 128), return_report=True)
    assert report.frame_wise == (), report.table()
    boring = check_boring_video(model2d, model3d, t=8, image=image)
    assert boring.passed, str(boring)
    clip = torch.randn(1, 3, 8, 128, 128, generator=torch.Generator().manual_seed(1))
    order = check_order_sensitivity(model3d, t=8, clip=clip)
    assert order.passed, str(order)
