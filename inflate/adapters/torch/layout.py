"""Where the time axis sits in each value of a rewritten graph, and the small runtime
functions the rewritten graphs call to move it.

Every tensor of the 2D graph that carries frames is a :class:`Clip` in the 3D graph: the
same tensor with one more axis, time, inserted before 2D axis ``td``. A (B, C, H, W)
feature map becomes (B, C, T, H, W) with ``td = 2``; after ``permute(0, 2, 3, 1)`` it is
(B, T, H, W, C) with ``td = 1``: the time axis travels with the height axis it precedes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ...core.errors import InvalidInputError
from ...core.geometry import axis_to_3d

__all__ = [
    "Clip",
    "dim_to_3d",
    "normalize_dim",
    "check_clip",
    "shape_without_time",
    "insert_time",
    "fold_time",
    "unfold_time",
    "Scores",
    "repeat_axis",
    "softmax_over_time",
    "softmax_over_slots",
    "mean_over_slots",
    "clip_vector_norm",
    "normalize_over_time",
    "fold_time_items",
    "unfold_time_items",
    "unfold_each",
]


@dataclass(frozen=True)
class Clip:
    """A tensor that carries a time axis.

    Attributes:
        td: index of the time axis in the 3D tensor (0..rank2d).
        rank2d: rank of the 2D tensor this one stands for.
        collapsed: the time axis has length 1 because it was pooled away.
        framed: the value of an op run frame by frame, time put before axis 1 as a frame index
            rather than beside a token axis: attention and reductions over tokens do not take
            it for the tokens' time (handlers.matmul, softmax, normalize).
    """

    td: int
    rank2d: int
    collapsed: bool = False
    framed: bool = False

    def with_(self, **changes: object) -> "Clip":
        from dataclasses import replace

        return replace(self, **changes)


@dataclass(frozen=True)
class Scores:
    """Attention scores between the tokens of every time slot: a tensor of the 2D graph's rank
    whose query axis ``q`` and key axis ``k`` hold T·N entries each, time-major (entry t·N + i
    is token i of slot t). ``slots`` is the graph node giving T. ``q`` or ``k`` is None once
    reduced to one entry (``keepdim`` sums that normalise the scores).

    Every entry keeps the 2D graph's value on a boring clip: a reduction over an axis holding
    T copies is the 2D reduction averaged over time (:func:`softmax_over_slots`,
    :func:`mean_over_slots`).
    """

    q: int | None
    k: int | None
    rank2d: int
    slots: object

    def with_(self, **changes: object) -> "Scores":
        from dataclasses import replace

        return replace(self, **changes)


def normalize_dim(dim: int, rank: int) -> int:
    """A possibly negative axis index of a rank-``rank`` tensor as a non-negative one."""
    return dim + rank if dim < 0 else dim


def dim_to_3d(dim: int, clip: Clip) -> int:
    """The 3D index of 2D axis ``dim`` (negative allowed) of a clip tensor."""
    return axis_to_3d(dim, clip.td, clip.rank2d)


# ----- functions called by rewritten graphs at run time -----

def check_clip(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Raise a clear error unless ``x`` is a (B, C, T, H, W) clip with the model's channels."""
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError(
            f"an inflated model takes a (B, C, T, H, W) tensor, got {type(x).__name__}"
        )
    if x.dim() != 5:
        raise InvalidInputError(
            f"an inflated model takes a clip of shape (B, C, T, H, W), got a {x.dim()}D tensor of shape "
            f"{tuple(x.shape)}; for one image use x.unsqueeze(2), for frames stacked as (B, T, C, H, W) "
            "use x.permute(0, 2, 1, 3, 4)"
        )
    if channels > 0 and x.shape[1] != channels:
        raise InvalidInputError(
            f"the clip has {x.shape[1]} channels on axis 1 but the model takes {channels}; "
            "clips are (B, C, T, H, W)"
        )
    return x


def shape_without_time(x: torch.Tensor, td: int) -> torch.Size:
    """The shape ``x`` would have in the 2D graph: its shape with the time axis left out."""
    shape = x.shape
    return torch.Size(tuple(shape[:td]) + tuple(shape[td + 1:]))


def insert_time(shape: Sequence[int] | int, index: int, frames: int) -> list[int]:
    """A reshape target with the time length put in at ``index``."""
    dims = [shape] if isinstance(shape, int) else list(shape)
    dims.insert(index, frames)
    return dims


def fold_time(x: torch.Tensor, td: int) -> torch.Tensor:
    """(B, ..., T at td, ...) → (B·T, ...): frames become batch items."""
    return x.movedim(td, 1).flatten(0, 1)


