"""Handlers for modules, matched on their exact type.

Each builds the module's 3D counterpart from the core rule's description (weights go
through numpy, so the torch and weight-file adapters share one implementation), or
reuses the 2D module where it already works on clips (activations, dropout, GroupNorm).
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import fx, nn

from ...core.rules import get_rule
from ...core.spec import InflatedOp, OpSpec
from . import modules as m3d
from .ops import _flatten, _ncthw, _pair, _self, last_axes
from .layout import Clip
from .rewriter import HandlerResult, LayerRecord, Rewriter, pointwise_result

__all__ = ["MODULE_HANDLERS", "register_module", "inflate_conv_module", "to_numpy", "from_numpy",
           "dynamic_image_size"]

ModuleHandler = Callable[[Rewriter, fx.Node, nn.Module], HandlerResult]
MODULE_HANDLERS: dict[type, ModuleHandler] = {}


def register_module(*types: type):
    """Register a handler for modules of exactly these types."""
    def decorator(handler: ModuleHandler) -> ModuleHandler:
        for module_type in types:
            if module_type in MODULE_HANDLERS:
                raise KeyError(f"a handler for {module_type.__qualname__} is already registered")
            MODULE_HANDLERS[module_type] = handler
        return handler
    return decorator


# ----- tracing paths -----

@contextlib.contextmanager
def dynamic_image_size(model: nn.Module, enabled: bool = True) -> Iterator[bool]:
    """Trace timm ViTs on their ``dynamic_img_size`` path: tokens leave the patch embedding as
    (B, H', W', C) and the position table is resampled to that grid as timm does for images,
    so clips of another frame size work. At the model's own size the table is used as is.
    The model's flags are restored afterwards (the traced graph keeps the path). Yields
    whether the path is in use."""
    patch_embed = getattr(model, "patch_embed", None)
    if not enabled or getattr(model, "dynamic_img_size", True) or getattr(model, "pos_embed", None) is None or \
            type(patch_embed).__name__ != "PatchEmbed" or not getattr(patch_embed, "flatten", False):
        yield False
        return
    from timm.layers import Format

    saved = (model.dynamic_img_size, patch_embed.flatten, patch_embed.output_fmt, patch_embed.strict_img_size)
    model.dynamic_img_size, patch_embed.flatten = True, False
    patch_embed.output_fmt, patch_embed.strict_img_size = Format.NHWC, False
    try:
        yield True
    finally:
        model.dynamic_img_size, patch_embed.flatten, patch_embed.output_fmt, patch_embed.strict_img_size = saved


# ----- numpy bridge -----

def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A CPU numpy view (or float32 copy, for dtypes numpy lacks) of a tensor."""
    tensor = tensor.detach()
    if tensor.dtype in (torch.bfloat16, torch.float16):
        tensor = tensor.float()
    return tensor.cpu().numpy()


def from_numpy(array: np.ndarray, like: torch.Tensor) -> nn.Parameter:
    """A parameter holding ``array`` with the dtype, device and requires_grad of ``like``."""
    tensor = torch.from_numpy(array).to(device=like.device, dtype=like.dtype)
    return nn.Parameter(tensor, requires_grad=like.requires_grad)


def _set_params(module: nn.Module, weights: dict[str, np.ndarray], source: nn.Module) -> None:
    for name, array in weights.items():
        setattr(module, name, from_numpy(array, getattr(source, name)))


def _record(path: str, module: nn.Module, module3d: nn.Module, op: InflatedOp | None) -> LayerRecord:
    if op is None:
        return LayerRecord(path, type(module).__name__, type(module3d).__name__, "per-frame")
    return LayerRecord(
        path, type(module).__name__, type(module3d).__name__, "inflated",
        op.kernel[0], op.stride[0], op.time.init if op.kind == "conv" else "-",
    )


def _emit(rw: Rewriter, node: fx.Node, module: nn.Module, module3d: nn.Module, op: InflatedOp | None,
          collapses: bool = False) -> HandlerResult:
    x, clip = _ncthw(rw, node)
    path = rw.replace_module(node, module3d, _record(str(node.target), module, module3d, op))
    return rw.call_module(path, x), clip.with_(collapsed=clip.collapsed or collapses)


