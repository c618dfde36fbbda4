"""timm's window_reverse functions (untraceable in timm): a layout within each frame, run per frame
as declared, with one window covering the map or several windows merged into the batch axis."""

import warnings

import pytest
import torch
from torch import nn

from inflate import check_boring_video, inflate_model

timm = pytest.importorskip("timm")
from timm.models.swin_transformer import window_reverse  # noqa: E402  (fx wraps it by its global name)


class OneWindow(nn.Module):
    def __init__(self, windows: int = 1) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.windows = windows
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.stem(x).permute(0, 2, 3, 1)  # (B, H, W, C)
        b, h, w, c = maps.shape
        size = h // self.windows
        windows = maps.view(b, self.windows, size, self.windows, size, c).permute(0, 1, 3, 2, 4, 5)
        windows = windows.reshape(-1, size, size, c)
        back = window_reverse(windows * 2.0, (size, size), h, w)
        return self.head(back.mean(dim=(1, 2)))


def test_one_window_reverses_per_frame() -> None:
    model2d = OneWindow().eval()
    model3d, report = inflate_model(model2d, t=4, strict=True, input_size=(3, 8, 8), return_report=True)
    record = next(r for r in report.layers if "window_reverse" in r.path)
    assert record.how == "per-frame"
    assert check_boring_video(model2d, model3d, t=4, image=torch.randn(1, 3, 8, 8)).passed


def test_several_windows_reverse_per_frame_too() -> None:
    """With several windows the leading axis holds each image's windows batch-major (B·windows):
    time folds in beside each sample's windows, and window_reverse still runs per frame."""
    model2d = OneWindow(windows=2).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the window partition's reshape runs frame-wise
        model3d, report = inflate_model(model2d, t=4, input_size=(3, 8, 8), return_report=True)
    assert any("window_reverse" in r.path and r.how == "per-frame" for r in report.layers)
    assert check_boring_video(model2d, model3d, t=4, image=torch.randn(1, 3, 8, 8)).passed


from timm.models.crossvit import scale_image  # noqa: E402  (fx wraps it by its global name)


class TwoScales(nn.Module):
    """CrossViT's second branch reads the image resized by scale_image (untraceable in timm)."""

    def __init__(self) -> None:
        super().__init__()
        self.small, self.large = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.small(x).mean(dim=(2, 3))
        b = self.large(scale_image(x, (6, 6))).mean(dim=(2, 3))
        return self.head(torch.cat([a, b], dim=1))


def test_scale_image_resizes_each_frame() -> None:
    model2d = TwoScales().eval()
    model3d, report = inflate_model(model2d, t=4, strict=True, input_size=(3, 8, 8), return_report=True)
    assert any("scale_image" in r.path and r.how == "per-frame" for r in report.layers)
    assert check_boring_video(model2d, model3d, t=4, image=torch.randn(1, 3, 8, 8)).passed


class SlidingBlocks(nn.Module):
    """VOLO-style: nn.Unfold's 3×3 blocks weighted, summed back by nn.Fold."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.unfold, self.fold = nn.Unfold(3, padding=1), nn.Fold((6, 6), 3, padding=1)
        self.weights = nn.Parameter(torch.randn(1, 4 * 9, 1))
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = self.unfold(self.stem(x)) * self.weights  # (B, C·9, H·W)
        return self.head(self.fold(blocks).mean(dim=(2, 3)))


def test_unfold_and_fold_run_per_frame() -> None:
    model2d = SlidingBlocks().eval()
    model3d, report = inflate_model(model2d, t=4, strict=True, input_size=(3, 6, 6), return_report=True)
    assert {r.path for r in report.layers if r.how == "per-frame"} >= {"unfold", "fold"}
    assert check_boring_video(model2d, model3d, t=4, image=torch.randn(1, 3, 6, 6)).passed


def test_hiera_unroll_reorders_tokens_per_frame() -> None:
    """Hiera's Unroll moves strided patches through the batch axis to make its mask units and
    pooling windows reshapes: a token order within each frame, run per frame as declared. The
    mask-unit and global attention after it then attend across time (the query-pooling ones as
    whole modules), and the model is exact on a
    boring clip and sensitive to the frames' order."""
    from timm.models.hiera import Hiera

    from inflate import check_order_sensitivity
    from inflate.testing import randomize_weights

    torch.manual_seed(0)
    model2d = Hiera(img_size=64, embed_dim=16, num_heads=1, stages=(1, 1, 1, 1), num_classes=5).eval()
    model2d = randomize_weights(model2d, seed=1)  # timm zeroes the head: every clip would give the same logits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the query-pooling mask-unit attention is made joint as a whole module
        model3d, report = inflate_model(model2d, t=4, input_size=(3, 64, 64), return_report=True)
    assert [r.how for r in report.layers if r.path == "unroll"] == ["per-frame"]
    assert not [r for r in report.layers if r.how == "frame-wise"]
    image = torch.randn(1, 3, 64, 64)
    assert check_boring_video(model2d, model3d, t=4, image=image).passed
    assert check_order_sensitivity(model3d, torch.randn(1, 3, 4, 64, 64)).relative_change > 0.01