def unfold_time(y: torch.Tensor, batch: int) -> torch.Tensor:
    """(B·T, ...) → (B, T, ...), undoing :func:`fold_time`."""
    return y.unflatten(0, (batch, -1))


def repeat_axis(x: torch.Tensor, axis: int, times: int) -> torch.Tensor:
    """``x`` repeated ``times`` times along ``axis`` (time-major: entry t·N + i is x[i])."""
    return x.repeat(*[times if d == axis else 1 for d in range(x.dim())])


def softmax_over_slots(x: torch.Tensor, dim: int, slots: int, log: bool = False,
                       dtype: torch.dtype | None = None) -> torch.Tensor:
    """Softmax over an axis holding ``slots`` time slots of N entries, scaled so that each entry
    keeps its 2D value on a boring clip: ``slots`` · softmax (its log: log_softmax + log slots).
    The weights average to the 2D weights over time, and a contraction over that axis divides by
    ``slots`` (:func:`mean_over_slots`)."""
    if log:
        out = torch.log_softmax(x, dim, dtype=dtype)
        return out + torch.log(torch.as_tensor(slots, dtype=out.dtype, device=out.device))
    return torch.softmax(x, dim, dtype=dtype) * slots


def softmax_over_time(x: torch.Tensor, dim: int, time_axis: int, log: bool = False,
                      dtype: torch.dtype | None = None) -> torch.Tensor:
    """Softmax over 3D axis ``dim`` and the time axis ``time_axis`` just before it, jointly
    (:func:`softmax_over_slots`: every slot's entries compete; each keeps its 2D value on a
    boring clip)."""
    slots = x.shape[time_axis]
    out = softmax_over_slots(x.flatten(time_axis, dim), time_axis, slots, log, dtype)
    return out.unflatten(time_axis, (slots, -1))


def mean_over_slots(x: torch.Tensor, slots: int) -> torch.Tensor:
    """A sum over T·N entries (a contraction of the scores with the values) as the mean over time
    of the 2D sums."""
    return x / slots


def clip_vector_norm(x: torch.Tensor, ord: float, dim: Optional[Sequence[int]], keepdim: bool,
                     time_dim: Optional[int], dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """``torch.linalg.vector_norm(x, ord, dim, keepdim)`` of a clip whose axis ``time_dim`` is
    among the reduced ones (None: time is not reduced), divided by T^(1/ord): the ord-power mean
    over frames of each frame's norm, so a clip of one repeated frame gives the 2D norm (GRN's
    spatial norm, taken over space-time). ord 0 counts non-zeros (divided by T); ±inf needs no
    scale."""
    out = torch.linalg.vector_norm(x, ord, dim=None if dim is None else tuple(dim), keepdim=keepdim, dtype=dtype)
    if time_dim is None or math.isinf(ord):
        return out
    frames = x.shape[time_dim]
    return out / frames if ord == 0 else out / frames ** (1.0 / ord)


def normalize_over_time(x: torch.Tensor, p: float, dim: int, time_axis: int, eps: float = 1e-12) -> torch.Tensor:
    """``F.normalize`` over 3D axis ``dim`` and the time axis just before it: divided by the p-norm
    over both as :func:`clip_vector_norm` takes it (the mean over time of the 2D p-th powers), so
    each entry keeps its 2D value on a boring clip."""
    return x / clip_vector_norm(x, p, (time_axis, dim), True, time_axis).clamp_min(eps)


def fold_time_items(x: torch.Tensor, td: int, group: int) -> torch.Tensor:
    """(B·g, ..., T at td, ...) → (B·T·g, ...): :func:`fold_time` for a leading axis that merges
    the batch with ``group`` items per sample, batch-major (HaloNet's blocks, TNT's pixel
    tokens: (B·N, ...)), so that each frame's items stay together as one sample's did."""
    if group == 1:
        return fold_time(x, td)
    return x.movedim(td, 1).unflatten(0, (-1, group)).transpose(1, 2).flatten(0, 2)


def unfold_time_items(y: torch.Tensor, batch: int, group: int) -> torch.Tensor:
    """(B·T·g, ...) → (B·g, T, ...), undoing :func:`fold_time_items`."""
    if group == 1:
        return unfold_time(y, batch)
    return y.unflatten(0, (batch, -1, group)).transpose(1, 2).flatten(0, 1)


def unfold_each(values: Sequence[object], batch: int, groups: Sequence[int | None]) -> tuple:
    """:func:`unfold_time_items` on each tensor of a frame-wise op's tuple output whose group is
    given; the other items (sizes, None) pass unchanged."""
    return tuple(v if g is None else unfold_time_items(v, batch, g) for v, g in zip(values, groups))