# ----- convolution -----

def _conv_spec(rw: Rewriter, path: str, conv: nn.Conv2d, same: bool, kind: str = "conv") -> OpSpec:
    padding: Any = conv.padding
    if isinstance(padding, str):  # torch's "same" (stride 1) pads as TF does; "valid" is none
        padding = "same" if padding == "same" else (0, 0)
    return OpSpec(
        kind, path, tuple(conv.kernel_size), tuple(conv.stride),
        "same" if same or padding == "same" else tuple(padding),
        tuple(conv.dilation), conv.groups, role=rw.role(path),
    )


def inflate_conv_module(rw: Rewriter, path: str, conv: nn.Conv2d, same: bool = False,
                        kind: str = "conv") -> tuple[nn.Module, InflatedOp]:
    """Build the :class:`~.modules.InflatedConv3d` for a 2D convolution at ``path`` with the
    rule ``kind`` ("conv", or "patch_embed" for a patch embedding's tubelets)."""
    spec = _conv_spec(rw, path, conv, same, kind)
    weights = {"weight": to_numpy(conv.weight)}
    if conv.bias is not None:
        weights["bias"] = to_numpy(conv.bias)
    op, weights3d = get_rule(kind).inflate(spec, rw.time_for(spec), weights)
    conv3d = m3d.InflatedConv3d(
        conv.in_channels, conv.out_channels, op.kernel, op.stride, op.padding, op.dilation, op.groups,
        conv.bias is not None, op.time_pads, op.time_pad_mode, device="meta",
    )
    _set_params(conv3d, weights3d, conv)
    return conv3d, op


@register_module(nn.Conv2d)
def conv(rw: Rewriter, node: fx.Node, module: nn.Conv2d) -> HandlerResult:
    if module.padding_mode != "zeros":
        return rw.frame_wise(node, f"padding_mode={module.padding_mode!r} has no inflation rule")
    conv3d, op = inflate_conv_module(rw, str(node.target), module)
    return _emit(rw, node, module, conv3d, op)


def _conv_same(rw: Rewriter, node: fx.Node, module: nn.Conv2d) -> HandlerResult:
    conv3d, op = inflate_conv_module(rw, str(node.target), module, same=True)
    return _emit(rw, node, module, conv3d, op)


# ----- normalisation -----

def _batch_norm_3d(module: nn.BatchNorm2d, cls: type = m3d.InflatedBatchNorm3d, **extra: Any) -> nn.BatchNorm3d:
    bn = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats,
             device="meta", **extra)
    get_rule("batch_norm")  # the rule: statistics and affine carry over unchanged
    for name, param in module.named_parameters(recurse=False):
        setattr(bn, name, nn.Parameter(param.detach().clone(), requires_grad=param.requires_grad))
    for name, buffer in module.named_buffers(recurse=False):
        bn.register_buffer(name, None if buffer is None else buffer.detach().clone())
    return bn


@register_module(nn.BatchNorm2d)
def batch_norm(rw: Rewriter, node: fx.Node, module: nn.BatchNorm2d) -> HandlerResult:
    return _emit(rw, node, module, _batch_norm_3d(module), None)


@register_module(nn.GroupNorm)
def group_norm(rw: Rewriter, node: fx.Node, module: nn.Module) -> HandlerResult:
    # GroupNorm takes any (N, C, *) input: statistics over (C/G, T, H, W) are its 3D form.
    x, clip = _self(rw, node)
    if clip.td < 2:
        x, clip = rw.move_time(x, clip, 2)
    rw.note(LayerRecord(str(node.target), type(module).__name__, type(module).__name__, "per-frame"))
    return rw.call_module(str(node.target), x), clip


# ----- pooling -----

