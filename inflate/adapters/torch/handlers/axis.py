"""Ops that name tensor axes (rule ``axis``): attribute and size reads, indexing, cat/stack,
split/chunk/unbind, reductions, flatten/reshape/view, permute/transpose, (un)squeeze, softmax.
Their axis arguments are renumbered around the time axis, which travels with the 2D axis it
precedes (:mod:`..layout`); a reshape that mixes time with other axes runs frame by frame, one
that regroups the batch axis puts time in its conventional place (beside the tokens)."""

from __future__ import annotations

import builtins
import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ....core.geometry import reduce_axes
from .. import layout
from ..layout import Clip, dim_to_3d, normalize_dim
from ..registry import handles
from ..rewriter import BATCH_META, HandlerResult, Rewriter, batch_group, pointwise_result
from ._common import arg, first_clip

__all__ = ["flatten_clip"]


# ----- shapes -----

@handles("axis", builtins.getattr)
def getattr_(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = first_clip(rw, node)
    name = node.args[1]
    if name == "shape":
        return rw.call_function(layout.shape_without_time, x, clip.td), None
    if name == "ndim":
        return clip.rank2d, None
    if name in ("dtype", "device", "is_cuda", "requires_grad"):
        return rw.call_function(builtins.getattr, x, name), None
    return rw.frame_wise(node, f"attribute {name!r} of a tensor that carries time")


@handles("axis", "size")
def size(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = first_clip(rw, node)
    dim = arg(node, 1, "dim")
    if dim is None:
        return rw.call_function(layout.shape_without_time, x, clip.td), None
    return rw.call_method("size", x, dim_to_3d(dim, clip)), None


@handles("axis", "dim", "ndimension")
def dim_(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return rw.info(node.args[0]).rank2d, None


# ----- indexing and sequences -----

@handles("axis", operator.getitem)
def getitem(rw: Rewriter, node: fx.Node) -> HandlerResult:
    source, index = node.args
    info = rw.info(source)
    value = rw.env[source][0]
    if isinstance(info, tuple):  # one result of split/chunk
        if not isinstance(index, int):
            if isinstance(index, slice):
                return rw.call_function(operator.getitem, value, index), info[index]
            return rw.frame_wise(node, "a sequence indexed by a traced value")
        return rw.call_function(operator.getitem, value, index), info[index]
    if not isinstance(info, Clip):
        return rw.frame_wise(node)
    entries = list(index) if isinstance(index, tuple) else [index]
    if any(not (e is None or e is Ellipsis or isinstance(e, (int, slice))) for e in entries):
        return rw.frame_wise(node, "indexing with tensors")
    consumed = sum(1 for e in entries if e is not None and e is not Ellipsis)
    if Ellipsis in entries:
        at = entries.index(Ellipsis)
        entries[at:at + 1] = [slice(None)] * (info.rank2d - consumed)
    entries += [slice(None)] * (info.rank2d - sum(1 for e in entries if e is not None))
    new_entries: list[Any] = []
    out_dim = 0  # output axes emitted so far (2D)
    in_dim = 0
    out_td = None
    for entry in entries:
        if entry is not None and in_dim == info.td and out_td is None:
            new_entries.append(slice(None))
            out_td = out_dim
        new_entries.append(entry)
        if entry is None:
            out_dim += 1
        else:
            in_dim += 1
            if not isinstance(entry, int):
                out_dim += 1
    if out_td is None:  # time at the very end
        new_entries.append(slice(None))
        out_td = out_dim
    # slice bounds may be traced values (x[:, :n] with n from x.shape): map them too
    new_entries = [slice(rw.value(e.start), rw.value(e.stop), rw.value(e.step)) if isinstance(e, slice) else e
                   for e in new_entries]
    out = rw.call_function(operator.getitem, value, tuple(new_entries))
    return out, Clip(out_td, len(rw.shape2d(node)), info.collapsed)


def _same_td(rw: Rewriter, node: fx.Node, tensors: list[fx.Node]) -> tuple[list[Any], Clip]:
    """Bring every tensor to the first clip's time axis. A tensor without time (a class token
    joined to patch tokens) is repeated for every time step: each frame gets its own copy."""
    infos = [rw.info(t) for t in tensors]
    clips = [(t, i) for t, i in zip(tensors, infos) if isinstance(i, Clip)]
    if any(i is not None and not isinstance(i, Clip) for i in infos):
        raise rw.unsupported(node, "it joins sequences of tensors")
    ref_node, ref = clips[0]
    ref_value = rw.move_time(rw.env[ref_node][0], ref, ref.td)[0]
    values = []
    for tensor, info in zip(tensors, infos):
        if isinstance(info, Clip):
            values.append(rw.move_time(rw.env[tensor][0], info, ref.td)[0])
        else:
            if len(rw.shape2d(tensor)) != ref.rank2d:
                raise rw.unsupported(node, "it joins tensors of different ranks")
            sizes = [-1] * (ref.rank2d + 1)
            sizes[ref.td] = rw.frames(ref_value, ref)
            values.append(rw.call_method("expand", rw.call_method("unsqueeze", rw.env[tensor][0], ref.td), *sizes))
    return values, Clip(ref.td, ref.rank2d, all(i.collapsed for _, i in clips))


@handles("axis", torch.cat, torch.concat, torch.concatenate)
def cat(rw: Rewriter, node: fx.Node) -> HandlerResult:
    tensors = list(arg(node, 0, "tensors"))
    dim = arg(node, 1, "dim", 0)
    values, clip = _same_td(rw, node, tensors)
    return rw.call_function(torch.cat, values, dim_to_3d(dim, clip)), clip


@handles("axis", torch.stack)
def stack(rw: Rewriter, node: fx.Node) -> HandlerResult:
    tensors = list(arg(node, 0, "tensors"))
    dim = normalize_dim(arg(node, 1, "dim", 0), rw.info(tensors[0]).rank2d + 1)
    values, clip = _same_td(rw, node, tensors)
    if dim <= clip.td:
        return rw.call_function(torch.stack, values, dim), Clip(clip.td + 1, clip.rank2d + 1, clip.collapsed)
    return rw.call_function(torch.stack, values, dim + 1), Clip(clip.td, clip.rank2d + 1, clip.collapsed)


def _split(rw: Rewriter, node: fx.Node, method: str) -> HandlerResult:
    x, clip = first_clip(rw, node)
    dim = arg(node, 2, "dim", 0)
    if normalize_dim(dim, clip.rank2d) == clip.td:
        return rw.frame_wise(node, "splitting the axis that time precedes")
    sizes = node.args[1] if len(node.args) > 1 else node.kwargs.get(
        "split_size_or_sections", node.kwargs.get("chunks", node.kwargs.get("split_size")))
    out = rw.call_method(method, x, rw.value(sizes), dim_to_3d(dim, clip))
    count = len(rw.meta(node))
    return out, tuple(clip for _ in range(count))


@handles("axis", torch.split, torch.functional.split)
def split_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _split(rw, node, "split")


@handles("axis", "split")
def split_method(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _split(rw, node, "split")


@handles("axis", torch.chunk)
def chunk_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _split(rw, node, "chunk")


@handles("axis", "chunk")
def chunk_method(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _split(rw, node, "chunk")


@handles("axis", "unbind", torch.unbind)
def unbind(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = first_clip(rw, node)
    dim = normalize_dim(arg(node, 1, "dim", 0), clip.rank2d)
    if dim == clip.td:
        return rw.frame_wise(node, "unbinding the axis that time precedes")
    td = clip.td - 1 if dim < clip.td else clip.td
    count = len(rw.meta(node))
    return rw.call_method("unbind", x, dim_to_3d(dim, clip)), tuple(Clip(td, clip.rank2d - 1, clip.collapsed)
                                                                     for _ in range(count))



# ----- reductions -----

def _reduction(rw: Rewriter, node: fx.Node, name: str) -> HandlerResult:
    x, clip = first_clip(rw, node)
    dim = arg(node, 1, "dim")
    keepdim = bool(arg(node, 2, "keepdim", False))
    extra = {k: v for k, v in node.kwargs.items() if k not in ("dim", "keepdim", "input")}
    if dim is None:
        return rw.call_method(name, x, **extra), None
    # reducing the axis time travels with reduces time too (a global pool)
    reduction = reduce_axes(dim if isinstance(dim, (tuple, list)) else [dim], clip.td, clip.rank2d)
    out = rw.call_method(name, x, reduction.axes, keepdim=keepdim, **extra)
    if name == "sum" and reduction.over_time and not clip.collapsed:
        # a sum over tokens is the 2D sum averaged over time: the same value on a boring clip
        out = rw.call_function(layout.mean_over_slots, out, rw.frames(x, clip))
    if keepdim:
        return out, clip.with_(collapsed=clip.collapsed or reduction.over_time)
    if reduction.time_axis is None:
        return out, None
    return out, Clip(reduction.time_axis, reduction.rank2d, clip.collapsed)


@handles("axis", "mean", "sum", "amax", "amin", torch.mean, torch.sum, torch.amax, torch.amin)
def reduction(rw: Rewriter, node: fx.Node) -> HandlerResult:
    """mean, sum, amax, amin over some axes, emitted as the tensor method of the same name."""
    name = node.target if isinstance(node.target, str) else node.target.__name__
    return _reduction(rw, node, name)


@handles("axis", "max", "min", torch.max, torch.min)
def max_min(rw: Rewriter, node: fx.Node) -> HandlerResult:
    """max/min: over every element; element-wise against another tensor; or along ``dim``, giving
    (values, indices). Along the axis time travels with (VOLO's token max before its head) it
    takes the extreme over time too, time merged into that axis: the indices then count
    positions over (time, axis), time-major."""
    other = arg(node, 1, "other")
    if isinstance(other, fx.Node):  # torch.max(a, b): element-wise
        return pointwise_result(rw, node)
    name = node.target if isinstance(node.target, str) else node.target.__name__
    x, clip = first_clip(rw, node)
    dim = arg(node, 1, "dim")
    if dim is None:
        return rw.call_method(name, x), None
    keepdim = bool(arg(node, 2, "keepdim", False))
    dim = normalize_dim(dim, clip.rank2d)
    if clip.collapsed:
        return rw.call_method(name, rw.call_method("squeeze", x, clip.td), dim, keepdim), (None, None)
    reduction = reduce_axes([dim], clip.td, clip.rank2d)
    if not reduction.over_time:
        piece = clip if keepdim else Clip(reduction.time_axis, reduction.rank2d)
        return rw.call_method(name, x, dim_to_3d(dim, clip), keepdim), (piece, piece)
    moved, _ = rw.move_time(x, clip, dim)
    return rw.call_method(name, rw.call_method("flatten", moved, dim, dim + 1), dim, keepdim), (None, None)


def flatten_clip(rw: Rewriter, node: fx.Node, x: Any, clip: Clip, start: int, end: int) -> HandlerResult:
    start, end = normalize_dim(start, clip.rank2d), normalize_dim(end, clip.rank2d)
    if clip.collapsed:
        squeezed = rw.call_method("squeeze", x, clip.td)
        return rw.call_method("flatten", squeezed, start, end), None
    if start < clip.td <= end:
        # Time would merge into the flattened axis: keep it apart, in front of it, so every
        # frame keeps its own features (a per-frame head then gives per-frame logits).
        moved, _ = rw.move_time(x, clip, start)
        return rw.call_method("flatten", moved, start + 1, end + 1), Clip(start, len(rw.shape2d(node)))
    out = rw.call_method("flatten", x, dim_to_3d(start, clip), dim_to_3d(end, clip))
    td = clip.td if clip.td <= start else clip.td - (end - start)
    return out, Clip(td, len(rw.shape2d(node)))


@handles("axis", torch.flatten)
def flatten_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = first_clip(rw, node)
    return flatten_clip(rw, node, x, clip, arg(node, 1, "start_dim", 0), arg(node, 2, "end_dim", -1))


@handles("axis", "flatten")
def flatten_method(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return flatten_fn(rw, node)


def _prod(values: tuple[int, ...]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def _time_split_point(before: tuple[int, ...], after: tuple[int, ...], td: int) -> int | None:
    """Where time goes in a reshape from ``before`` to ``after`` if the axes in front of time
    are reshaped among themselves and the axes behind it likewise; None if they mix."""
    front = _prod(before[:td])
    for k in range(len(after) + 1):
        if _prod(after[:k]) == front and _prod(after[k:]) == _prod(before[td:]):
            return k
    return None


def _reshape(rw: Rewriter, node: fx.Node, method: str) -> HandlerResult:
    x, clip = first_clip(rw, node)
    shape = node.args[1:] if node.op == "call_method" else (node.args[1],) if len(node.args) > 1 else (node.kwargs["shape"],)
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, fx.Node)):
        shape = shape[0]
    shape = rw.value(shape if isinstance(shape, fx.Node) else tuple(shape))
    before, after = rw.shape2d(node.args[0]), rw.shape2d(node)
    if clip.collapsed:
        squeezed = rw.call_method("squeeze", x, clip.td)
        return rw.call_method(method, squeezed, shape), None
    for td in (clip.td, 1):
        k = _time_split_point(before, after, td)
        if k is not None:
            moved, moved_clip = rw.move_time(x, clip, td)
            target = rw.call_function(layout.insert_time, shape, k, rw.frames(moved, moved_clip))
            out = rw.call_method(method, moved, target)
            place = _regrouped_time_axis(rw, node, len(after))
            if place is not None and place != k:
                out = rw.call_method("movedim", out, k, place)
                k = place
            return out, Clip(k, len(after))
    return rw.frame_wise(node, f"a reshape from {before} to {after} mixes the axes around time")


#: where time sits in a tensor of this rank in the conventional layout: before the tokens of
#: (B, N, C), before the height of (B, C, H, W) (as a patch embedding or a convolution leaves it)
_CONVENTIONAL_TIME_AXIS = {3: 1, 4: 2}


def _regrouped_time_axis(rw: Rewriter, node: fx.Node, rank: int) -> int | None:
    """Where time goes in the output of a reshape that regroups the batch axis: its leading axis
    holds a different number of items per sample before and after (batch-major, as recorded
    on the sample batches: TNT's patches moved into the batch as (B·N, C, p, p) pixel grids and
    back out as (B, N, C·p²) patch tokens, HaloNet's blocks, heads merged into the batch).
    The axis time travelled with has then become part of the batch, or a batch axis has become
    a token axis, so the split point says nothing about which axis holds positions: time takes
    its place in the conventional layout of a rank-3 or rank-4 output
    (:data:`_CONVENTIONAL_TIME_AXIS`): beside the tokens, where attention over them then spans
    every time slot. None for other reshapes and ranks (the split point stands).

    Limits: shapes alone cannot tell channels-first from channels-last, so a (B', H, W, C)
    output gets time before W, still a spatial axis; it applies only where the reshape has a
    split point (one that mixes the axes around time still runs frame by frame)."""
    if rank not in _CONVENTIONAL_TIME_AXIS:
        return None
    source = node.args[0]
    groups = [batch_group(rw, rw.meta(n), n.meta.get(BATCH_META)) for n in (source, node)]
    if None in groups or groups[0] == groups[1]:
        return None
    return _CONVENTIONAL_TIME_AXIS[rank]


@handles("axis", "view", "reshape")
def reshape_method(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _reshape(rw, node, str(node.target))


@handles("axis", torch.reshape)
def reshape_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _reshape(rw, node, "reshape")


def _permute(rw: Rewriter, node: fx.Node, x: Any, clip: Clip, perm: list[int]) -> HandlerResult:
    perm = [normalize_dim(p, clip.rank2d) for p in perm]
    mapped = [dim_to_3d(p, clip) for p in perm]
    if clip.td < clip.rank2d:
        new_td = perm.index(clip.td)  # time stays in front of the axis it preceded
    else:
        new_td = len(perm)
    mapped.insert(new_td, clip.td)
    return rw.call_method("permute", x, tuple(mapped)), clip.with_(td=new_td)


@handles("axis", "permute")
def permute_method(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = first_clip(rw, node)
    perm = node.args[1:] if "dims" not in node.kwargs else node.kwargs["dims"]
    if len(perm) == 1 and isinstance(perm[0], (tuple, list)):
        perm = perm[0]
    return _permute(rw, node, x, clip, list(perm))


@handles("axis", torch.permute)
def permute_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = first_clip(rw, node)
    return _permute(rw, node, x, clip, list(arg(node, 1, "dims")))


@handles("axis", "transpose", "swapaxes", torch.transpose)
def transpose_method(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = first_clip(rw, node)
    a, b = normalize_dim(node.args[1], clip.rank2d), normalize_dim(node.args[2], clip.rank2d)
    perm = list(range(clip.rank2d))
    perm[a], perm[b] = perm[b], perm[a]
    return _permute(rw, node, x, clip, perm)



@handles("axis", "unsqueeze", torch.unsqueeze)
def unsqueeze(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = first_clip(rw, node)
    dim = normalize_dim(arg(node, 1, "dim"), clip.rank2d + 1)
    if dim <= clip.td:
        return rw.call_method("unsqueeze", x, dim), Clip(clip.td + 1, clip.rank2d + 1, clip.collapsed)
    return rw.call_method("unsqueeze", x, dim + 1), Clip(clip.td, clip.rank2d + 1, clip.collapsed)



@handles("axis", "squeeze", torch.squeeze)
def squeeze(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = first_clip(rw, node)
    dim = arg(node, 1, "dim")
    before = rw.shape2d(node.args[0])
    dims = [d for d, s in enumerate(before) if s == 1] if dim is None else [
        normalize_dim(d, clip.rank2d) for d in (dim if isinstance(dim, (tuple, list)) else [dim])]
    dims = [d for d in dims if before[d] == 1]
    out = rw.call_method("squeeze", x, tuple(dim_to_3d(d, clip) for d in dims)) if dims else x
    td = clip.td - sum(1 for d in dims if d < clip.td)
    return out, Clip(td, clip.rank2d - len(dims), clip.collapsed)



def _along_tokens(clip: Clip, dim: int) -> bool:
    """Whether 2D axis ``dim`` is the token axis the clip's time travels with (not a frame index
    left by a frame-wise op, nor pooled away): softmax and normalize along it span all slots."""
    return clip.td < clip.rank2d and normalize_dim(dim, clip.rank2d) == clip.td and not clip.collapsed \
        and not clip.framed


def _softmax(rw: Rewriter, node: fx.Node, fn: Any, method: bool) -> HandlerResult:
    """Softmax along one axis; along the axis time travels with (tokens), over the tokens of every
    time slot together, each weight kept at its 2D value on a boring clip
    (:func:`~..layout.softmax_over_time`)."""
    x, clip = first_clip(rw, node)
    dim = arg(node, 1, "dim")
    rest = {k: v for k, v in node.kwargs.items() if k not in ("dim", "input")}
    if _along_tokens(clip, dim) and set(rest) <= {"dtype"}:
        log = (fn if method else fn.__name__) == "log_softmax"
        return rw.call_function(layout.softmax_over_time, x, clip.td + 1, clip.td, log, rest.get("dtype")), clip
    if method:
        return rw.call_method(fn, x, dim_to_3d(dim, clip), **rest), clip
    return rw.call_function(fn, x, dim_to_3d(dim, clip), **rest), clip


@handles("axis", F.softmax, F.log_softmax, torch.softmax, torch.log_softmax)
def softmax_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _softmax(rw, node, node.target, False)


@handles("axis", "softmax", "log_softmax")
def softmax_method(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _softmax(rw, node, str(node.target), True)




@handles("axis", F.normalize)
def normalize(rw: Rewriter, node: fx.Node) -> HandlerResult:
    """F.normalize along one axis; along the axis time travels with (tokens), over the tokens of
    every time slot with the norm's mean over time (:func:`~..layout.normalize_over_time`), so that
    each entry keeps its 2D value on a boring clip."""
    x, clip = first_clip(rw, node)
    p, dim, eps = arg(node, 1, "p", 2.0), arg(node, 2, "dim", 1), arg(node, 3, "eps", 1e-12)
    if arg(node, 4, "out") is not None:
        return rw.frame_wise(node, "F.normalize with out=")
    if _along_tokens(clip, dim):
        return rw.call_function(layout.normalize_over_time, x, p, clip.td + 1, clip.td, eps), clip
    return rw.call_function(F.normalize, x, p, dim_to_3d(dim, clip), eps), clip


@handles("axis", nn.Flatten)
def flatten_module(rw: Rewriter, node: fx.Node) -> HandlerResult:
    module = rw.submodule(node)
    x, clip = first_clip(rw, node)
    return flatten_clip(rw, node, x, clip, module.start_dim, module.end_dim)


@handles("axis", nn.Unfold, nn.Fold, F.unfold, F.fold)
def sliding_blocks(rw: Rewriter, node: fx.Node) -> HandlerResult:
    """im2col and col2im (nn.Unfold/nn.Fold: VOLO's outlook attention, TNT's pixel embedding): each
    image's sliding k×k blocks, a rearrangement with a time window of 1, so per frame is exact."""
    return rw.frame_wise(node, "sliding blocks of an input whose batch axis moved", declared=True)
