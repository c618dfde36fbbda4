"""timm blocks kept whole by the tracer (a leaf: timm marks them untraceable, or their reshapes
fold space into the batch) that have a 3D form built from their parts:

- CSATv2's ``LearnableDct2d`` stem → :class:`LearnableDct3d`: the fixed block DCT per frame, its
  three 1×1 convs inflated as the stem's;
- MobileNetV5's ``MobileNetV5MultiScaleFusionAdapter`` → :class:`MultiScaleFusion3d`: the resizes in
  3D (time kept), its inner block and norm inflated by a nested conversion under the same policy;
- NaFlexViT's ``NaFlexEmbeds`` with a linear projection of patchified images →
  :class:`NaFlexEmbeds3d`: the linear layer is a p×p conv with stride p in disguise, so it becomes
  a tubelet (:class:`~..modules.PatchEmbed3d`); its norm, position embedding and prefix tokens
  apply to each time slot as in 2D; its ``global_pool_naflex`` without a validity mask pools the
  tokens of all time slots (:func:`pool_tokens_over_slots`).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn

from .. import modules as m3d
from ..layout import Clip
from ..registry import handles
from ..rewriter import HandlerResult, LayerRecord, ModuleResult, Rewriter, node_path
from .conv import inflate_conv_module

__all__ = ["register_timm_blocks", "LearnableDct3d", "MultiScaleFusion3d", "NaFlexEmbeds3d", "pool_tokens_over_slots"]

#: the token pools of timm's global_pool_nlc that have a form over time slots
TOKEN_POOLS = ("token", "avg", "max", "avgmax")


class LearnableDct3d(nn.Module):
    """CSATv2's DCT stem on a (B, 3, T, H, W) clip → (B, C_out, T', H/k, W/k).

    ``dct`` is the 2D stem with its three 1×1 convs taken out (identities): what is left (RGB to
    YCbCr, the k×k block DCT, zig-zag order, frequency normalisation) is a fixed transform of
    each frame, from buffers only, with no kernel to inflate, so it runs on the frames folded into
    the batch; ``conv_y``, ``conv_cb`` and ``conv_cr`` are the inflated 1×1 convs (the stem's time
    kernel and stride), applied to the (B, k², T, H/k, W/k) coefficients of each colour channel.
    """

    def __init__(self, dct: nn.Module, conv_y: nn.Module, conv_cb: nn.Module, conv_cr: nn.Module) -> None:
        super().__init__()
        self.dct = dct
        self.conv_y, self.conv_cb, self.conv_cr = conv_y, conv_cb, conv_cr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coefficients = m3d.unfold_frames(self.dct(m3d.fold_frames(x)), x.shape[0])  # (B, 3·k², T, h, w)
        y, cb, cr = coefficients.chunk(3, dim=1)
        return torch.cat([self.conv_y(y), self.conv_cb(cb), self.conv_cr(cr)], dim=1)


class MultiScaleFusion3d(nn.Module):
    """MobileNetV5's multi-scale fusion adapter on clips: (B, C_i, T, H_i, W_i) maps → (B, C_out, T, h, w).

    Each map smaller than the first is resized to the first's frame size (time kept: "nearest" or
    "trilinear" at time scale 1 leaves frames apart), the maps are joined on channels and go
    through ``ffn`` (the inflated inner block); the result is pooled (a (1, s_h, s_w) window) or
    resized to ``output_resolution`` as the 2D adapter does, then ``norm`` (inflated).
    """

    def __init__(self, ffn: nn.Module, norm: nn.Module, output_resolution: Sequence[int], mode: str) -> None:
        super().__init__()
        self.ffn, self.norm = ffn, norm
        self.output_resolution = (int(output_resolution[0]), int(output_resolution[1]))
        self.mode = mode

    def _resize(self, x: torch.Tensor, size: Sequence[int], mode: str) -> torch.Tensor:
        mode3d = {"bilinear": "trilinear", "linear": "trilinear"}.get(mode, mode)
        return F.interpolate(x, size=(x.shape[2], int(size[0]), int(size[1])), mode=mode3d)

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        high = inputs[0].shape[-2:]
        resized = [self._resize(x, high, self.mode) if x.shape[-2] < high[0] or x.shape[-1] < high[1] else x
                   for x in inputs]
        x = self.ffn(torch.cat(resized, dim=1))
        out_h, out_w = self.output_resolution
        if (high[0], high[1]) != (out_h, out_w):
            if high[0] % out_h or high[1] % out_w:
                x = self._resize(x, (out_h, out_w), "bilinear")
            else:
                window = (1, high[0] // out_h, high[1] // out_w)
                x = F.avg_pool3d(x, window, window)
        return self.norm(x)


class NaFlexEmbeds3d(nn.Module):
    """NaFlexViT's patch embedding (timm ``NaFlexEmbeds``, linear projection, image input) on a
    (B, C, T, H, W) clip → ((B, T', P + N, D) tokens, (h, w) grid size), T' = T / k_t.

    ``tubelet`` is the :class:`~..modules.PatchEmbed3d` made from the linear projection (its
    weight read as the p×p conv it computes on each patch, inflated as the stem's patch
    embedding, with the zero temporal embedding). ``embeds`` is the 2D module without its
    projection: its norm, position embedding (learned or factorised, for the (h, w) grid), class
    and register tokens and dropout are applied to every time slot, so each slot carries its own
    prefix tokens, as a 2D frame does.
    """

    def __init__(self, embeds: nn.Module, tubelet: nn.Module) -> None:
        super().__init__()
        self.embeds, self.tubelet = embeds, tubelet

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        tokens = self.tubelet(x)  # (B, T', N, D)
        batch, slots = tokens.shape[:2]
        grid = (x.shape[-2] // self.tubelet.patch_size[0], x.shape[-1] // self.tubelet.patch_size[1])
        e = self.embeds
        x = e.norm(tokens.flatten(0, 1))  # (B·T', N, D)
        if e.pos_embed_type == "learned":
            x = x + 0  # the position embeddings add in place
            e._apply_learned_pos_embed(x, grid_size=grid)
        elif e.pos_embed_type == "factorized":
            x = x + 0
            e._apply_factorized_pos_embed(x, grid_size=grid)
        prefix = [t.expand(x.shape[0], -1, -1) for t in (e.cls_token, e.reg_token) if t is not None]
        if prefix:
            x = torch.cat(prefix + [x], dim=1)
        return e.pos_drop(x).unflatten(0, (batch, slots)), grid


def pool_tokens_over_slots(x: torch.Tensor, pool_type: str, num_prefix_tokens: int,
                           reduce_include_prefix: bool) -> torch.Tensor:
    """timm's token pooling (``global_pool_nlc``) of (B, T', L, D) tokens over all time slots →
    (B, D): "avg", "max" and "avgmax" reduce the T'·L tokens (each slot's prefix tokens left out
    unless ``reduce_include_prefix``), "token" averages the slots' class tokens. On a boring clip
    each is the 2D pool."""
    if pool_type == "token":
        return x[:, :, 0].mean(dim=1)
    if not reduce_include_prefix:
        x = x[:, :, num_prefix_tokens:]
    tokens = x.flatten(1, 2)  # (B, T'·N, D)
    if pool_type == "avg":
        return tokens.mean(dim=1)
    if pool_type == "max":
        return tokens.amax(dim=1)
    return 0.5 * (tokens.amax(dim=1) + tokens.mean(dim=1))


def _linear_as_conv(linear: nn.Linear, channels: int, patch: tuple[int, int], channels_last: bool) -> nn.Conv2d:
    """The p×p conv with stride p that a linear layer on flattened patches computes: the weight's
    columns in the patch's flat order, (p_h, p_w, C) or (C, p_h, p_w), read as a (D, C, p_h, p_w) kernel."""
    weight = linear.weight.detach()
    if channels_last:
        kernel = weight.reshape(-1, patch[0], patch[1], channels).permute(0, 3, 1, 2)
    else:
        kernel = weight.reshape(-1, channels, patch[0], patch[1])
    conv = nn.Conv2d(channels, weight.shape[0], patch, stride=patch, bias=linear.bias is not None,
                     device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(kernel)
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def _nested(rw: Rewriter, prefix: str, module: nn.Module, input_size: tuple[int, int, int]) -> nn.Module:
    """``module`` inflated by a conversion of its own, under this conversion's policy as if its ops sat
    at ``prefix`` + their path (overrides and roles; its first conv is no stem of the model), its
    report lines added to this one's."""
    outer = rw.policy

    def as_placed(op: Any, proposed: Any) -> Any:
        path = f"{prefix}.{op.path}"
        return outer.time_for(dataclasses.replace(op, path=path, role=rw.role(path)))

    model3d, report = rw.nested(module, t=rw.t, policy=outer.with_(overrides=as_placed), strict=rw.strict,
                                    input_size=input_size, return_report=True)
    for record in report.layers:
        rw.note(dataclasses.replace(record, path=f"{prefix}.{record.path}"))
    return model3d


def register_timm_blocks() -> None:
    """Register the handlers of the blocks above (those the installed timm has)."""
    import importlib

    # by module path: ``timm.models.csatv2`` as an attribute is the model's entry-point function
    csatv2 = importlib.import_module("timm.models.csatv2")
    mobilenetv5 = importlib.import_module("timm.models.mobilenetv5")

    @handles("conv", csatv2.LearnableDct2d)
    def learnable_dct(rw: Rewriter, node: fx.Node) -> HandlerResult:
        module = rw.submodule(node)
        x, clip = rw.env[node.args[0]][0], rw.info(node.args[0])
        if not isinstance(clip, Clip) or clip.rank2d != 4 or clip.collapsed:
            return rw.frame_wise(node, "a DCT stem on other than a clip of images")
        path = str(node.target)
        role = rw.role(path)  # the three convs are parallel branches: all take the stem's time, or none
        convs = {name: inflate_conv_module(rw, f"{path}.{name}", getattr(module, name), role=role)
                 for name in ("conv_y", "conv_cb", "conv_cr")}
        dct = copy.deepcopy(module)
        for name in convs:
            setattr(dct, name, nn.Identity())
        stem = LearnableDct3d(dct, *(conv for conv, _ in convs.values()))
        op = convs["conv_y"][1]
        x, clip = rw.move_time(x, clip, 2)
        target = rw.replace_module(node, stem, LayerRecord.of(path, type(module).__name__, type(stem).__name__, op))
        return rw.call_module(target, x), clip

    @handles("conv", mobilenetv5.MobileNetV5MultiScaleFusionAdapter)
    def multi_scale_fusion(rw: Rewriter, node: fx.Node) -> HandlerResult:
        module = rw.submodule(node)
        inputs = node.args[0]
        if len(node.args) != 1 or node.kwargs or not isinstance(inputs, (list, tuple)) or not inputs:
            return rw.frame_wise(node, "a fusion adapter called with other than one list of maps")
        infos = [rw.info(n) if isinstance(n, fx.Node) else None for n in inputs]
        if any(not isinstance(i, Clip) or i.rank2d != 4 or i.collapsed for i in infos):
            return rw.frame_wise(node, "a fusion adapter on maps that do not all carry time")
        path = str(node.target)
        shapes = [rw.shape2d(n) for n in inputs]
        height, width = shapes[0][2], shapes[0][3]
        ffn = _nested(rw, f"{path}.ffn", module.ffn, (sum(s[1] for s in shapes), height, width))
        out_shape = rw.shape2d(node)
        norm = _nested(rw, f"{path}.norm", module.norm, (out_shape[1], out_shape[2], out_shape[3]))
        fusion = MultiScaleFusion3d(ffn, norm, module.output_resolution, module.interpolation_mode)
        values = [rw.move_time(rw.env[n][0], i, 2)[0] for n, i in zip(inputs, infos)]
        target = rw.replace_module(node, fusion, LayerRecord(path, type(module).__name__, type(fusion).__name__,
                                                             "per-frame", kind="conv"))
        return rw.call_module(target, values), Clip(2, 4)

    naflexvit = importlib.import_module("timm.models.naflexvit")

    @handles("patch_embed", naflexvit.NaFlexEmbeds)
    def naflex_embeds(rw: Rewriter, node: fx.Node) -> HandlerResult | ModuleResult:
        module = rw.submodule(node)
        clip = rw.info(node.args[0])
        extra = [a for a in (*node.args[1:], *node.kwargs.values()) if a is not None]
        if not isinstance(clip, Clip) or clip.rank2d != 4 or clip.collapsed or extra:
            return rw.frame_wise(node, "a NaFlex embedding of pre-patchified inputs or patch coordinates")
        if not module.is_linear or module.norm_input is not None or module.dynamic_img_pad or \
                module.pos_embed_type not in ("learned", "factorized", "none"):
            return rw.frame_wise(node, "a NaFlex embedding with an input norm, padding or position "
                                       "embedding it has no tubelet form for")
        path = str(node.target)
        channels = rw.shape2d(node.args[0])[1]
        conv = _linear_as_conv(module.proj, channels, tuple(module.patch_size), bool(module.channels_last))
        proj, op = inflate_conv_module(rw, path, conv, kind="patch_embed")
        slots = max(1, rw.t // op.kernel[0])
        embeds = copy.deepcopy(module)
        embeds.proj = nn.Identity()
        embed3d = NaFlexEmbeds3d(embeds, m3d.PatchEmbed3d(proj, nn.Identity(), slots))
        return ModuleResult(embed3d, LayerRecord.of(path, type(module).__name__, type(embed3d).__name__, op),
                            layout=(Clip(1, 3), None))

    @handles("axis", naflexvit.global_pool_naflex)
    def global_pool_naflex(rw: Rewriter, node: fx.Node) -> HandlerResult:
        """Without a validity mask, timm's token pooling over the tokens of all time slots."""
        names = ("x", "patch_valid", "pool_type", "num_prefix_tokens", "reduce_include_prefix")
        bound = {"patch_valid": None, "pool_type": "token", "num_prefix_tokens": 1, "reduce_include_prefix": False,
                 **dict(zip(names, node.args)), **node.kwargs}
        clip = rw.info(bound["x"])
        settings = [bound[n] for n in names[2:]]
        if bound["patch_valid"] is not None or any(isinstance(v, fx.Node) for v in settings) or \
                settings[0] not in TOKEN_POOLS or not isinstance(clip, Clip) or (clip.td, clip.rank2d) != (1, 3) \
                or clip.collapsed or clip.framed:
            return rw.frame_wise(node, "a NaFlex pooling with a validity mask or of tokens without time slots")
        path = node_path(node)
        rw.note(LayerRecord(path, "global_pool_naflex", "pool over all time slots", "inflated", kind="axis"))
        return rw.call_function(pool_tokens_over_slots, rw.value(bound["x"]), *settings), None