def _pool(rw: Rewriter, node: fx.Node, module: nn.Module, kind: str, same: bool) -> HandlerResult:
    path = str(node.target)
    stride = module.stride if module.stride is not None else module.kernel_size
    padding = "same" if same else _pair(module.padding)
    dilation = _pair(getattr(module, "dilation", 1))
    spec = OpSpec(kind, path, _pair(module.kernel_size), _pair(stride), padding, dilation, role=rw.role(path))
    op = get_rule(kind).describe(spec, rw.time_for(spec))
    if kind == "max_pool":
        if module.return_indices:
            return rw.frame_wise(node, "max pooling with return_indices")
        pool = m3d.InflatedMaxPool3d(op.kernel, op.stride, op.padding, op.dilation, module.ceil_mode,
                                     op.time_pads, op.time_pad_mode)
    else:
        pool = m3d.InflatedAvgPool3d(op.kernel, op.stride, op.padding, module.ceil_mode, module.count_include_pad,
                                     module.divisor_override, op.time_pads, op.time_pad_mode)
    return _emit(rw, node, module, pool, op)


@register_module(nn.MaxPool2d)
def max_pool(rw: Rewriter, node: fx.Node, module: nn.MaxPool2d) -> HandlerResult:
    return _pool(rw, node, module, "max_pool", same=False)


@register_module(nn.AvgPool2d)
def avg_pool(rw: Rewriter, node: fx.Node, module: nn.AvgPool2d) -> HandlerResult:
    return _pool(rw, node, module, "avg_pool", same=False)


def _adaptive(rw: Rewriter, node: fx.Node, module: nn.Module, kind: str, cls: type) -> HandlerResult:
    size = module.output_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    spec = OpSpec(kind, str(node.target), output_size=size, role=rw.role(str(node.target)))
    op = get_rule(kind).describe(spec, rw.time_for(spec))
    return _emit(rw, node, module, cls(op.output_size), op, collapses=op.output_size[0] == 1)


@register_module(nn.AdaptiveAvgPool2d)
def adaptive_avg_pool(rw: Rewriter, node: fx.Node, module: nn.Module) -> HandlerResult:
    return _adaptive(rw, node, module, "adaptive_avg_pool", nn.AdaptiveAvgPool3d)


@register_module(nn.AdaptiveMaxPool2d)
def adaptive_max_pool(rw: Rewriter, node: fx.Node, module: nn.Module) -> HandlerResult:
    if module.return_indices:
        return rw.frame_wise(node, "adaptive max pooling with return_indices")
    return _adaptive(rw, node, module, "adaptive_max_pool", nn.AdaptiveMaxPool3d)


# ----- resampling, padding, dropout -----

@register_module(nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)
def upsample(rw: Rewriter, node: fx.Node, module: nn.Upsample) -> HandlerResult:
    if module.mode not in ("nearest", "bilinear", "nearest-exact"):
        return rw.frame_wise(node, f"upsampling mode {module.mode!r} has no 3D form")
    pair = lambda v: None if v is None else ((v, v) if not isinstance(v, (tuple, list)) else tuple(v))  # noqa: E731
    up = m3d.Upsample3d(pair(module.size), pair(module.scale_factor), module.mode, module.align_corners)
    return _emit(rw, node, module, up, None)


@register_module(nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d)
def pad(rw: Rewriter, node: fx.Node, module: nn.Module) -> HandlerResult:
    padding = tuple(module.padding) + (0, 0)
    if isinstance(module, (nn.ZeroPad2d, nn.ConstantPad2d)):
        pad3d: nn.Module = nn.ConstantPad3d(padding, getattr(module, "value", 0.0))
    elif isinstance(module, nn.ReflectionPad2d):
        pad3d = nn.ReflectionPad3d(padding)
    else:
        pad3d = nn.ReplicationPad3d(padding)
    return _emit(rw, node, module, pad3d, None)


@register_module(nn.Dropout2d)
def dropout2d(rw: Rewriter, node: fx.Node, module: nn.Dropout2d) -> HandlerResult:
    return _emit(rw, node, module, nn.Dropout3d(module.p, module.inplace), None)


@register_module(nn.Flatten)
def flatten(rw: Rewriter, node: fx.Node, module: nn.Flatten) -> HandlerResult:
    x, clip = _self(rw, node)
    out, info = _flatten(rw, node, x, clip, module.start_dim, module.end_dim)
    return out, info


@register_module(nn.Linear)
def linear(rw: Rewriter, node: fx.Node, module: nn.Module) -> HandlerResult:
    return last_axes(rw, node, 1)


@register_module(nn.LayerNorm)
def layer_norm(rw: Rewriter, node: fx.Node, module: nn.LayerNorm) -> HandlerResult:
    return last_axes(rw, node, len(module.normalized_shape))


