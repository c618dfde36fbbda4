"""Handlers for functions and tensor methods: element-wise ops, reductions, reshapes,
indexing, concatenation and the functional forms of pooling, padding and resampling."""

from __future__ import annotations

import builtins
import operator
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import fx

from ...core.rules import get_rule
from ...core.spec import OpSpec
from . import layout, space_time
from .layout import Clip, dim_to_3d, normalize_dim
from .rewriter import HandlerResult, LayerRecord, Rewriter, node_path, pointwise_result

__all__ = ["FUNCTION_HANDLERS", "METHOD_HANDLERS", "register_function", "register_method"]

FUNCTION_HANDLERS: dict[Callable[..., Any], Callable[[Rewriter, fx.Node], HandlerResult]] = {}
METHOD_HANDLERS: dict[str, Callable[[Rewriter, fx.Node], HandlerResult]] = {}


def register_function(*targets: Callable[..., Any]):
    def decorator(handler):
        for target in dict.fromkeys(targets):  # aliases such as torch.split is torch.functional.split
            if target in FUNCTION_HANDLERS:
                raise KeyError(f"a handler for {target} is already registered")
            FUNCTION_HANDLERS[target] = handler
        return handler
    return decorator


def register_method(*names: str):
    def decorator(handler):
        for name in names:
            if name in METHOD_HANDLERS:
                raise KeyError(f"a handler for Tensor.{name} is already registered")
            METHOD_HANDLERS[name] = handler
        return handler
    return decorator


def _arg(node: fx.Node, index: int, name: str, default: Any = None) -> Any:
    if name in node.kwargs:
        return node.kwargs[name]
    return node.args[index] if len(node.args) > index else default


def _self(rw: Rewriter, node: fx.Node) -> tuple[Any, Clip]:
    """The (3D value, layout) of a node's first argument, which must carry time."""
    first = node.args[0]
    return rw.env[first][0], rw.info(first)


# ----- element-wise -----

_POINTWISE_FUNCTIONS = [
    operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.pow,
    operator.neg, operator.iadd, operator.imul, operator.isub, operator.itruediv,
    torch.add, torch.sub, torch.mul, torch.div, torch.sigmoid, torch.tanh, torch.relu, torch.clamp,
    torch.exp, torch.sqrt, torch.rsqrt, torch.abs, torch.where, torch.maximum, torch.minimum, torch.erf,
    torch.clip, torch.neg, torch.pow, torch.square,
    F.relu, F.relu6, F.gelu, F.silu, F.sigmoid, F.hardsigmoid, F.hardswish, F.leaky_relu, F.elu, F.selu,
    F.mish, F.softplus, F.tanh, F.hardtanh, F.dropout, F.celu, F.gelu, F.prelu, F.threshold,
]
_POINTWISE_METHODS = [
    "add", "sub", "mul", "div", "sigmoid", "tanh", "relu", "clamp", "clamp_min", "clamp_max", "exp", "sqrt",
    "rsqrt", "abs", "neg", "pow", "square", "erf", "add_", "mul_", "sub_", "div_", "sigmoid_", "relu_",
    "clamp_", "contiguous", "clone", "float", "half", "double", "bfloat16", "to", "type_as", "detach",
    "masked_fill", "where", "maximum", "minimum", "tanh_", "hardtanh_", "exp_",
]


