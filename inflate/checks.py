"""The library's invariants, as checks anyone can run on an inflated model.

* Boring video: a clip of one repeated image must give the 2D model's output on it.
* Order sensitivity: reordering a clip's frames must change the output, compared with what
  a different clip changes, or the model is only running frames one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .core.errors import InvalidInputError, ShapeMismatchError
from .core.geometry import check_clip_length

__all__ = ["BoringVideoReport", "OrderReport", "check_boring_video", "check_order_sensitivity", "boring_clip",
           "frame_orders"]

BORING_TOLERANCE = 1e-4
ORDER_TOLERANCE = 1e-2


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
    """How much reordering a clip's frames changes the output, relative to a different clip.

    ``relative_change`` is the largest effect over the reorderings in ``orders`` (a random
    permutation, a cyclic shift, the reversal), each max |out(reordered) − out(clip)| divided
    by max |out(other clip) − out(clip)|: 0 for a model that runs frames independently and
    pools, typically 0.1–1 for an inflated one. ``reversal_change`` is the reversal's figure
    alone (blind for symmetric kernels at odd t). ``skipped`` says why no order test ran
    (t=1: a single frame has no order); a skipped check passes.
    """

    t: int
    relative_change: float
    tolerance: float
    reversal_change: float = float("nan")
    orders: tuple[tuple[str, float], ...] = ()
    skipped: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.skipped) or self.relative_change >= self.tolerance

    def __str__(self) -> str:
        if self.skipped:
            return f"frame order (t={self.t}): skipped, {self.skipped}"
        verdict = "passed" if self.passed else "FAILED (the model ignores frame order)"
        figures = ", ".join(f"{name} {value:.3g}" for name, value in self.orders)
        return (f"frame order (t={self.t}): reordering the frames changes the output by {self.relative_change:.3g} "
                f"of a different clip's effect ({figures}; needs >= {self.tolerance:g}) {verdict}")


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
    check_clip_length(t)
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


def frame_orders(t: int, seed: int = 0) -> list[tuple[str, list[int]]]:
    """The reorderings the order check tries on a t-frame clip: a seeded random permutation
    (never the identity), a cyclic shift by one frame, and the reversal. Empty for t = 1."""
    if t < 2:
        return []
    generator = torch.Generator().manual_seed(seed)
    identity = list(range(t))
    permutation = identity
    while permutation == identity:
        permutation = torch.randperm(t, generator=generator).tolist()
    return [("permutation", permutation), ("shift", identity[1:] + identity[:1]), ("reversal", identity[::-1])]


def check_order_sensitivity(
    model3d: nn.Module,
    clip: Optional[torch.Tensor] = None,
    *,
    t: Optional[int] = None,
    tolerance: float = ORDER_TOLERANCE,
    seed: int = 0,
) -> OrderReport:
    """Does frame order matter? Largest output change over a few reorderings of a clip,
    relative to the change a different clip makes.

    One reordering can be blind: with ``tile`` init and symmetric kernels, a network is
    exactly symmetric under time reversal at odd t, and after a temporally strided stem
    swapping two frames may change nothing; the largest effect over a random permutation,
    a cyclic shift and the reversal is not. A model that runs frames independently and
    averages gives 0 for every reordering.

    Args:
        model3d: the 3D model (run in eval mode).
        clip: (B, C, T, H, W); default a seeded random clip of the model's size and ``t``.
        t: clip length when no clip is given; default the one the model was inflated for.
        tolerance: smallest relative change that passes.

    Returns:
        An :class:`OrderReport`; at T = 1 the check is skipped (and passes) with a note.
    """
    generator = torch.Generator().manual_seed(seed)
    if clip is None:
        if t is None:
            t = getattr(getattr(model3d, "inflation", None), "t", 8)
        check_clip_length(t)
        channels, height, width = _input_size(model3d)
        clip = torch.randn(1, channels, t, height, width, generator=generator)
    if clip.dim() != 5:
        raise ShapeMismatchError("clip for the order check", ("B", "C", "T", "H", "W"), tuple(clip.shape))
    frames = clip.shape[2]
    if frames < 2:
        return OrderReport(frames, 0.0, tolerance, skipped="a one-frame clip has no order to test")
    other = torch.randn(clip.shape, generator=generator, dtype=torch.float32)
    device, dtype = _device_dtype(model3d)
    clip, other = clip.to(device=device, dtype=dtype), other.to(device=device, dtype=dtype)
    reference = _run(model3d, clip)
    scale = float((_run(model3d, other) - reference).abs().max()) or float(reference.abs().max()) or 1.0
    orders = []
    for name, order in frame_orders(frames, seed):
        changed = _run(model3d, clip[:, :, order])
        orders.append((name, float((changed - reference).abs().max()) / scale))
    largest = max(value for _, value in orders)
    return OrderReport(frames, largest, tolerance, reversal_change=dict(orders)["reversal"], orders=tuple(orders))
