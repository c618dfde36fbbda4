"""F.scaled_dot_product_attention forms of timm attention modules that compute window
attention by hand, so that :class:`~.space_time.JointAttention` can make them span time.

Each class subclasses the timm module and overrides ``forward`` only: the same parameters,
buffers and state-dict keys, the same output (cosine scores become an SDPA whose query is
normalised and multiplied by the logit scale, with ``scale=1``; position biases and shift
masks become the additive ``attn_mask``). :func:`use_sdpa_forms` swaps the class of every
such module inside a (copied) block. Under ``JointAttention`` each window then attends over
the same window in every time slot, its bias tiled over the temporal offsets: on a boring
clip every spatial key appears once per time slot with the same score, so the softmax gives
it the 2D weight and the output is the 2D output.

The same holds for the self-attention of timm's CNN stages (byoanet: HaloNet's halo blocks,
BoTNet's global attention): their relative position logits depend on the query, so the mask
is (B·heads, …, L, S) and ``JointAttention`` tiles each query's own logits over the key time
slots. A halo block then attends to its halo window in every frame.

Importing this module imports timm; :mod:`.handlers.attention` imports it only when timm is
installed. Instances pickle by class name, as any timm module does.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from timm.layers import bottleneck_attn, halo_attn
from timm.models import efficientvit_msra, gcvit, swin_transformer_v2, swin_transformer_v2_cr
from torch import nn

__all__ = ["SDPA_FORMS", "use_sdpa_forms", "SwinV2WindowAttention", "SwinV2CrWindowAttention",
           "EfficientVitCascadedGroupAttention", "GcVitWindowAttentionGlobal", "HaloAttnSdpa", "BottleneckAttnSdpa"]

_MAX_LOGIT_SCALE = math.log(1.0 / 0.01)  # Swin V2's clamp on the learned cosine temperature


def _windowed_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                   mask: Optional[torch.Tensor], dropout_p: float) -> torch.Tensor:
    """Cosine-scored window attention as one SDPA: q already normalised and scaled, ``bias``
    (…, heads, N, N), ``mask`` (windows, N, N) added per window as Swin's shift mask is.
    (B·windows, heads, N, d) in and out."""
    if mask is not None:
        windows = mask.shape[0]
        q, k, v = (t.unflatten(0, (-1, windows)) for t in (q, k, v))  # (B, windows, heads, N, d)
        bias = bias + mask.unsqueeze(1)  # (windows, heads, N, N)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=1.0)
    return out.flatten(0, 1) if mask is not None else out


class SwinV2WindowAttention(swin_transformer_v2.WindowAttention):
    """timm's Swin V2 window attention (``swin_transformer_v2.WindowAttention``) through SDPA:
    scores normalize(q)·exp(clamped logit scale) @ normalize(k)ᵀ, plus 16·sigmoid of the
    continuous position bias and the shift mask. (B·windows, N, C) → (B·windows, N, C)."""

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        windows_batch, tokens, channels = x.shape
        if self.q_bias is None:
            qkv = self.qkv(x)
        else:
            qkv_bias = torch.cat((self.q_bias, self.k_bias, self.v_bias))
            if self.qkv_bias_separate:
                qkv = self.qkv(x) + qkv_bias
            else:
                qkv = F.linear(x, weight=self.qkv.weight, bias=qkv_bias)
        q, k, v = qkv.reshape(windows_batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        logit_scale = torch.clamp(self.logit_scale, max=_MAX_LOGIT_SCALE).exp()  # (heads, 1, 1)
        q, k = F.normalize(q, dim=-1) * logit_scale, F.normalize(k, dim=-1)
        table = self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)
        bias = table[self.relative_position_index.view(-1)].view(tokens, tokens, -1).permute(2, 0, 1)
        bias = 16 * torch.sigmoid(bias)  # (heads, N, N)
        out = _windowed_sdpa(q, k, v, bias, mask, self.attn_drop.p if self.training else 0.0)
        out = out.transpose(1, 2).reshape(windows_batch, tokens, channels)
        return self.proj_drop(self.proj(out))


class SwinV2CrWindowAttention(swin_transformer_v2_cr.WindowMultiHeadAttention):
    """timm's Swin V2-CR window attention (``swin_transformer_v2_cr.WindowMultiHeadAttention``)
    through SDPA: scaled cosine scores, the meta-network position bias and the shift mask.
    (B·windows, N, C) → (B·windows, N, C)."""

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        windows_batch, tokens, channels = x.shape
        qkv = self.qkv(x).view(windows_batch, tokens, 3, self.num_heads, channels // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        logit_scale = torch.clamp(self.logit_scale.reshape(1, self.num_heads, 1, 1), max=_MAX_LOGIT_SCALE).exp()
        q, k = F.normalize(q, dim=-1) * logit_scale, F.normalize(k, dim=-1)
        bias = self._relative_positional_encodings()  # (1, heads, N, N)
        out = _windowed_sdpa(q, k, v, bias, mask, self.attn_drop.p if self.training else 0.0)
        out = out.transpose(1, 2).reshape(windows_batch, tokens, -1)
        return self.proj_drop(self.proj(out))


class EfficientVitCascadedGroupAttention(efficientvit_msra.CascadedGroupAttention):
    """timm's EfficientViT (MSRA) cascaded group attention through SDPA, one call per head:
    each head's input adds the previous head's output (the cascade), its query passes a
    depth-wise conv, the learned bias (N, N) is the additive mask. (B, C, H, W) → (B, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        feats_in = x.chunk(len(self.qkvs), dim=1)
        feats_out = []
        feat = feats_in[0]
        attn_bias = self.get_attention_biases(x.device)
        for head_idx, (qkv, dws) in enumerate(zip(self.qkvs, self.dws)):
            if head_idx > 0:
                feat = feat + feats_in[head_idx]
            q, k, v = qkv(feat).view(batch, -1, height, width).split([self.key_dim, self.key_dim, self.val_dim], dim=1)
            q = dws(q)
            q, k, v = (t.flatten(2).transpose(1, 2) for t in (q, k, v))  # (B, N, d)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias[head_idx], scale=self.scale)
            feat = out.transpose(1, 2).reshape(batch, self.val_dim, height, width)
            feats_out.append(feat)
        return self.proj(torch.cat(feats_out, 1))


class GcVitWindowAttentionGlobal(gcvit.WindowAttentionGlobal):
    """timm's GCViT window attention (``gcvit.WindowAttentionGlobal``) through SDPA: local
    (q, k, v from the window) or global (the image's global query repeated over its windows),
    the relative position bias as the additive mask. (B·windows, N, C) → (B·windows, N, C)."""

    def forward(self, x: torch.Tensor, q_global: Optional[torch.Tensor] = None) -> torch.Tensor:
        windows_batch, tokens, channels = x.shape
        if self.use_global and q_global is not None:
            k, v = self.qkv(x).reshape(windows_batch, tokens, 2, self.num_heads, self.head_dim).permute(
                2, 0, 3, 1, 4).unbind(0)
            # windows are image-major: each image's global query goes with its own windows
            q = q_global.repeat_interleave(windows_batch // q_global.shape[0], dim=0)
            q = q.reshape(windows_batch, tokens, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
        else:
            q, k, v = self.qkv(x).reshape(windows_batch, tokens, 3, self.num_heads, self.head_dim).permute(
                2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.rel_pos.get_bias(),
                                             dropout_p=self.attn_drop.p if self.training else 0.0, scale=self.scale)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(windows_batch, tokens, channels)))


def _position_mask(pos_logits: torch.Tensor, scale: float, scale_pos_embed: bool) -> torch.Tensor:
    """The additive mask of an SDPA with ``scale``: timm's byoanet attentions score
    (q·k + pos)·scale with ``scale_pos_embed``, else q·k·scale + pos."""
    return pos_logits * scale if scale_pos_embed else pos_logits


class HaloAttnSdpa(halo_attn.HaloAttn):
    """timm's halo attention (``timm.layers.halo_attn.HaloAttn``: HaloNet) through SDPA: each
    block_size² query block attends to its (block_size + 2·halo)² window of the zero-padded
    key/value map, the query-dependent relative position logits the additive mask.
    (B, C, H, W) → (B, dim_out, H/stride, W/stride); H and W multiples of ``block_size``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        torch._assert(height % self.block_size == 0 and width % self.block_size == 0,
                      "HaloAttn: height and width must be multiples of block_size")
        h_blocks, w_blocks = height // self.block_size, width // self.block_size
        blocks, ds = h_blocks * w_blocks, self.block_size_ds
        # (B·heads, blocks, block_size_ds², d): the items of the batch stay outermost
        q = self.q(x).reshape(-1, self.dim_head_qk, h_blocks, ds, w_blocks, ds).permute(0, 1, 3, 5, 2, 4)
        q = q.reshape(batch * self.num_heads, self.dim_head_qk, -1, blocks).transpose(1, 3)
        # the overlapping windows by F.unfold (timm's own alternative; its Tensor.unfold does not
        # export to ONNX with dynamic frame sizes): (B, C·win², blocks), channels outermost
        kv = F.unfold(self.kv(x), kernel_size=self.win_size, stride=self.block_size, padding=self.halo_size)
        kv = kv.reshape(batch * self.num_heads, self.dim_head_qk + self.dim_head_v, -1, blocks).permute(0, 3, 2, 1)
        k, v = torch.split(kv, [self.dim_head_qk, self.dim_head_v], dim=-1)  # (B·heads, blocks, win², d)
        mask = _position_mask(self.pos_embed(q), self.scale, self.scale_pos_embed)  # (B·heads, blocks, bs², win²)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale).transpose(1, 3)
        out = out.reshape(-1, ds, ds, h_blocks, w_blocks).permute(0, 3, 1, 4, 2).reshape(
            batch, self.dim_out_v, height // self.block_stride, width // self.block_stride)
        return self.pool(out)


class BottleneckAttnSdpa(bottleneck_attn.BottleneckAttn):
    """timm's bottleneck attention (``timm.layers.bottleneck_attn.BottleneckAttn``: BoTNet) through SDPA: global
    attention over the H·W positions, the query-dependent relative position logits the additive
    mask. (B, C, H, W) → (B, dim_out, H/stride, W/stride); H, W the ``feat_size`` it was built for."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        torch._assert(height == self.pos_embed.height and width == self.pos_embed.width,
                      "BottleneckAttn: the input must have the feat_size it was built for")
        q, k, v = torch.split(self.qkv(x), [self.dim_out_qk, self.dim_out_qk, self.dim_out_v], dim=1)
        # (B·heads, H·W, d): the items of the batch stay outermost
        q, k, v = (t.reshape(batch * self.num_heads, -1, height * width).transpose(-1, -2) for t in (q, k, v))
        mask = _position_mask(self.pos_embed(q), self.scale, self.scale_pos_embed)  # (B·heads, HW, HW)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        return self.pool(out.transpose(-1, -2).reshape(batch, self.dim_out_v, height, width))


#: timm type → its SDPA form (a subclass overriding ``forward`` only).
SDPA_FORMS: dict[type, type] = {
    swin_transformer_v2.WindowAttention: SwinV2WindowAttention,
    swin_transformer_v2_cr.WindowMultiHeadAttention: SwinV2CrWindowAttention,
    efficientvit_msra.CascadedGroupAttention: EfficientVitCascadedGroupAttention,
    gcvit.WindowAttentionGlobal: GcVitWindowAttentionGlobal,
    halo_attn.HaloAttn: HaloAttnSdpa,
    bottleneck_attn.BottleneckAttn: BottleneckAttnSdpa,
}


def use_sdpa_forms(module: nn.Module) -> int:
    """Give every module inside ``module`` (itself included) that has an SDPA form that form's
    class, in place (call it on a copy). Returns how many were changed."""
    changed = 0
    for sub in module.modules():
        form = SDPA_FORMS.get(type(sub))
        if form is not None:
            sub.__class__ = form
            changed += 1
    return changed
