"""F.group_norm called in a forward (timm's GroupNorm1: MetaFormer/PoolFormer, SHViT) inflates as
nn.GroupNorm does: statistics over (C/G, T, H, W), no frame-wise fallback, exact on boring clips,
and equal to F.group_norm computed on the clip independently."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from inflate import check_boring_video, inflate_model
from inflate.testing import randomize_weights


class GroupNormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.weight = nn.Parameter(torch.randn(8))
        self.bias = nn.Parameter(torch.randn(8))
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.group_norm(self.conv(x), 2, self.weight, self.bias, 1e-5)
        return self.fc(x.mean((2, 3)))


def test_functional_group_norm_inflates() -> None:
    torch.manual_seed(0)
    model2d = randomize_weights(GroupNormNet().eval(), input_size=(3, 12, 12))
    model3d, report = inflate_model(model2d, t=4, input_size=(3, 12, 12), return_report=True)
    assert report.frame_wise == ()
    assert check_boring_video(model2d, model3d, t=4).passed
    clip = torch.randn(2, 3, 4, 12, 12)
    with torch.no_grad():
        features = model3d.conv(clip)
        expected = model3d.fc(F.group_norm(features, 2, model3d.weight, model3d.bias, 1e-5).mean((2, 3, 4)))
        torch.testing.assert_close(model3d(clip), expected, rtol=1e-5, atol=1e-5)
