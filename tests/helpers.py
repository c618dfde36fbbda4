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


def boring_tolerance(model2d: nn.Module, input_size: tuple[int, int, int], seed: int = 0) -> float:
    """Issue 13's bound on the boring-video error: max(1e-4, 10 × the 2D model's own float32 vs
    float64 difference, relative to its largest output), on check_boring_video's seeded image."""
    import copy

    image = torch.randn(1, *input_size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out32 = model2d.eval()(image).double()
        out64 = copy.deepcopy(model2d).double().eval()(image.double())
    return max(1e-4, 10 * float((out32 - out64).abs().max() / out64.abs().max()))
