"""Attention and patch embeddings (rules ``attention``, ``patch_embed``): a patch embedding
becomes a tubelet embedding (:class:`~..modules.PatchEmbed3d`); attention modules and windowed
blocks become :class:`~..modules.SpaceTimeAttention` in the policy's mode ("joint", "divided"
or "frames"); F.scaled_dot_product_attention attends jointly over time slots under "joint".
The timm types are registered in :mod:`.timm`."""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import fx, nn

from ....core.spec import OpSpec
from .. import modules as m3d
from .. import space_time
from ..layout import Clip
from ..registry import handles
from ..rewriter import HandlerResult, LayerRecord, ModuleResult, Rewriter, node_path
from ._common import first_clip, set_params, to_numpy
from .conv import inflate_conv_module

__all__ = ["dynamic_image_size", "tubelet_embedding", "space_time_attention", "joint_whole_module"]


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


def tubelet_embedding(rw: Rewriter, node: fx.Node, module: nn.Module, conv: nn.Conv2d, norm: nn.Module | None,
                      layout: str) -> HandlerResult | ModuleResult:
    """A patch embedding's conv → k_t×p×p tubelets with temporal stride k_t, plus a zero-initialised
    temporal embedding (:class:`~.modules.PatchEmbed3d`). ``layout`` is that of its output."""
    _, clip = first_clip(rw, node)
    path = str(node.target)
    if conv.padding == "same" or conv.groups != 1 or conv.padding_mode != "zeros":
        return rw.frame_wise(node, "a patch embedding conv with padding, groups or padding mode it has no rule for")
    proj, op = inflate_conv_module(rw, path, conv, kind="patch_embed")
    slots = max(1, rw.t // op.kernel[0])
    embed = m3d.PatchEmbed3d(proj, copy.deepcopy(norm) if norm is not None else nn.Identity(), slots, layout=layout)
    out = {"tokens": Clip(1, 3), "channels_last": Clip(1, 4), "channels_first": Clip(2, 4)}[layout]
    return ModuleResult(embed, LayerRecord.of(path, type(module).__name__, type(embed).__name__, op),
                        layout=out.with_(collapsed=clip.collapsed))


@handles("attention", F.scaled_dot_product_attention)
def scaled_dot_product_attention(rw: Rewriter, node: fx.Node) -> HandlerResult:
    """Attention over the last two axes (tokens, features) with time among the leading axes:
    under the "joint" policy the time axis joins the tokens (:func:`space_time.joint_sdpa`,
    masks and biases tiled over temporal offsets); otherwise it attends within each frame."""
    q, k, v = node.args[:3]
    path = node_path(node)
    infos = [rw.info(a) for a in (q, k, v)]
    if any(not isinstance(i, Clip) for i in infos) or len({(i.td, i.rank2d) for i in infos}) != 1:
        return rw.frame_wise(node, "query, key and value carry time differently")
    clip = infos[0]
    if clip.td > clip.rank2d - 2:
        return rw.frame_wise(node, "time among the token or feature axes")
    names = space_time.SDPA_ARGUMENTS
    bound = {**dict(zip(names, node.args)), **node.kwargs}
    mask = bound.get("attn_mask")
    mask_info = rw.info(mask) if isinstance(mask, fx.Node) else None
    if any(rw.info(a) is not None for a in (bound.get(n) for n in names[4:]) if isinstance(a, fx.Node)):
        return rw.frame_wise(node, "attention arguments that carry time")
    if rw.policy.attention == "joint" and bound.get("is_causal") is not True and not bound.get("enable_gqa") and \
            (mask_info is None or (isinstance(mask_info, Clip) and not mask_info.collapsed)):
        # is_causal may be a model input (EVA's forward takes one): joint_sdpa refuses True when it runs
        kwargs = {n: rw.value(bound[n]) for n in ("dropout_p", "is_causal", "scale") if n in bound}
        if mask is not None:
            kwargs["attn_mask"] = rw.value(mask)
            kwargs["mask_time_dim"] = mask_info.td if mask_info is not None else None
        op, _ = rw.inflate_op(OpSpec("attention", path, role=rw.role(path)))
        rw.note(LayerRecord.of(path, "F.scaled_dot_product_attention", "joint over time slots", op))
        q3, k3, v3 = (rw.value(a) for a in (q, k, v))
        return rw.call_function(space_time.joint_sdpa, q3, k3, v3, clip.td, **kwargs), clip
    if mask_info is not None:
        return rw.frame_wise(node, "a mask that carries time")
    aligned: dict[fx.Node, Any] = {}
    if isinstance(mask, fx.Node):  # a (heads, N, N) bias must skip the time axis when it broadcasts
        shape = rw.meta(mask)
        if isinstance(shape, tuple):
            pos = clip.td - (clip.rank2d - len(shape))
            if 0 < pos <= len(shape):
                aligned[mask] = rw.call_method("unsqueeze", rw.env[mask][0], pos)
    rw.note(LayerRecord(path, "F.scaled_dot_product_attention", "same op, per frame", "per-frame", kind="attention"))
    return rw.emit_like(node, *rw.substitute(node, aligned)), clip


def _enable_fused_attention(module: nn.Module) -> bool:
    """Make every timm attention inside ``module`` call F.scaled_dot_product_attention (their
    ``fused_attn`` switch); False when none has the switch (attention computed by hand)."""
    found = False
    for sub in module.modules():
        if hasattr(sub, "fused_attn"):
            sub.fused_attn, found = True, True
    return found


def space_time_attention(rw: Rewriter, node: fx.Node, module: nn.Module, plain: bool = False,
                         block: bool = False) -> HandlerResult | ModuleResult:
    """An attention module (or a block holding one) → :class:`~.modules.SpaceTimeAttention`
    with the policy's mode. "joint" needs the module to attend through
    F.scaled_dot_product_attention; a module that computes attention by hand attends within
    each frame instead, and the report says so (inflate_model warns)."""
    from timm.models import convit, levit, mvitv2

    _, clip = first_clip(rw, node)
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
    op, _ = rw.inflate_op(OpSpec("attention", path, role=rw.role(path)))
    temporal_attn = temporal_fc = temporal_norm = None
    if mode == "divided":
        temporal_attn, temporal_fc, temporal_norm = _temporal_branch(module, block, width)
    wrapped = m3d.SpaceTimeAttention(attn, mode, temporal_attn, temporal_fc, temporal_norm,
                                     joint=joint, time_dim=time_dim,
                                     channel_dim=channel_dim, where=path)
    record = LayerRecord.of(path, type(module).__name__, f"SpaceTimeAttention({mode})", op,
                            "inflated" if mode != "frames" else "per-frame")
    # the model's own extra arguments (masks, rotary tables, sizes) pass through unchanged
    return ModuleResult(wrapped, record, time_axis=None, layout=(clip, None) if with_sizes else clip, pass_args=True)


def _temporal_branch(module: nn.Module, block: bool, width: int) -> tuple[nn.Module, nn.Linear, nn.Module | None]:
    """Divided attention's additions for ``module``: a timm ``Attention`` over time copying the
    spatial attention's projections (a fresh one when they cannot be read; ``temporal_fc`` = 0
    keeps the 2D output either way), the zero ``temporal_fc``, and for a block its ``norm1``."""
    from timm.layers import Attention

    from ....rules.attention import temporal_branch_weights

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
    set_params(temporal_fc, {"weight": weights["temporal_fc.weight"], "bias": weights["temporal_fc.bias"]},
                temporal_fc)
    return temporal_attn, temporal_fc, norm


def _nchw_attention() -> tuple[type, ...]:
    from timm.models import maxxvit

    return (maxxvit.Attention2d, maxxvit.PartitionAttention2d)


# ----- modules the non-strict fallback runs per frame as a whole -----

#: matmul-like functions a TorchFunctionMode sees when attention is computed by hand
_MATMULS = (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.Tensor.__rmatmul__, torch.bmm,
            torch.Tensor.bmm, torch.baddbmm, torch.Tensor.baddbmm, torch.mm, torch.Tensor.mm, torch.einsum)


class _ProductsOfActivations(torch.overrides.TorchFunctionMode):
    """Counts matrix products of two tensors that both depend on the module's input (they
    require grad while the parameters do not): hand-written attention (q @ kᵀ, attn @ v,
    DaViT's channel attention), which mixes tokens within a frame only. A product with a
    parameter or a position table (a projection, SAM's relative-position einsum) is not one."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _MATMULS:
            flat = [a for a in args for a in (a if isinstance(a, (list, tuple)) else (a,))]
            if sum(isinstance(a, torch.Tensor) and a.requires_grad for a in flat) >= 2:
                self.count += 1
        return func(*args, **(kwargs or {}))


def _route_through_sdpa(module: nn.Module) -> None:
    """In place (on a copy): timm's ``fused_attn`` switches on, and hand-written window
    attention replaced by its SDPA form (:mod:`..timm_sdpa`)."""
    _enable_fused_attention(module)
    try:
        from ..timm_sdpa import use_sdpa_forms
    except ImportError:  # timm not installed: only the switch-free SDPA calls
        return
    use_sdpa_forms(module)


# verdicts of _joint_check by module structure (inflated.module_signature: type, plain settings,
# parameter shapes, children) and input shapes: the non-strict fallback re-runs the rewrite once
# for each module it finds, and a model repeats the same block (SAM's ViT: 12 alike)
_VERDICTS: dict[Any, str] = {}


def _joint_copy(original: nn.Module, shapes: tuple[tuple[int, ...], ...]) -> nn.Module | None:
    """A copy of ``original`` routed through SDPA that :func:`_joint_check` accepts, or None.
    The verdict is remembered for modules of the same structure and input shapes."""
    from ..inflated import module_signature

    key: Any = (module_signature(original), shapes)
    try:
        hash(key)
    except TypeError:  # a setting holding a list: checked every time
        key = (id(original), object())
    if _VERDICTS.get(key):
        return None
    attn = copy.deepcopy(original)
    _route_through_sdpa(attn)
    if key not in _VERDICTS:
        if len(_VERDICTS) > 1024:  # a long session converting many models
            _VERDICTS.clear()
        _VERDICTS[key] = _joint_check(original, attn, shapes)
    return None if _VERDICTS[key] else attn


def _joint_check(original: nn.Module, attn: nn.Module, shapes: tuple[tuple[int, ...], ...]) -> str:
    """Why ``attn`` (``original`` routed through SDPA) cannot run jointly on folded frames of
    2D inputs of ``shapes`` (every input carries time), or "" where it can. One run on 2 clips
    of 2 time slots (fixed random values; the second clip boring: its two frames the same):

    * every attention call is an SDPA that :class:`~..space_time.JointAttention` makes joint
      (at least one, and no product of two activations left: attention computed by hand);
    * the output of the first clip's first slot depends on its other slot (it attends across
      time) and not at all on the other clip (the batch axis is never mixed): read off the gradient;
    * on the boring clip it gives ``original``'s per-frame output (exact, as the joint forms are)."""
    parameter = next(attn.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
    batch, slots = 2, 2
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(batch, slots, *shape[1:], generator=generator).to(device=device, dtype=dtype)
              for shape in shapes]
    for x in inputs:
        x[1, 1] = x[1, 0]
        x.requires_grad_(True)
    frozen = [(p, p.requires_grad) for p in attn.parameters()]
    was_training = attn.training, original.training
    attn.eval(), original.eval()
    try:
        for p, _ in frozen:
            p.requires_grad_(False)
        with torch.enable_grad(), _ProductsOfActivations() as products, \
                space_time.JointAttention(batch, slots, "the check") as joint:
            y = attn(*(x.flatten(0, 1) for x in inputs))
        if not isinstance(y, torch.Tensor) or y.shape[0] != batch * slots or not y.requires_grad:
            return "its output does not keep the folded frames first"
        if joint.calls == 0:
            return "it calls no F.scaled_dot_product_attention"
        if products.count:
            return f"{products.count} attention products computed by hand"
        y = y.unflatten(0, (batch, slots))
        weights = torch.randn(y.shape[2:], generator=generator).to(device=device, dtype=y.dtype)
        grads = torch.autograd.grad((y[0, 0] * weights).sum(), inputs, allow_unused=True)
        grads = [g for g in grads if g is not None]
        if any(g[1].abs().max() != 0 for g in grads):
            return "the frames of different clips mix"
        if all(g[0, 1].abs().max() == 0 for g in grads):
            return "its attention does not reach the other time slots"
        with torch.no_grad():
            frame_out = original(*(x[1].detach() for x in inputs))
        tolerance = (1e-4 if dtype in (torch.float32, torch.float64) else 1e-2) * frame_out.abs().max().item()
        if not (y[1].detach() - frame_out).abs().max().item() <= tolerance:
            return "on boring clips it differs from the 2D module"
        return ""
    except Exception as error:  # any failure of the trial run: the module stays frame-wise
        return f"{type(error).__name__}: {error}"
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
        attn.train(was_training[0]), original.train(was_training[1])


