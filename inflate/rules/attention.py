"""Self-attention over space-time tokens. Tokens are (B, T', N, C): every time slot keeps its
own copy of the prefix tokens (class, distillation, registers), so on a boring clip every
key appears T' times, the softmax weights are those of the 2D model, and outputs match.
(One shared class token would instead see its own weight diluted by T'.)

"divided" attention (TimeSformer) adds a temporal attention before the spatial one. Its
query/key/value and output projections start as copies of the spatial attention's, read
from whichever layout the 2D attention stores them in; its output goes through
``temporal_fc``, which starts at zero, so the inflated block starts as the image block.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..core.rules import register_rule
from ..core.spec import InflatedOp, OpSpec, TimeSpec
from ._common import pointwise_in_time

# How 2D attentions store their input projections, tried in order: fused, split in two, separate.
_PROJECTION_LAYOUTS = (("qkv",), ("q", "kv"), ("qk", "v"), ("q_proj", "k_proj", "v_proj"), ("q", "k", "v"))
_OUTPUT_NAMES = ("proj", "out_proj", "o_proj")


def _matrix(weights: Mapping[str, np.ndarray], name: str) -> np.ndarray | None:
    """A Linear weight, or a 1×1 convolution's weight as a matrix."""
    weight = weights.get(f"{name}.weight")
    if weight is None or weight.ndim < 2 or any(size != 1 for size in weight.shape[2:]):
        return None
    return weight.reshape(weight.shape[:2])


def plain_attention_weights(weights: Mapping[str, np.ndarray], width: int) -> dict[str, np.ndarray] | None:
    """Fused ``qkv`` and ``proj`` weights (timm's ``Attention`` layout, ``width`` channels in and
    out) copied from a 2D attention's weights, or None when they cannot be read as such.

    Accepted: fused ``qkv``, ``q`` + ``kv``, ``qk`` + ``v``, separate ``q``/``k``/``v`` (or
    ``*_proj``), with their biases or BEiT/EVA-style ``q_bias``/``k_bias``/``v_bias`` (a missing
    key bias is zero); Linear or 1×1 convolution weights.
    """
    dtype = next(iter(weights.values())).dtype if weights else np.float32
    for names in _PROJECTION_LAYOUTS:
        matrices = [_matrix(weights, name) for name in names]
        if any(m is None for m in matrices):
            continue
        qkv = np.concatenate(matrices, axis=0)
        if qkv.shape != (3 * width, width):
            return None
        biases = [weights.get(f"{name}.bias") for name in names]
        if all(b is None for b in biases):
            split = [weights.get(f"{part}_bias") for part in "qkv"]
            bias = np.concatenate([b if b is not None else np.zeros(width, dtype) for b in split])
        else:
            bias = np.concatenate([b if b is not None else np.zeros(m.shape[0], dtype)
                                   for b, m in zip(biases, matrices)])
        for out_name in _OUTPUT_NAMES:
            proj = _matrix(weights, out_name)
            if proj is not None and proj.shape == (width, width):
                proj_bias = weights.get(f"{out_name}.bias")
                return {
                    "qkv.weight": np.array(qkv, copy=True), "qkv.bias": bias.astype(dtype, copy=True),
                    "proj.weight": np.array(proj, copy=True),
                    "proj.bias": np.array(proj_bias, copy=True) if proj_bias is not None else np.zeros(width, dtype),
                }
        return None
    return None


def temporal_branch_weights(weights: Mapping[str, np.ndarray], width: int) -> dict[str, np.ndarray]:
    """The weights "divided" attention adds: ``temporal_attn.*`` (a plain attention copying the
    spatial one's projections, absent when they cannot be read) and ``temporal_fc.*`` (zero)."""
    dtype = next(iter(weights.values())).dtype if weights else np.float32
    plain = plain_attention_weights(weights, width) or {}
    out = {f"temporal_attn.{name}": value for name, value in plain.items()}
    out["temporal_fc.weight"] = np.zeros((width, width), dtype)
    out["temporal_fc.bias"] = np.zeros((width,), dtype)
    return out


@register_rule("attention")
def inflate_attention(op: OpSpec, time: TimeSpec) -> InflatedOp:
    """Attention: joint over space-time tokens, divided (temporal then spatial), or per frame."""
    return pointwise_in_time(op, time)
