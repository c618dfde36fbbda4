"""Attention across time for 2D attention code.

Two ways in, one computation (:func:`joint_sdpa`):

* in a rewritten graph, a ``scaled_dot_product_attention`` node whose query, key and value
  carry time on a leading (batch-like) axis is replaced by :func:`joint_sdpa`;
* a 2D module that is run on frames folded into the batch (a Swin or MaxViT block, BEiT's or
  EVA's attention, a module the non-strict fallback keeps whole with its attention routed
  through SDPA: :func:`~.handlers.attention.joint_whole_module`) runs under
  :class:`JointAttention`, a ``TorchFunctionMode`` that turns each
  ``F.scaled_dot_product_attention`` call inside it into the same joint attention. The module's
  own window partitioning, relative position bias and rotary embedding are left as they are:
  a window becomes a space-time window spanning every time slot (Video Swin's 3D window over
  the whole clip) and a bias (heads, N, N) is tiled over the temporal offsets.

On a boring clip every key appears once per time slot with the same score, so the softmax
gives each spatial key the weight the 2D model gave it and the output is the 2D output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ...core.errors import InvalidInputError, ShapeMismatchError

__all__ = ["joint_sdpa", "JointAttention", "SDPA_ARGUMENTS"]

#: F.scaled_dot_product_attention's positional arguments, in order.
SDPA_ARGUMENTS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale")


def _joint_mask(mask: torch.Tensor, mask_time_dim: int | None, slots: int) -> torch.Tensor:
    """(..., [T,] L, S) → (..., T·L, T·S): entry ((t, i), (t', j)) is mask[..., t, i, j]."""
    # Axis indices are kept non-negative: ONNX export of movedim mishandles negative ones.
    if mask_time_dim is not None:
        mask = mask.movedim(mask_time_dim, mask.dim() - 3)
    else:
        mask = mask.unsqueeze(mask.dim() - 2)
    mask = mask.unsqueeze(mask.dim() - 1)  # (..., T|1, L, 1, S)
    *lead, _, length, _, keys = mask.shape
    return mask.expand(*lead, slots, length, slots, keys).reshape(*lead, slots * length, slots * keys)


def joint_sdpa(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    time_dim: int,
    attn_mask: torch.Tensor | None = None,
    mask_time_dim: int | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` with the time axis ``time_dim`` (a leading axis of
    query, key and value) merged into the token axis: every query attends to the keys of
    every time slot. ``attn_mask`` (without time, or with it at ``mask_time_dim``) is tiled
    over the temporal offsets. Returns the output with time back at ``time_dim``."""
    if isinstance(is_causal, torch.Tensor):  # a model input, as traced for export
        is_causal = bool(is_causal)
    if is_causal:
        raise InvalidInputError("joint space-time attention has no causal form; use attention='frames' or 'divided'")
    rank = query.dim()
    slots, length = query.shape[time_dim], query.shape[rank - 2]
    q, k, v = (t.movedim(time_dim, rank - 3).flatten(rank - 3, rank - 2) for t in (query, key, value))
    if attn_mask is not None:
        attn_mask = _joint_mask(attn_mask, mask_time_dim, slots)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale)
    return out.unflatten(rank - 3, (slots, length)).movedim(rank - 3, time_dim)


class JointAttention(TorchFunctionMode):
    """Within this mode, attention that a 2D module computes on folded frames spans time.

    The module gets a (B·T, ...) batch, frames of one clip next to each other (as
    :func:`layout.fold_time` makes it). Whatever it reshapes the batch into (windows,
    heads), the leading axes of its query keep the clip's items outermost, so they
    split as (B, T, rest): the T frames of one window or head are gathered and attend jointly.
    ``calls`` counts the attention calls turned joint.
    """

    def __init__(self, batch: int, slots: int, where: str = "") -> None:
        super().__init__()
        self.batch, self.slots, self.where, self.calls = batch, slots, where, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        bound = {**dict(zip(SDPA_ARGUMENTS, args)), **kwargs}
        if bound.pop("enable_gqa", False):
            raise InvalidInputError(f"{self.where}: grouped-query attention has no joint space-time form here")
        query, key, value = bound.pop("query"), bound.pop("key"), bound.pop("value")
        leading = query.shape[:-2]
        items = query.shape[:-2].numel()
        group = self.batch * self.slots
        if query.dim() < 3 or items % group or key.shape[:-2] != leading or value.shape[:-2] != leading:
            raise ShapeMismatchError(
                f"query/key/value of the attention in {self.where or 'a frame-wise module'}",
                f"leading axes a multiple of batch×time = {self.batch}×{self.slots}",
                (tuple(query.shape), tuple(key.shape), tuple(value.shape)),
                "joint attention needs the frames of one clip on the leading axes; use attention='frames' here",
            )
        split = (self.batch, self.slots, -1)
        q, k, v = (t.reshape(items, *t.shape[-2:]).unflatten(0, split) for t in (query, key, value))
        mask = bound.pop("attn_mask", None)
        if mask is not None:
            full = torch.broadcast_shapes(mask.shape, (*leading, query.shape[-2], key.shape[-2]))
            mask = mask.expand(full).reshape(items, *full[-2:]).unflatten(0, split)
        self.calls += 1
        out = joint_sdpa(q, k, v, 1, mask, 1 if mask is not None else None, **bound)
        return out.flatten(0, 2).reshape(*leading, *out.shape[-2:])