def pointwise_module(rw: Rewriter, node: fx.Node, module: nn.Module) -> HandlerResult:
    return pointwise_result(rw, node)


for _type in (
    nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.LeakyReLU,
    nn.ELU, nn.SELU, nn.CELU, nn.Mish, nn.Softplus, nn.Hardtanh, nn.Identity, nn.Dropout, nn.AlphaDropout,
    nn.PReLU, nn.Threshold, nn.LogSigmoid, nn.Softsign, nn.Tanhshrink,
):
    MODULE_HANDLERS[_type] = pointwise_module


def _register_timm() -> None:
    """Rules for timm's own layer types, when timm is installed."""
    try:
        from timm.layers import activations, activations_me
        from timm.layers.conv2d_same import Conv2dSame
        from timm.layers.drop import DropBlock2d, DropPath
        from timm.layers.norm import LayerNorm as TimmLayerNorm
        from timm.layers.norm_act import BatchNormAct2d
        from timm.layers.pool2d_same import AvgPool2dSame, MaxPool2dSame
    except ImportError:
        return

    MODULE_HANDLERS[Conv2dSame] = _conv_same

    def batch_norm_act(rw: Rewriter, node: fx.Node, module: nn.Module) -> HandlerResult:
        bn = _batch_norm_3d(module, m3d.BatchNormAct3d, drop=copy.deepcopy(module.drop),
                            act=copy.deepcopy(module.act))
        return _emit(rw, node, module, bn, None)

    MODULE_HANDLERS[BatchNormAct2d] = batch_norm_act
    MODULE_HANDLERS[MaxPool2dSame] = lambda rw, node, module: _pool(rw, node, module, "max_pool", same=True)
    MODULE_HANDLERS[AvgPool2dSame] = lambda rw, node, module: _pool(rw, node, module, "avg_pool", same=True)
    MODULE_HANDLERS[TimmLayerNorm] = layer_norm
    MODULE_HANDLERS[DropPath] = pointwise_module
    for namespace in (activations, activations_me):
        for value in vars(namespace).values():
            if isinstance(value, type) and issubclass(value, nn.Module) and value.__module__ == namespace.__name__:
                MODULE_HANDLERS.setdefault(value, pointwise_module)
    del DropBlock2d  # per-position masks differ per frame; left to the frame-wise fallback

    _register_timm_transformers()
    _register_timm_attention()
    try:
        from timm.models.vgg import ConvMlp
    except ImportError:
        return

    def conv_mlp(rw: Rewriter, node: fx.Node, module: nn.Module) -> HandlerResult:
        path = str(node.target)
        fc1, op1 = inflate_conv_module(rw, f"{path}.fc1", module.fc1)
        fc2, _ = inflate_conv_module(rw, f"{path}.fc2", module.fc2)
        mlp = m3d.ConvMlp3d(fc1, copy.deepcopy(module.act1), copy.deepcopy(module.drop), fc2,
                            copy.deepcopy(module.act2), module.input_kernel_size)
        return _emit(rw, node, module, mlp, op1)

    MODULE_HANDLERS[ConvMlp] = conv_mlp



def _register_timm_transformers() -> None:
    """Rules for timm's patch embeddings → tubelet embeddings."""
    from timm.layers import PatchEmbed

    def patch_embed(rw: Rewriter, node: fx.Node, module: nn.Module) -> HandlerResult:
        channels_last = not getattr(module, "flatten", True) and str(getattr(module, "output_fmt", "")).endswith("NHWC")
        if not (getattr(module, "flatten", True) or channels_last) or getattr(module, "dynamic_img_pad", False):
            return rw.frame_wise(node, "a patch embedding that outputs NCHW, or pads dynamically")
        return tubelet_embedding(rw, node, module, module.proj, module.norm,
                                 "channels_last" if channels_last else "tokens")

    MODULE_HANDLERS[PatchEmbed] = patch_embed
    from timm.models import pit

    # PiT embeds overlapping patches with a plain conv and keeps the (B, C, H, W) map.
    MODULE_HANDLERS[pit.ConvEmbedding] = lambda rw, node, module: tubelet_embedding(
        rw, node, module, module.conv, None, "channels_first")