def joint_whole_module(rw: Rewriter, node: fx.Node) -> HandlerResult | None:
    """A module with no rule that would run per frame as a whole (the non-strict fallback's
    enclosing module, a timm leaf) made to attend across time, where the policy's attention is
    "joint" and the module attends through F.scaled_dot_product_attention once its ``fused_attn``
    switches are on and its hand-written window attention has its SDPA form: the copy becomes
    :class:`~..modules.SpaceTimeAttention` (``joint="sdpa"``) and is reported as inflated
    attention. Its positional inputs carry time (GCViT's blocks take the global query beside
    the tokens), other arguments are constants; it returns one tensor with the batch first.
    :func:`_joint_check` verifies the copy on a sample first. None where any of this does not
    hold: the caller then runs the module per frame (reported "frame-wise")."""
    if rw.policy.attention != "joint" or node.op != "call_module" or not node.args:
        return None
    if any(isinstance(a, fx.Node) for a in node.kwargs.values()) or \
            not all(isinstance(a, fx.Node) for a in node.args):
        return None  # the check has values for clips only
    clips, shapes = [rw.info(a) for a in node.args], [rw.meta(a) for a in node.args]
    if not all(isinstance(c, Clip) and not c.collapsed and c.td >= 1 for c in clips) or \
            not all(isinstance(s, tuple) and s and s[0] == rw.batch_size for s in shapes):
        return None
    clip, out_shape = clips[0], rw.meta(node)
    if not isinstance(out_shape, tuple) or not out_shape or not all(isinstance(s, int) for s in out_shape) or \
            out_shape[0] != rw.batch_size or clip.td > len(out_shape):
        return None
    module = rw.submodule(node)
    path = str(node.target)
    attn = _joint_copy(module, tuple(tuple(s) for s in shapes))
    if attn is None:
        return None
    op, _ = rw.inflate_op(OpSpec("attention", path, role=rw.role(path)))
    wrapped = m3d.SpaceTimeAttention(attn, "joint", joint="sdpa", time_dim=clip.td, where=path,
                                     arg_time_dims=tuple(c.td for c in clips[1:]))
    record = LayerRecord.of(path, type(module).__name__, "SpaceTimeAttention(joint)", op)
    return rw.place(node, ModuleResult(wrapped, record, time_axis=None, layout=Clip(clip.td, len(out_shape)),
                                       pass_args=True))
