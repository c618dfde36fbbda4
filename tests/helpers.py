"""Helpers shared by tests: per-time-step comparison against the 2D op."""

from __future__ import annotations

import torch
from torch import nn

from inflate import inflate_model
from inflate.checks import boring_clip


def assert_boring_equal(module2d: nn.Module, t: int, image: torch.Tensor, atol: float = 1e-5, **kwargs) -> nn.Module:
    """Inflate ``module2d`` and check that a boring clip gives the 2D output at every time step."""
    module2d.eval()
    model3d = inflate_model(module2d, t=t, input_size=tuple(image.shape[1:]), **kwargs).eval()
    with torch.no_grad():
        expected = module2d(image)
        got = model3d(boring_clip(image, t))
    assert got.dim() == expected.dim() + 1, (got.shape, expected.shape)
    for step in range(got.shape[2]):
        torch.testing.assert_close(got[:, :, step], expected, atol=atol, rtol=1e-5)
    return model3d