def tubelet_embedding(rw: Rewriter, node: fx.Node, module: nn.Module, conv: nn.Conv2d, norm: nn.Module | None,
                      layout: str) -> HandlerResult:
    """A patch embedding's conv → k_t×p×p tubelets with temporal stride k_t, plus a zero-initialised
    temporal embedding (:class:`~.modules.PatchEmbed3d`). ``layout`` is that of its output."""
    x, clip = _ncthw(rw, node)
    path = str(node.target)
    if conv.padding == "same" or conv.groups != 1 or conv.padding_mode != "zeros":
        return rw.frame_wise(node, "a patch embedding conv with padding, groups or padding mode it has no rule for")
    proj, op = inflate_conv_module(rw, path, conv, kind="patch_embed")
    slots = max(1, rw.t // op.kernel[0])
    embed = m3d.PatchEmbed3d(proj, copy.deepcopy(norm) if norm is not None else nn.Identity(), slots, layout=layout)
    path = rw.replace_module(node, embed, _record(path, module, embed, op))
    out = {"tokens": Clip(1, 3), "channels_last": Clip(1, 4), "channels_first": Clip(2, 4)}[layout]
    return rw.call_module(path, x), out.with_(collapsed=clip.collapsed)


def _register_timm_attention() -> None:
    """Rules for timm's attention modules and windowed attention blocks → SpaceTimeAttention."""
    from timm.layers import Attention
    from timm.models import beit, convit, eva, levit, maxxvit, mvitv2, swin_transformer, twins

    # Plain ViT attention: joint attention sees all T'·N tokens at once.
    MODULE_HANDLERS[Attention] = lambda rw, node, module: space_time_attention(rw, node, module, plain=True)
    # Attention with position terms of its own (relative bias, rotary, local windows, gated positions).
    for attention in (beit.Attention, eva.EvaAttention, twins.LocallyGroupedAttn, twins.GlobalSubSampleAttn,
                      maxxvit.Attention2d, maxxvit.AttentionCl, convit.GPSA, convit.MHSA, levit.Attention,
                      levit.AttentionDownsample, mvitv2.MultiScaleAttention, mvitv2.MultiScaleAttentionPoolFirst):
        MODULE_HANDLERS[attention] = space_time_attention
    # LeViT's Linear + BatchNorm1d over flattened tokens: per token, so per frame is exact.
    MODULE_HANDLERS[levit.LinearNorm] = lambda rw, node, module: rw.frame_wise(node, declared=True)
    # Windowed blocks: 3D windows spanning the clip (joint), temporal attention then windows (divided).
    for block in (swin_transformer.SwinTransformerBlock, maxxvit.PartitionAttentionCl, maxxvit.PartitionAttention2d):
        MODULE_HANDLERS[block] = lambda rw, node, module: space_time_attention(rw, node, module, block=True)


def _enable_fused_attention(module: nn.Module) -> bool:
    """Make every timm attention inside ``module`` call F.scaled_dot_product_attention (their
    ``fused_attn`` switch); False when none has the switch (attention computed by hand)."""
    found = False
    for sub in module.modules():
        if hasattr(sub, "fused_attn"):
            sub.fused_attn, found = True, True
    return found


def space_time_attention(rw: Rewriter, node: fx.Node, module: nn.Module, plain: bool = False,
                         block: bool = False) -> HandlerResult:
    """An attention module (or a block holding one) → :class:`~.modules.SpaceTimeAttention`
    with the policy's mode. "joint" needs the module to attend through
    F.scaled_dot_product_attention; a module that computes attention by hand attends within
    each frame instead, and the report says so (inflate_model warns)."""
    from timm.models import convit, levit, mvitv2

    x, clip = _self(rw, node)
    path = str(node.target)
    if any(rw.info(a) is not None for a in node.all_input_nodes if a is not node.args[0]):
        return rw.frame_wise(node, "attention inputs besides the tokens that carry time")
    shape, out_shape = rw.meta(node.args[0]), rw.meta(node)
    with_sizes = isinstance(out_shape, tuple) and len(out_shape) == 2 and isinstance(out_shape[0], tuple)
    if with_sizes:  # (tokens, sizes), as MViTv2's attention returns
        out_shape = out_shape[0]
    if not isinstance(clip, Clip) or clip.collapsed or not isinstance(out_shape, tuple) or \
            len(out_shape) != clip.rank2d or clip.rank2d < 3:
        return rw.frame_wise(node, "attention over tokens whose layout it changes")
    channel_axis = 1 if isinstance(module, _nchw_attention()) else clip.rank2d - 1
    width = shape[channel_axis]
    time_dim, channel_dim = clip.td, (channel_axis if channel_axis < clip.td else channel_axis + 1)
    attn = copy.deepcopy(module)
    mode = rw.policy.attention
    on_tokens = clip.td == 1 and clip.rank2d == 3
    # Attention with no position terms sees all T'·N tokens at once; attention computed by hand
    # has its own joint form (timm_joint); the rest run on folded frames with joint SDPA calls.
    joint = "sdpa"
    if on_tokens:
        joint = "tokens" if plain or type(module) is convit.MHSA else {
            convit.GPSA: "gpsa", levit.Attention: "levit", levit.AttentionDownsample: "levit",
            mvitv2.MultiScaleAttention: "mvit"}.get(type(module), "sdpa")
    if mode == "joint" and joint == "sdpa" and not _enable_fused_attention(attn):
        mode = "frames"  # computed by hand: no joint form (reported, and inflate_model warns)
    get_rule("attention")
    temporal_attn = temporal_fc = temporal_norm = None
    if mode == "divided":
        temporal_attn, temporal_fc, temporal_norm = _temporal_branch(module, block, width)
    wrapped = m3d.SpaceTimeAttention(attn, mode, temporal_attn, temporal_fc, temporal_norm,
                                     joint=joint, time_dim=time_dim,
                                     channel_dim=channel_dim, where=path)
    record = LayerRecord(path, type(module).__name__, f"SpaceTimeAttention({mode})",
                         "inflated" if mode != "frames" else "per-frame", 1, 1, "-")
    path = rw.replace_module(node, wrapped, record)
    # the model's own extra arguments (masks, rotary tables, sizes) pass through unchanged
    out = rw.call_module(path, x, *rw.value(tuple(node.args[1:])), **rw.value(dict(node.kwargs)))
    return out, ((clip, None) if with_sizes else clip)


def _temporal_branch(module: nn.Module, block: bool, width: int) -> tuple[nn.Module, nn.Linear, nn.Module | None]:
    """Divided attention's additions for ``module``: a timm ``Attention`` over time copying the
    spatial attention's projections (a fresh one when they cannot be read; ``temporal_fc`` = 0
    keeps the 2D output either way), the zero ``temporal_fc``, and for a block its ``norm1``."""
    from timm.layers import Attention

    from ...rules.attention import temporal_branch_weights

    like = next(module.parameters())
    inner = getattr(module, "attn", module) if block else module
    norm = copy.deepcopy(module.norm1) if block and getattr(module, "norm1", None) is not None else None
    weights = temporal_branch_weights({k: to_numpy(v) for k, v in inner.state_dict().items()}, width)
    if isinstance(inner, Attention) and inner.proj.out_features == width and inner.qkv.in_features == width:
        temporal_attn = copy.deepcopy(inner)  # a copy, with any q/k norms it has
    else:
        heads = getattr(inner, "num_heads", 1)
        temporal_attn = Attention(width, num_heads=heads if width % heads == 0 else 1, qkv_bias=True)
        copied = {k[len("temporal_attn."):]: torch.from_numpy(v) for k, v in weights.items()
                  if k.startswith("temporal_attn.")}
        if copied:
            temporal_attn.load_state_dict(copied)
        temporal_attn = temporal_attn.to(device=like.device, dtype=like.dtype)
    temporal_fc = nn.Linear(width, width, device=like.device, dtype=like.dtype)
    _set_params(temporal_fc, {"weight": weights["temporal_fc.weight"], "bias": weights["temporal_fc.bias"]},
                temporal_fc)
    return temporal_attn, temporal_fc, norm


def _nchw_attention() -> tuple[type, ...]:
    from timm.models import maxxvit

    return (maxxvit.Attention2d, maxxvit.PartitionAttention2d)


_register_timm()
