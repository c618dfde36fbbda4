"""timm's own layer types, registered with the handlers of their op family when timm is installed.

timm exports modules that subclass torch's but behave differently (``Conv2dSame`` pads at run
time), so each is registered under its exact type; activation classes timm defines are
element-wise. ``DropBlock2d`` has no handler: its per-position masks differ per frame, so it
runs frame by frame and the report says so.
"""

from __future__ import annotations

import copy
import importlib

from torch import fx, nn

from .. import modules as m3d
from ..registry import handler_for, handles
from ..rewriter import HandlerResult, LayerRecord, ModuleResult, Rewriter, pointwise_result
from ..tracing import trace_through
from .attention import joint_whole_module, space_time_attention, tubelet_embedding
from .conv import conv_result, inflate_conv_module
from ._common import arg
from .linear import last_axes
from .norm import batch_norm_result
from .pool import pool_result
from .std_conv import std_conv_result

__all__ = ["register_timm"]


def register_timm() -> bool:
    """Register the handlers of timm's layer types; False when timm is not installed."""
    try:
        import timm  # noqa: F401
    except ImportError:
        return False
    _register_layers()
    _register_traced_blocks()
    _register_transformers()
    _register_attention()
    from .timm_blocks import register_timm_blocks

    register_timm_blocks()
    _register_block_layouts()
    _register_window_layouts()
    _register_token_orders()
    _register_image_scaling()
    return True


def _register_layers() -> None:
    from timm.layers import activations, activations_me
    from timm.layers.conv2d_same import Conv2dSame
    from timm.layers.drop import DropPath
    from timm.layers.norm import LayerNorm as TimmLayerNorm
    from timm.layers.norm_act import BatchNormAct2d
    from timm.layers.pool2d_same import AvgPool2dSame, MaxPool2dSame
    from timm.layers.std_conv import ScaledStdConv2d, ScaledStdConv2dSame, StdConv2d, StdConv2dSame
    from timm.models.vgg import ConvMlp

    @handles("conv", Conv2dSame)
    def conv_same(rw: Rewriter, node: fx.Node) -> ModuleResult:
        return conv_result(rw, node, same=True)

    @handles("std_conv", StdConv2d, ScaledStdConv2d)
    def std_conv(rw: Rewriter, node: fx.Node) -> HandlerResult | ModuleResult:
        return std_conv_result(rw, node)

    @handles("std_conv", StdConv2dSame, ScaledStdConv2dSame)
    def std_conv_same(rw: Rewriter, node: fx.Node) -> HandlerResult | ModuleResult:
        return std_conv_result(rw, node, same=bool(rw.submodule(node).same_pad))

    @handles("conv", ConvMlp)
    def conv_mlp(rw: Rewriter, node: fx.Node) -> ModuleResult:
        """VGG's convolutional pre-logits: both convs inflated, kept in one ConvMlp3d."""
        module = rw.submodule(node)
        path = str(node.target)
        fc1, op1 = inflate_conv_module(rw, f"{path}.fc1", module.fc1)
        fc2, _ = inflate_conv_module(rw, f"{path}.fc2", module.fc2)
        mlp = m3d.ConvMlp3d(fc1, copy.deepcopy(module.act1), copy.deepcopy(module.drop), fc2,
                            copy.deepcopy(module.act2), module.input_kernel_size)
        return ModuleResult(mlp, LayerRecord.of(path, type(module).__name__, type(mlp).__name__, op1))

    @handles("batch_norm", BatchNormAct2d)
    def batch_norm_act(rw: Rewriter, node: fx.Node) -> ModuleResult:
        module = rw.submodule(node)
        return batch_norm_result(rw, node, m3d.BatchNormAct3d, drop=copy.deepcopy(module.drop),
                                 act=copy.deepcopy(module.act))

    @handles("max_pool", MaxPool2dSame)
    def max_pool_same(rw: Rewriter, node: fx.Node) -> HandlerResult | ModuleResult:
        return pool_result(rw, node, "max_pool", same=True)

    @handles("avg_pool", AvgPool2dSame)
    def avg_pool_same(rw: Rewriter, node: fx.Node) -> HandlerResult | ModuleResult:
        return pool_result(rw, node, "avg_pool", same=True)

    @handles("layer_norm", TimmLayerNorm)
    def layer_norm(rw: Rewriter, node: fx.Node) -> HandlerResult:
        return last_axes(rw, node, len(rw.submodule(node).normalized_shape))

    _register_norm_functions()

    activation_types = [value for namespace in (activations, activations_me) for value in vars(namespace).values()
                        if isinstance(value, type) and issubclass(value, nn.Module)
                        and value.__module__ == namespace.__name__]
    # a class timm re-exports under two names is registered once
    new = [t for t in dict.fromkeys([DropPath, *activation_types]) if handler_for("call_module", t) is None]

    @handles("pointwise", *new)
    def pointwise_module(rw: Rewriter, node: fx.Node) -> HandlerResult:
        return pointwise_result(rw, node)

    pointwise_module.table_label = "timm's activation layers and DropPath"  # type: ignore[attr-defined]