def pointwise(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return pointwise_result(rw, node)


for _fn in dict.fromkeys(_POINTWISE_FUNCTIONS):
    FUNCTION_HANDLERS[_fn] = pointwise
for _name in _POINTWISE_METHODS:
    METHOD_HANDLERS[_name] = pointwise


# ----- shapes -----

@register_function(builtins.getattr)
def getattr_(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = _self(rw, node)
    name = node.args[1]
    if name == "shape":
        return rw.call_function(layout.shape_without_time, x, clip.td), None
    if name == "ndim":
        return clip.rank2d, None
    if name in ("dtype", "device", "is_cuda", "requires_grad"):
        return rw.call_function(builtins.getattr, x, name), None
    return rw.frame_wise(node, f"attribute {name!r} of a tensor that carries time")


@register_method("size")
def size(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = _self(rw, node)
    dim = _arg(node, 1, "dim")
    if dim is None:
        return rw.call_function(layout.shape_without_time, x, clip.td), None
    return rw.call_method("size", x, dim_to_3d(dim, clip)), None


@register_method("dim", "ndimension")
def dim_(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return rw.info(node.args[0]).rank2d, None


# ----- indexing and sequences -----

@register_function(operator.getitem)
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


@register_function(torch.cat, torch.concat, torch.concatenate)
def cat(rw: Rewriter, node: fx.Node) -> HandlerResult:
    tensors = list(_arg(node, 0, "tensors"))
    dim = _arg(node, 1, "dim", 0)
    values, clip = _same_td(rw, node, tensors)
    return rw.call_function(torch.cat, values, dim_to_3d(dim, clip)), clip


@register_function(torch.stack)
def stack(rw: Rewriter, node: fx.Node) -> HandlerResult:
    tensors = list(_arg(node, 0, "tensors"))
    dim = normalize_dim(_arg(node, 1, "dim", 0), rw.info(tensors[0]).rank2d + 1)
    values, clip = _same_td(rw, node, tensors)
    if dim <= clip.td:
        return rw.call_function(torch.stack, values, dim), Clip(clip.td + 1, clip.rank2d + 1, clip.collapsed)
    return rw.call_function(torch.stack, values, dim + 1), Clip(clip.td, clip.rank2d + 1, clip.collapsed)


def _split(rw: Rewriter, node: fx.Node, method: str) -> HandlerResult:
    x, clip = _self(rw, node)
    dim = _arg(node, 2, "dim", 0)
    if normalize_dim(dim, clip.rank2d) == clip.td:
        return rw.frame_wise(node, "splitting the axis that time precedes")
    sizes = node.args[1] if len(node.args) > 1 else node.kwargs.get(
        "split_size_or_sections", node.kwargs.get("chunks", node.kwargs.get("split_size")))
    out = rw.call_method(method, x, rw.value(sizes), dim_to_3d(dim, clip))
    count = len(rw.meta(node))
    return out, tuple(clip for _ in range(count))


@register_function(torch.split, torch.functional.split)
def split_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _split(rw, node, "split")


@register_method("split")
def split_method(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _split(rw, node, "split")


@register_function(torch.chunk)
def chunk_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _split(rw, node, "chunk")


@register_method("chunk")
def chunk_method(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _split(rw, node, "chunk")


@register_method("unbind")
def unbind(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = _self(rw, node)
    dim = normalize_dim(_arg(node, 1, "dim", 0), clip.rank2d)
    if dim == clip.td:
        return rw.frame_wise(node, "unbinding the axis that time precedes")
    td = clip.td - 1 if dim < clip.td else clip.td
    count = len(rw.meta(node))
    return rw.call_method("unbind", x, dim_to_3d(dim, clip)), tuple(Clip(td, clip.rank2d - 1, clip.collapsed)
                                                                     for _ in range(count))


FUNCTION_HANDLERS[torch.unbind] = unbind


@register_function(F.scaled_dot_product_attention)
def scaled_dot_product_attention(rw: Rewriter, node: fx.Node) -> HandlerResult:
    """Attention over the last two axes (tokens, features) with time among the leading axes:
    under the "joint" policy the time axis joins the tokens (:func:`space_time.joint_sdpa`,
    masks and biases tiled over temporal offsets); otherwise it attends within each frame."""
    q, k, v = node.args[:3]
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
        rw.note(LayerRecord(node_path(node), "F.scaled_dot_product_attention", "joint over time slots", "inflated"))
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
    rw.note(LayerRecord(node_path(node), "F.scaled_dot_product_attention", "same op, per frame", "per-frame"))
    return rw.emit_like(node, *rw.substitute(node, aligned)), clip


# ----- reductions -----

def _reduction(rw: Rewriter, node: fx.Node, name: str) -> HandlerResult:
    x, clip = _self(rw, node)
    dim = _arg(node, 1, "dim")
    keepdim = bool(_arg(node, 2, "keepdim", False))
    extra = {k: v for k, v in node.kwargs.items() if k not in ("dim", "keepdim", "input")}
    if dim is None:
        return rw.call_method(name, x, **extra), None
    dims = sorted({normalize_dim(d, clip.rank2d) for d in (dim if isinstance(dim, (tuple, list)) else [dim])})
    over_time = clip.td in dims  # reducing the axis time travels with reduces time too
    dims3d = [dim_to_3d(d, clip) for d in dims] + ([clip.td] if over_time else [])
    out = rw.call_method(name, x, tuple(sorted(dims3d)), keepdim=keepdim, **extra)
    if keepdim:
        return out, clip.with_(collapsed=clip.collapsed or over_time)
    if over_time:
        return out, None
    td = clip.td - sum(1 for d in dims if d < clip.td)
    return out, Clip(td, clip.rank2d - len(dims), clip.collapsed)


def _make_reduction(name: str):
    def handler(rw: Rewriter, node: fx.Node) -> HandlerResult:
        return _reduction(rw, node, name)
    return handler


for _name, _fn in (("mean", torch.mean), ("sum", torch.sum), ("amax", torch.amax), ("amin", torch.amin)):
    METHOD_HANDLERS[_name] = _make_reduction(_name)
    FUNCTION_HANDLERS[_fn] = _make_reduction(_name)


# ----- reshaping -----

def _flatten(rw: Rewriter, node: fx.Node, x: Any, clip: Clip, start: int, end: int) -> HandlerResult:
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


@register_function(torch.flatten)
def flatten_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = _self(rw, node)
    return _flatten(rw, node, x, clip, _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1))


@register_method("flatten")
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
    x, clip = _self(rw, node)
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
            return rw.call_method(method, moved, target), Clip(k, len(after))
    return rw.frame_wise(node, f"a reshape from {before} to {after} mixes the axes around time")


@register_method("view", "reshape")
def reshape_method(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _reshape(rw, node, str(node.target))


@register_function(torch.reshape)
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


@register_method("permute")
def permute_method(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = _self(rw, node)
    perm = node.args[1:] if "dims" not in node.kwargs else node.kwargs["dims"]
    if len(perm) == 1 and isinstance(perm[0], (tuple, list)):
        perm = perm[0]
    return _permute(rw, node, x, clip, list(perm))


@register_function(torch.permute)
def permute_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = _self(rw, node)
    return _permute(rw, node, x, clip, list(_arg(node, 1, "dims")))


@register_method("transpose", "swapaxes")
def transpose_method(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = _self(rw, node)
    a, b = normalize_dim(node.args[1], clip.rank2d), normalize_dim(node.args[2], clip.rank2d)
    perm = list(range(clip.rank2d))
    perm[a], perm[b] = perm[b], perm[a]
    return _permute(rw, node, x, clip, perm)


FUNCTION_HANDLERS[torch.transpose] = transpose_method


@register_method("unsqueeze")
def unsqueeze(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = _self(rw, node)
    dim = normalize_dim(_arg(node, 1, "dim"), clip.rank2d + 1)
    if dim <= clip.td:
        return rw.call_method("unsqueeze", x, dim), Clip(clip.td + 1, clip.rank2d + 1, clip.collapsed)
    return rw.call_method("unsqueeze", x, dim + 1), Clip(clip.td, clip.rank2d + 1, clip.collapsed)


FUNCTION_HANDLERS[torch.unsqueeze] = unsqueeze


@register_method("squeeze")
def squeeze(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = _self(rw, node)
    dim = _arg(node, 1, "dim")
    before = rw.shape2d(node.args[0])
    dims = [d for d, s in enumerate(before) if s == 1] if dim is None else [
        normalize_dim(d, clip.rank2d) for d in (dim if isinstance(dim, (tuple, list)) else [dim])]
    dims = [d for d in dims if before[d] == 1]
    out = rw.call_method("squeeze", x, tuple(dim_to_3d(d, clip) for d in dims)) if dims else x
    td = clip.td - sum(1 for d in dims if d < clip.td)
    return out, Clip(td, clip.rank2d - len(dims), clip.collapsed)


FUNCTION_HANDLERS[torch.squeeze] = squeeze


def _softmax(rw: Rewriter, node: fx.Node, fn: Any, method: bool) -> HandlerResult:
    x, clip = _self(rw, node)
    dim = _arg(node, 1, "dim")
    rest = {k: v for k, v in node.kwargs.items() if k not in ("dim", "input")}
    if method:
        return rw.call_method(fn, x, dim_to_3d(dim, clip), **rest), clip
    return rw.call_function(fn, x, dim_to_3d(dim, clip), **rest), clip


for _f in (F.softmax, F.log_softmax, torch.softmax, torch.log_softmax):
    FUNCTION_HANDLERS[_f] = (lambda f: lambda rw, node: _softmax(rw, node, f, False))(_f)
for _m in ("softmax", "log_softmax"):
    METHOD_HANDLERS[_m] = (lambda m: lambda rw, node: _softmax(rw, node, m, True))(_m)


# ----- last-axis ops (channels-last norms and linear layers) -----

def last_axes(rw: Rewriter, node: fx.Node, count: int) -> HandlerResult:
    """An op on the last ``count`` axes (F.linear, F.layer_norm): time must not be among them."""
    x, clip = _self(rw, node)
    if clip.td > clip.rank2d - count:
        x, clip = rw.move_time(x, clip, 1)
        if clip.td > clip.rank2d - count:
            return rw.frame_wise(node)
    args = (x,) + tuple(rw.value(a) for a in node.args[1:])
    out = rw.emit_like(node, args, rw.value(node.kwargs))
    return out, Clip(clip.td, len(rw.shape2d(node)), clip.collapsed)


@register_function(F.linear)
def linear_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return last_axes(rw, node, 1)


@register_function(F.layer_norm)
def layer_norm_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    shape = _arg(node, 1, "normalized_shape")
    return last_axes(rw, node, len(shape) if isinstance(shape, (tuple, list)) else 1)


# ----- functional pooling, padding, resampling -----

def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1])) if len(value) else (0, 0)
    return int(value), int(value)


def _ncthw(rw: Rewriter, node: fx.Node) -> tuple[Any, Clip]:
    x, clip = _self(rw, node)
    if clip.rank2d != 4:
        raise rw.unsupported(node, f"expected a 4D feature map, got {clip.rank2d}D")
    return rw.move_time(x, clip, 2)


def _pool_fn(rw: Rewriter, node: fx.Node, kind: str) -> HandlerResult:
    x, clip = _ncthw(rw, node)
    kernel = _pair(_arg(node, 1, "kernel_size"))
    stride_arg = _arg(node, 2, "stride")
    stride = kernel if stride_arg in (None, [], ()) else _pair(stride_arg)
    padding = _pair(_arg(node, 3, "padding", 0))
    path = node_path(node)
    spec = OpSpec(kind, path, kernel, stride, padding, role=rw.role(path))
    time = rw.time_for(spec)
    op = get_rule(kind).describe(spec, time)
    if op.time_pads == "same" or any(op.time_pads):
        mode = op.time_pad_mode if kind != "max_pool" or op.time_pad_mode == "replicate" else "neg_inf"
        x = rw.call_function(_pad_time_fn, x, op.time_pads, mode, op.kernel[0], op.stride[0])
    if kind == "max_pool":
        dilation = _pair(_arg(node, 4, "dilation", 1))
        ceil_mode = bool(_arg(node, 5, "ceil_mode", False))
        out = rw.call_function(F.max_pool3d, x, op.kernel, op.stride, (0, *padding), (1, *dilation), ceil_mode)
    else:
        ceil_mode = bool(_arg(node, 4, "ceil_mode", False))
        include = bool(_arg(node, 5, "count_include_pad", True))
        out = rw.call_function(F.avg_pool3d, x, op.kernel, op.stride, (0, *padding), ceil_mode, include)
    rw.note(LayerRecord(path, f"F.{kind}2d", f"F.{kind}3d", "inflated", op.kernel[0], op.stride[0], "-"))
    return out, clip


def _pad_time_fn(x: torch.Tensor, pads: Any, mode: str, kernel: int, stride: int) -> torch.Tensor:
    from .modules import _resolve_time_pads, pad_time

    return pad_time(x, _resolve_time_pads(x, pads, kernel, stride, 1), mode)


@register_function(F.max_pool2d)
def max_pool_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _pool_fn(rw, node, "max_pool")


@register_function(F.avg_pool2d)
def avg_pool_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _pool_fn(rw, node, "avg_pool")


def _adaptive_fn(rw: Rewriter, node: fx.Node, kind: str, fn3d: Any) -> HandlerResult:
    x, clip = _ncthw(rw, node)
    size = rw.value(_arg(node, 1, "output_size"))
    size2 = _pair(size) if not isinstance(size, (tuple, list)) or None not in size else tuple(size)
    op = get_rule(kind).describe(OpSpec(kind, node_path(node), output_size=size2), rw.time_for(OpSpec(kind)))
    out = rw.call_function(fn3d, x, op.output_size)
    return out, clip.with_(collapsed=clip.collapsed or op.output_size[0] == 1)


@register_function(F.adaptive_avg_pool2d)
def adaptive_avg_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _adaptive_fn(rw, node, "adaptive_avg_pool", F.adaptive_avg_pool3d)


@register_function(F.adaptive_max_pool2d)
def adaptive_max_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    return _adaptive_fn(rw, node, "adaptive_max_pool", F.adaptive_max_pool3d)


@register_function(F.pad)
def pad_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = _self(rw, node)
    pads = list(rw.value(_arg(node, 1, "pad")))
    mode = _arg(node, 2, "mode", "constant")
    value = _arg(node, 3, "value", None)
    covered = len(pads) // 2
    if clip.td > clip.rank2d - covered:  # time must stay out of the padded trailing axes
        x, clip = rw.move_time(x, clip, 1)
    if mode != "constant":
        if not (clip.rank2d == 4 and covered == 2):
            return rw.frame_wise(node, f"{mode} padding of other than the last two axes of a 4D map")
        x, clip = rw.move_time(x, clip, 2)
        pads = pads + [0, 0]
    kwargs = {"mode": mode} if value is None else {"mode": mode, "value": value}
    return rw.call_function(F.pad, x, tuple(pads), **kwargs), clip


@register_function(F.interpolate)
def interpolate_fn(rw: Rewriter, node: fx.Node) -> HandlerResult:
    x, clip = _ncthw(rw, node)
    size = rw.value(_arg(node, 1, "size"))
    scale = rw.value(_arg(node, 2, "scale_factor"))
    mode = _arg(node, 3, "mode", "nearest")
    align = _arg(node, 4, "align_corners")
    mode3d = {"nearest": "nearest", "bilinear": "trilinear", "nearest-exact": "nearest-exact"}.get(mode)
    if mode3d is None:
        return rw.frame_wise(node, f"mode {mode!r} has no 3D form")
    if size is not None:
        target = rw.call_function(layout.insert_time, size if not isinstance(size, int) else (size, size), 0,
                                  rw.frames(x, clip))
        out = rw.call_function(F.interpolate, x, size=target, mode=mode3d, align_corners=align)
    else:
        sh, sw = (scale, scale) if not isinstance(scale, (tuple, list)) else scale
        out = rw.call_function(F.interpolate, x, scale_factor=(1.0, float(sh), float(sw)), mode=mode3d,
                               align_corners=align)
    return out, clip
