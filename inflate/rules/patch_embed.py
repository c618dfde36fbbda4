"""ViT patch embedding → tubelet embedding: a p×p stride-p conv becomes k_t×p×p with stride k_t."""

from __future__ import annotations

from ..core.rules import Temporal, register_rule
from ..core.spec import InflatedOp, OpSpec, TimeSpec
from ._common import windowed
from .conv import conv_weights


@register_rule("patch_embed", weights=conv_weights, temporal=Temporal("tubelet", stem=True, weighted=True))
def inflate_patch_embed(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Patch embedding: non-overlapping k_t-frame tubelets (ViViT), kernel tiled or centred.
    Tubelets never pad in time, whatever padding an override asks for."""
    return windowed(op, time.with_(padding=(0, 0)))