def _register_norm_functions() -> None:
    """timm's norm functions (``timm.layers.fast_norm``, marked untraceable): RMS, simple and
    layer norms over the last axes run as in 2D once time is out of them; the NCHW RMS norm
    over the channel axis is a per-position norm, run per frame as declared."""
    from timm.layers import fast_norm

    last = [getattr(fast_norm, name) for name in ("rms_norm", "fast_rms_norm", "simple_norm", "fast_simple_norm",
                                                  "fast_layer_norm") if hasattr(fast_norm, name)]

    @handles("layer_norm", *last)
    def norm_over_last_axes(rw: Rewriter, node: fx.Node) -> HandlerResult:
        shape = arg(node, 1, "normalized_shape")
        return last_axes(rw, node, len(shape) if isinstance(shape, (tuple, list)) else 1)

    channels = [getattr(fast_norm, name) for name in ("rms_norm2d", "fast_rms_norm2d") if hasattr(fast_norm, name)]

    @handles("layer_norm", *channels)
    def norm_over_channels(rw: Rewriter, node: fx.Node) -> HandlerResult:
        return rw.frame_wise(node, "a norm over the channels of each position", declared=True)


def _register_traced_blocks() -> None:
    """timm blocks marked untraceable for a reason that does not always apply: traced into then."""
    from timm.models import nfnet

    # NormFreeBlock is a leaf for its skipinit's in-place ``out.mul_(gain)``, which fx drops
    # (pytorch#68301); without skipinit (timm's default) it traces, and its convs inflate.
    trace_through(nfnet.NormFreeBlock, lambda block: getattr(block, "skipinit_gain", None) is None)
    # ConvAttention (CPUBone, LowFormer) is a leaf for its crop to the input size, which traces
    # as a slice; only the padding of its small-kernel form branches on the frame size.
    for name in ("cpubone", "lowformer"):
        try:
            module = importlib.import_module(f"timm.models.{name}")
        except ImportError:  # older timm
            continue
        trace_through(module.ConvAttention, lambda attn: not getattr(attn, "small_kernels", False))
    # EfficientViT's LiteMLA turns autocast off around its linear attention unless the tensor is on
    # the meta device; the TorchScript path computes the same without asking.
    from timm.models import efficientvit_mit

    trace_through(efficientvit_mit.LiteMLA, lambda attn: True, scripted=True)


def _register_transformers() -> None:
    """timm's patch embeddings → tubelet embeddings."""
    from timm.layers import PatchEmbed
    from timm.models import pit

    @handles("patch_embed", PatchEmbed)
    def patch_embed(rw: Rewriter, node: fx.Node) -> HandlerResult | ModuleResult:
        """Tokens (B, N, D), NHWC or NCHW maps out. The stem's embedding takes tubelets; a later
        one (Visformer's, PVT's stage embeddings after a conv stem) is a strided conv whose time the
        policy gives (1 by default), so time is not halved again at every stage."""
        module = rw.submodule(node)
        if getattr(module, "dynamic_img_pad", False):
            return rw.frame_wise(node, "a patch embedding that pads dynamically")
        fmt = str(getattr(module, "output_fmt", ""))
        if getattr(module, "flatten", True):
            layout = "tokens"
        elif fmt.endswith("NHWC"):
            layout = "channels_last"
        elif fmt.endswith("NCHW"):
            layout = "channels_first"
        else:
            return rw.frame_wise(node, f"a patch embedding with output format {fmt!r}")
        return tubelet_embedding(rw, node, module, module.proj, module.norm, layout)

    @handles("patch_embed", pit.ConvEmbedding)
    def conv_embedding(rw: Rewriter, node: fx.Node) -> HandlerResult | ModuleResult:
        """PiT embeds overlapping patches with a plain conv and keeps the (B, C, H, W) map."""
        module = rw.submodule(node)
        return tubelet_embedding(rw, node, module, module.conv, None, "channels_first")


