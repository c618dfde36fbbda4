"""timm's window_reverse functions (untraceable in timm) where one window covers the map: a layout
within each frame, run per frame as declared; with several windows the enclosing block runs whole."""

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


def test_several_windows_fall_back_to_the_enclosing_module() -> None:
    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = OneWindow(windows=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

    model2d = Wrapped().eval()
    with pytest.warns(UserWarning, match="frame by frame as a whole"):
        model3d, report = inflate_model(model2d, t=4, input_size=(3, 8, 8), return_report=True)
    assert [r.path for r in report.frame_wise] == ["body"]
    assert check_boring_video(model2d, model3d, t=4, image=torch.randn(1, 3, 8, 8)).passed
