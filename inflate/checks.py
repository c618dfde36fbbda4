"""The library's invariants, as checks anyone can run on an inflated model.

* Boring video: a clip of one repeated image must give the 2D model's output on it.
* Order sensitivity: reversing a clip must change the output, or the model is only
  running frames one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .core.errors import InvalidInputError, ShapeMismatchError

__all__ = ["BoringVideoReport", "OrderReport", "check_boring_video", "check_order_sensitivity", "boring_clip"]

BORING_TOLERANCE = 1e-4
ORDER_TOLERANCE = 1e-3


@dataclass(frozen=True)
class BoringVideoReport:
    """Max |out_3d − out_2d| over all outputs, absolute and relative to max |out_2d|."""

    t: int
    max_abs_error: float
    max_abs_2d: float
    tolerance: float

    @property
    def max_rel_error(self) -> float:
        return self.max_abs_error / self.max_abs_2d if self.max_abs_2d > 0 else self.max_abs_error

    @property
    def passed(self) -> bool:
        return self.max_rel_error <= self.tolerance

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (f"boring video (t={self.t}): max |Δ| = {self.max_abs_error:.3g}, "
                f"relative {self.max_rel_error:.3g} (tolerance {self.tolerance:g}) {verdict}")


@dataclass(frozen=True)
class OrderReport:
    """Relative change of the output when the clip's frames are reversed."""

    t: int
    relative_change: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.relative_change >= self.tolerance

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED (the model ignores frame order)"
        return (f"frame order (t={self.t}): reversing the clip changes the output by "
                f"{self.relative_change:.3g} relative (needs >= {self.tolerance:g}) {verdict}")


def _input_size(model: nn.Module) -> tuple[int, int, int]:
    settings = getattr(model, "inflation", None)
    if settings is not None:
        return tuple(settings.input_size)  # type: ignore[return-value]
    from .adapters.torch import default_input_size

    return default_input_size(model)


def _first_tensor(output: object) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if isinstance(output, dict) and output:
        return _first_tensor(next(iter(output.values())))
    raise InvalidInputError(f"the model returned {type(output).__name__}; checks need a tensor output")


def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters(), None)
    return (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)


def boring_clip(image: torch.Tensor, t: int) -> torch.Tensor:
    """(B, C, H, W) images → (B, C, t, H, W) clips of each image repeated ``t`` times."""
    return image.unsqueeze(2).expand(-1, -1, t, -1, -1).contiguous()


@torch.no_grad()
def _run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        return _first_tensor(model(x)).float()
    finally:
        model.train(was_training)


def check_boring_video(
    model2d: nn.Module,
    model3d: nn.Module,
    t: Optional[int] = None,
    image: Optional[torch.Tensor] = None,
    *,
    tolerance: float = BORING_TOLERANCE,
    seed: int = 0,
) -> BoringVideoReport:
    """Compare the 3D model on a repeated-frame clip with the 2D model on the frame.

    Args:
        model2d, model3d: the image model and its inflation (both run in eval mode).
        t: clip length; default the one the model was inflated for.
        image: (C, H, W) or (B, C, H, W) image; default a seeded random one of the model's size.
        tolerance: largest allowed max |Δ| / max |out_2d|.
    """
    if t is None:
        t = getattr(getattr(model3d, "inflation", None), "t", 8)
    if isinstance(t, bool) or not isinstance(t, int) or t < 1:
        raise InvalidInputError(f"t must be an integer >= 1, got {t!r}")
    device, dtype = _device_dtype(model3d)
    if image is None:
        generator = torch.Generator().manual_seed(seed)
        image = torch.randn(1, *_input_size(model3d), generator=generator)
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4:
        raise ShapeMismatchError("image for the boring-video check", ("C", "H", "W"), tuple(image.shape))
    image = image.to(device=device, dtype=dtype)
    out2d = _run(model2d, image)
    out3d = _run(model3d, boring_clip(image, t))
    if out2d.shape != out3d.shape:
        raise ShapeMismatchError("3D output on a boring video", tuple(out2d.shape), tuple(out3d.shape),
                                 "the 3D model should return what the 2D model returns")
    return BoringVideoReport(t, float((out3d - out2d).abs().max()), float(out2d.abs().max()), tolerance)


def check_order_sensitivity(
    model3d: nn.Module,
    clip: Optional[torch.Tensor] = None,
    *,
    t: Optional[int] = None,
    tolerance: float = ORDER_TOLERANCE,
    seed: int = 0,
) -> OrderReport:
    """Relative change max |out(reversed) − out(clip)| / max |out(clip)| on a non-boring clip.

    A model that runs frames independently and averages gives 0. Note that with ``tile``
    init and stride-1 odd temporal kernels a network is exactly symmetric under time
    reversal; the I3D policy's temporal stride in the first conv (as in I3D) breaks that.
    """
    if clip is None:
        if t is None:
            t = getattr(getattr(model3d, "inflation", None), "t", 8)
        generator = torch.Generator().manual_seed(seed)
        channels, height, width = _input_size(model3d)
        clip = torch.randn(1, channels, t, height, width, generator=generator)
    if clip.dim() != 5:
        raise ShapeMismatchError("clip for the order check", ("B", "C", "T", "H", "W"), tuple(clip.shape))
    device, dtype = _device_dtype(model3d)
    clip = clip.to(device=device, dtype=dtype)
    forward = _run(model3d, clip)
    backward = _run(model3d, clip.flip(2))
    scale = float(forward.abs().max()) or 1.0
    return OrderReport(clip.shape[2], float((backward - forward).abs().max()) / scale, tolerance)