def _register_attention() -> None:
    """timm's attention modules and windowed attention blocks → SpaceTimeAttention."""
    from timm.layers import Attention
    from timm.layers.bottleneck_attn import BottleneckAttn
    from timm.layers.halo_attn import HaloAttn
    from timm.models import (beit, convit, eva, gcvit, levit, maxxvit, mvitv2, nextvit, swin_transformer,
                             swin_transformer_v2, swin_transformer_v2_cr, twins)

    @handles("attention", Attention)
    def plain_attention(rw: Rewriter, node: fx.Node) -> HandlerResult | ModuleResult:
        """Plain ViT attention: joint attention sees all T'·N tokens at once."""
        return space_time_attention(rw, node, rw.submodule(node), plain=True)

    @handles("attention", beit.Attention, eva.EvaAttention, twins.LocallyGroupedAttn, twins.GlobalSubSampleAttn,
             maxxvit.Attention2d, maxxvit.AttentionCl, convit.GPSA, convit.MHSA, levit.Attention,
             levit.AttentionDownsample, mvitv2.MultiScaleAttention, mvitv2.MultiScaleAttentionPoolFirst,
             nextvit.EfficientAttention)
    def positional_attention(rw: Rewriter, node: fx.Node) -> HandlerResult | ModuleResult:
        """Attention with position terms of its own (relative bias, rotary, local windows, gated
        positions), or keys pooled per frame (NextViT's EfficientAttention: its AvgPool1d and BatchNorm1d on
        tokens run on folded frames, its SDPA spans the time slots)."""
        return space_time_attention(rw, node, rw.submodule(node))

    @handles("linear", levit.LinearNorm)
    def linear_norm(rw: Rewriter, node: fx.Node) -> HandlerResult:
        """LeViT's Linear + BatchNorm1d over flattened tokens: per token, so per frame is exact."""
        return rw.frame_wise(node, declared=True)

    @handles("attention", swin_transformer.SwinTransformerBlock, maxxvit.PartitionAttentionCl,
             maxxvit.PartitionAttention2d)
    def windowed_block(rw: Rewriter, node: fx.Node) -> HandlerResult | ModuleResult:
        """Windowed blocks: 3D windows spanning the clip (joint), temporal attention then windows (divided)."""
        return space_time_attention(rw, node, rw.submodule(node), block=True)

    @handles("attention", swin_transformer_v2.SwinTransformerV2Block, swin_transformer_v2_cr.SwinTransformerV2CrBlock,
             gcvit.GlobalContextVitBlock, HaloAttn, BottleneckAttn)
    def block_with_sdpa_form(rw: Rewriter, node: fx.Node) -> HandlerResult:
        """Blocks whose window attention is computed by hand and has an SDPA form (timm_sdpa),
        and byoanet's self-attention (HaloNet's halo blocks, BoTNet's attention; their
        (B·heads, …) reshapes cannot be split into frames op by op): kept whole, so that no part
        of them runs frame by frame where the windows cover the whole map and the block would
        trace; joint across time where verified, else per frame."""
        joint = joint_whole_module(rw, node)
        if joint is not None:
            return joint
        return rw.frame_wise(node, "its attention could not be made joint across time",
                             declared=rw.policy.attention == "frames")


def _register_block_layouts() -> None:
    """timm functions marked untraceable that only rearrange each image's own tokens."""
    from timm.models import nest

    @handles("axis", nest.deblockify)
    def deblockify(rw: Rewriter, node: fx.Node) -> HandlerResult:
        """NesT's (B, blocks, N, C) → (B, H, W, C): a layout within each image, so per frame is exact."""
        return rw.frame_wise(node, declared=True)


def _register_window_layouts() -> None:
    """timm's window_reverse functions (marked untraceable): windows of each image back into its
    map, so per frame is exact: time folds into the batch axis beside each image's windows (one
    window covering the map, or several merged batch-major). Where the windows' axis is not
    batch-major the per-frame check refuses, and the enclosing block runs whole
    (:func:`.attention.joint_whole_module`)."""
    targets = []
    for name, functions in (("davit", ("window_reverse",)), ("gcvit", ("window_reverse",)),
                            ("swin_transformer", ("window_reverse",)), ("swin_transformer_v2", ("window_reverse",)),
                            ("swin_transformer_v2_cr", ("window_reverse",)),
                            ("maxxvit", ("window_reverse", "grid_reverse", "window_reverse_nchw", "grid_reverse_nchw"))):
        try:
            module = importlib.import_module(f"timm.models.{name}")
        except ImportError:
            continue
        targets += [getattr(module, f) for f in functions if hasattr(module, f)]

    @handles("axis", *targets)
    def window_reverse(rw: Rewriter, node: fx.Node) -> HandlerResult:
        return rw.frame_wise(node, "windows spread over the batch axis", declared=True)


def _register_token_orders() -> None:
    """Hiera's ``Unroll`` and ``Reroll``: a fixed reordering of each image's tokens (strided
    patches made contiguous, so that its pooling and mask-unit windows are reshapes), moving
    them through the batch axis on the way. A permutation within each frame, so per frame is
    exact; the attention and pooling after it see every frame's tokens in the unrolled order."""
    try:
        from timm.models import hiera
    except ImportError:
        return

    @handles("axis", hiera.Unroll, hiera.Reroll)
    def token_order(rw: Rewriter, node: fx.Node) -> HandlerResult:
        return rw.frame_wise(node, "tokens reordered through the batch axis", declared=True)


def _register_image_scaling() -> None:
    """CrossViT's scale_image (marked untraceable): each image resized or cropped to a branch's size,
    a spatial resample with time kernel 1, so per frame is exact."""
    from timm.models import crossvit

    @handles("upsample", crossvit.scale_image)
    def scale_image(rw: Rewriter, node: fx.Node) -> HandlerResult:
        return rw.frame_wise(node, declared=True)
