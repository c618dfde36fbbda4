"""Norm rules: BatchNorm2d, timm's BatchNormAct2d, GroupNorm and LayerNorm2d, eval and train."""

import pytest
import torch
from torch import nn
from timm.layers import BatchNormAct2d, LayerNorm2d

from inflate import inflate_model
from inflate.checks import boring_clip
from inflate.testing import randomize_weights
from tests.helpers import assert_boring_equal


@pytest.mark.parametrize(
    "norm",
    [lambda: nn.BatchNorm2d(6), lambda: BatchNormAct2d(6, act_layer=nn.SiLU), lambda: nn.GroupNorm(3, 6),
     lambda: LayerNorm2d(6)],
    ids=["bn", "bn-act", "gn", "ln2d"],
)
def test_norm_boring_equals_2d(norm) -> None:
    model = randomize_weights(nn.Sequential(nn.Conv2d(3, 6, 3), norm()), input_size=(3, 9, 9))
    assert_boring_equal(model, 5, torch.randn(2, 3, 9, 9))


def test_batch_norm_train_mode_statistics_match_2d() -> None:
    # In training, BN over (B, T, H, W) of a boring clip has the batch statistics of the frames.
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6))
    model3d = inflate_model(model, t=4, input_size=(3, 9, 9))
    assert model3d.training
    image = torch.randn(4, 3, 9, 9)
    out2d = model(image)
    out3d = model3d(boring_clip(image, 4))
    torch.testing.assert_close(out3d[:, :, 1], out2d, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model3d[1].running_mean, model[1].running_mean)
