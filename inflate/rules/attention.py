"""Self-attention over space-time tokens. Tokens are (B, T', N, C): every time slot keeps its
own copy of the prefix tokens (class, distillation, registers), so on a boring clip every
key appears T' times, the softmax weights are those of the 2D model, and outputs match.
(One shared class token would instead see its own weight diluted by T'.)"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..core.rules import register_rule
from ..core.spec import InflatedOp, OpSpec, TimeSpec
from ._common import pointwise_in_time


def temporal_branch_weights(weights: Mapping[str, np.ndarray], width: int) -> dict[str, np.ndarray]:
    """The weights "divided" attention adds: a temporal attention copying the spatial one
    (TimeSformer) and an output projection ``temporal_fc`` that starts at zero, so the block
    starts as the image model."""
    dtype = next(iter(weights.values())).dtype if weights else np.float32
    out = {f"temporal_attn.{name}": np.array(value, copy=True) for name, value in weights.items()}
    out["temporal_fc.weight"] = np.zeros((width, width), dtype)
    out["temporal_fc.bias"] = np.zeros((width,), dtype)
    return out


@register_rule("attention")
def inflate_attention(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Attention: joint over space-time tokens, divided (temporal then spatial), or per frame."""
    return pointwise_in_time(op, time)
