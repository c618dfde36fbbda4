"""Joint space-time forms of timm attention modules that compute attention by hand (no
F.scaled_dot_product_attention call to make joint). Each takes the 2D module and (B, T', N, C)
tokens and returns (B, T', N', C'): every query attends to the keys of all T' time slots, and
position terms that know only spatial offsets are tiled over the temporal offsets, so on a
boring clip each spatial key keeps its 2D weight, split over its T' copies."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

__all__ = ["JOINT_FORMS", "gated_positional_joint", "levit_joint", "mvit_joint"]


def gated_positional_joint(gpsa: nn.Module, x: torch.Tensor, *args: object) -> torch.Tensor:
    """ConViT's gated positional self-attention (timm ``GPSA``): content scores span all T'·N
    keys; the positional scores are spread evenly over the T' time slots (each divided by T')."""
    batch, slots, tokens, dim = x.shape
    heads = gpsa.num_heads
    if gpsa.rel_indices is None or gpsa.rel_indices.shape[1] != tokens:
        gpsa.rel_indices = gpsa.get_rel_indices(tokens)
    flat = x.reshape(batch, slots * tokens, dim)
    q, k = gpsa.qk(flat).reshape(batch, slots * tokens, 2, heads, dim // heads).permute(2, 0, 3, 1, 4).unbind(0)
    content = ((q @ k.transpose(-2, -1)) * gpsa.scale).softmax(dim=-1)  # (B, heads, T'N, T'N)
    position = gpsa.pos_proj(gpsa.rel_indices.expand(batch, -1, -1, -1)).permute(0, 3, 1, 2).softmax(dim=-1)
    position = (position / slots).repeat(1, 1, slots, slots)  # entry ((t, i), (t', j)) = pos[i, j] / T'
    gate = torch.sigmoid(gpsa.gating_param.view(1, -1, 1, 1))
    attn = (1.0 - gate) * content + gate * position
    attn = gpsa.attn_drop(attn / attn.sum(dim=-1, keepdim=True))
    v = gpsa.v(flat).reshape(batch, slots * tokens, heads, dim // heads).permute(0, 2, 1, 3)
    out = (attn @ v).transpose(1, 2).reshape(batch, slots * tokens, dim)
    return gpsa.proj_drop(gpsa.proj(out)).reshape(batch, slots, tokens, dim)


def _across_slots(t: torch.Tensor, batch: int) -> torch.Tensor:
    """(B·T', L, heads, d) per-frame heads → (B, heads, T'·L, d)."""
    folded, length, heads, dim = t.shape
    return t.reshape(batch, folded // batch, length, heads, dim).permute(0, 3, 1, 2, 4).flatten(2, 3)


def levit_joint(attn: nn.Module, x: torch.Tensor, *args: object) -> torch.Tensor:
    """LeViT's attention (timm ``levit.Attention`` and ``AttentionDownsample``, token mode):
    projections per frame (their BatchNorm1d works on tokens), scores over all T'·N keys, the
    learned bias (heads, L, N) tiled over the temporal offsets."""
    batch, slots = x.shape[:2]
    folded = x.flatten(0, 1)  # (B·T', N, C)
    tokens, heads, key_dim = folded.shape[1], attn.num_heads, attn.key_dim
    if hasattr(attn, "qkv"):
        q, k, v = attn.qkv(folded).view(*folded.shape[:2], heads, -1).split([key_dim, key_dim, attn.val_dim], dim=3)
    else:  # AttentionDownsample: queries on a subsampled grid
        k, v = attn.kv(folded).view(*folded.shape[:2], heads, -1).split([key_dim, attn.val_dim], dim=3)
        q = attn.q(folded).view(folded.shape[0], -1, heads, key_dim)
    length = q.shape[1]
    q, k, v = (_across_slots(t, batch) for t in (q, k, v))
    bias = attn.get_attention_biases(x.device).repeat(1, slots, slots)  # (heads, T'L, T'N)
    scores = (q @ k.transpose(-2, -1) * attn.scale + bias).softmax(dim=-1)
    out = (scores @ v).unflatten(2, (slots, length)).permute(0, 2, 3, 1, 4)  # (B, T', L, heads, dv)
    out = attn.proj(out.reshape(batch * slots, length, -1))
    return out.unflatten(0, (batch, slots))


def _mvit_pooled(attn: nn.Module, name: str, t: torch.Tensor, feat_size: list[int]) -> tuple[torch.Tensor, list[int]]:
    from timm.models.mvitv2 import reshape_post_pool, reshape_pre_pool

    pool, norm, size = getattr(attn, f"pool_{name}"), getattr(attn, f"norm_{name}"), feat_size
    if pool is not None:
        t, token = reshape_pre_pool(t, feat_size, attn.has_cls_token)
        t, size = reshape_post_pool(pool(t), attn.num_heads, token)
    return (norm(t) if norm is not None else t), size


def mvit_joint(attn: nn.Module, x: torch.Tensor, feat_size: list[int]) -> tuple[torch.Tensor, list[int]]:
    """MViTv2's pooling attention (timm ``mvitv2.MultiScaleAttention``): q, k, v projected and
    pooled per frame, scores over the pooled keys of all T' slots, the decomposed relative
    position term (which depends on the query and the key's spatial offset) tiled over the
    key's time slot. Returns (tokens, pooled query size) as the 2D module does."""
    from timm.models.mvitv2 import cal_rel_pos_type

    from .space_time import joint_sdpa

    batch, slots, tokens, _ = x.shape
    folded = x.flatten(0, 1)
    q, k, v = attn.qkv(folded).reshape(folded.shape[0], tokens, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    q, q_size = _mvit_pooled(attn, "q", q, feat_size)
    k, k_size = _mvit_pooled(attn, "k", k, feat_size)
    v, _ = _mvit_pooled(attn, "v", v, feat_size)
    bias = None
    if attn.rel_pos_type == "spatial":  # the position term alone, per frame: (B·T', heads, Lq, Lk)
        zeros = q.new_zeros(*q.shape[:-1], k.shape[-2])
        bias = cal_rel_pos_type(zeros, q, attn.has_cls_token, q_size, k_size, attn.rel_pos_h, attn.rel_pos_w)
        bias = bias.unflatten(0, (batch, slots))
    out = joint_sdpa(*(t.unflatten(0, (batch, slots)) for t in (q, k, v)), 1, attn_mask=bias,
                     mask_time_dim=1 if bias is not None else None, scale=attn.scale).flatten(0, 1)
    if attn.residual_pooling:
        out = out + q
    out = attn.proj(out.transpose(1, 2).reshape(folded.shape[0], -1, attn.dim_out))
    return out.unflatten(0, (batch, slots)), q_size


JOINT_FORMS: dict[str, Callable[..., object]] = {
    "gpsa": gated_positional_joint,
    "levit": levit_joint,
    "mvit": mvit_joint,
}
