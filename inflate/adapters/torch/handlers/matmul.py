"""Matrix products over tokens (rule ``attention``): attention written by hand with ``@``.

The time axis travels with a token axis (:mod:`..layout`), so where it sits in each operand
says what a product means in 3D:

* query rows × key columns (``q @ k.transpose(-2, -1)``, time before the rows of one and the
  columns of the other): scores between the tokens of every time slot
  (:class:`~..layout.Scores`), the product of the operands with time merged into their token
  axes. The ops that read the scores (scale, position biases tiled over the temporal offsets,
  softmax, talking-head projections, dropout) run on them as they are, up to the product with
  the values, which brings time back: joint space-time attention (ViViT's model 1).
* a contraction over tokens (cross-covariance and linear attention: ``k.transpose(-2, -1) @ v``,
  time before the columns of one and the rows of the other): the 2D sum over tokens averaged
  over the time slots.
* time on a leading axis, or token rows (columns) against a matrix without time: the product as
  in 2D, broadcast over time.

Other placements run frame by frame. Every value keeps the 2D graph's value on a boring clip: a
reduction over an axis holding T copies of the 2D entries is averaged over time
(:func:`~..layout.softmax_over_slots`, :func:`~..layout.mean_over_slots`).
"""

from __future__ import annotations

import operator
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import fx, nn

from ....core.spec import OpSpec
from .. import layout
from ..layout import Clip, Scores, normalize_dim
from ..registry import handles
from ..rewriter import HandlerResult, LayerRecord, Rewriter, node_path
from ._common import arg
from .pointwise import POINTWISE_FUNCTIONS, POINTWISE_METHODS, POINTWISE_MODULES

__all__ = ["MATMUL", "matmul", "scores_op"]

MATMUL = (operator.matmul, torch.matmul, torch.bmm, "matmul", "bmm")

_SOFTMAX = {F.softmax: False, torch.softmax: False, F.log_softmax: True, torch.log_softmax: True,
            "softmax": False, "log_softmax": True}
_REDUCTIONS = {torch.sum: "sum", torch.mean: "mean", torch.amax: "amax", "sum": "sum", "mean": "mean",
               "amax": "amax"}
_AXES = (torch.permute, torch.transpose, "permute", "transpose", "swapaxes")
_SCORE_MODULES = (nn.Linear, nn.Conv2d, nn.BatchNorm2d, nn.Softmax, *POINTWISE_MODULES)


def _is_matmul(node: fx.Node) -> bool:
    return node.op in ("call_function", "call_method") and node.target in MATMUL


def _role(info: Any, rank: int) -> Optional[str]:
    """Where time sits in a matrix operand: before its rows, its columns, a leading axis; None without time."""
    if info is None:
        return None
    if not isinstance(info, Clip) or info.collapsed or info.td > rank:
        return "other"
    if info.framed:  # a frame index from a frame-wise op, not time beside a token axis
        return "lead" if info.td < rank - 1 else "other"
    return {rank - 2: "rows", rank - 1: "cols"}.get(info.td, "lead" if info.td < rank - 2 else "other")


@handles("attention", *MATMUL)
def matmul(rw: Rewriter, node: fx.Node) -> HandlerResult:
    """A matrix product of tensors one of which carries time (see the module docstring)."""
    a, b = node.args[:2]
    infos = (rw.info(a), rw.info(b))
    shapes = (rw.meta(a), rw.meta(b))
    if node.kwargs or not all(isinstance(s, tuple) and len(s) >= 2 for s in shapes) or \
            not all(isinstance(i, (Clip, type(None))) for i in infos):
        return rw.frame_wise(node, "a matrix product of operands it cannot place time in")
    ra, rb = len(shapes[0]), len(shapes[1])
    rank = len(rw.shape2d(node))
    roles = (_role(infos[0], ra), _role(infos[1], rb))
    x, y = rw.value(a), rw.value(b)
    path = node_path(node)
    across = rw.policy.attention == "joint"
    if across and roles in (("lead", "cols"), ("rows", "lead")):
        # time as a frame index on a leading axis of the queries (a class token per frame, as in
        # CaiT's and VOLO's class attention) or of the keys: it moves beside their tokens
        if roles[0] == "lead":
            x, clip = rw.move_time(x, infos[0], ra - 2)
            infos = (clip, infos[1])
        else:
            y, clip = rw.move_time(y, infos[1], rb - 1)
            infos = (infos[0], clip)
        roles = ("rows", "cols")
    if roles == ("lead", "lead") and ra - infos[0].td != rb - infos[1].td and 0 <= rb - (ra - infos[0].td) < rb - 2:
        # both frame indices on leading (batch) axes: lined up, the product runs per frame
        y, clip = rw.move_time(y, infos[1], rb - (ra - infos[0].td))
        infos = (infos[0], clip)
    if roles == ("rows", "cols"):
        if not across:
            return rw.frame_wise(node, declared=True)
        if not _scores_close(rw, node):
            return rw.frame_wise(node, "attention scores read by an op with no form across time slots")
        slots = rw.frames(x, infos[0])
        x = rw.call_method("flatten", x, infos[0].td, infos[0].td + 1)
        y = rw.call_method("flatten", y, infos[1].td, infos[1].td + 1)
        _note(rw, path, "q·kᵀ", "scores across all time slots")
        return rw.call_function(operator.matmul, x, y), Scores(rank - 2, rank - 1, rank, slots)
    if roles == ("cols", "rows"):
        if not across:
            return rw.frame_wise(node, declared=True)
        slots = rw.frames(x, infos[0])
        x = rw.call_method("flatten", x, infos[0].td, infos[0].td + 1)
        y = rw.call_method("flatten", y, infos[1].td, infos[1].td + 1)
        _note(rw, path, "contraction over tokens", "over the tokens of all time slots")
        return rw.call_function(layout.mean_over_slots, rw.call_function(operator.matmul, x, y), slots), None
    if roles == ("rows", None):
        y = rw.call_method("unsqueeze", y, rb - 2) if rb >= 3 else y  # the values' batch axes skip time
        return _per_frame(rw, path, rw.call_function(operator.matmul, x, y)), Clip(rank - 2, rank)
    if roles == (None, "cols"):
        y = rw.call_method("movedim", y, infos[1].td, infos[1].td - 1)  # (..., T, d, N)
        x = rw.call_method("unsqueeze", x, ra - 2) if ra >= 3 else x
        out = rw.call_function(operator.matmul, x, y)  # (..., T, M, N)
        return _per_frame(rw, path, rw.call_method("movedim", out, rank - 2, rank - 1)), Clip(rank - 1, rank)
    if "lead" in roles and set(roles) <= {"lead", None}:
        behind = {r - i.td for r, i in zip((ra, rb), infos) if i is not None}  # axes after time
        if len(behind) == 1:
            k = behind.pop()
            aligned = [v if i is not None or r - k <= 0 else rw.call_method("unsqueeze", v, r - k)
                       for v, i, r in zip((x, y), infos, (ra, rb))]
            return _per_frame(rw, path, rw.call_function(operator.matmul, *aligned)), Clip(rank - k, rank)
    return rw.frame_wise(node, "a matrix product with time on axes that do not match", declared=not across)


def _note(rw: Rewriter, path: str, what: str, how: str) -> None:
    op, _ = rw.inflate_op(OpSpec("attention", path, role=rw.role(path)))
    rw.note(LayerRecord.of(path, f"matmul ({what})", how, op))


def _per_frame(rw: Rewriter, path: str, out: fx.Node) -> fx.Node:
    rw.note(LayerRecord(path, "matmul", "same op, broadcast over time", "per-frame", kind="attention"))
    return out


# ----- the ops between the scores and their product with the values -----

def _score_op(rw: Rewriter, node: fx.Node) -> bool:
    """Whether ``node`` (reading scores) is an op :func:`scores_op` has a form for."""
    if node.op == "call_module":
        return isinstance(rw.submodule(node), _SCORE_MODULES)
    if node.op not in ("call_function", "call_method"):
        return False
    target = node.target
    return target in _SOFTMAX or target in _REDUCTIONS or target in _AXES or \
        (node.op == "call_function" and target in POINTWISE_FUNCTIONS) or \
        (node.op == "call_method" and target in POINTWISE_METHODS)


def _time_free(rw: Rewriter, node: Any, seen: dict[fx.Node, bool]) -> bool:
    """Whether a value of the 2D graph carries no time (computed before it is rewritten)."""
    if not isinstance(node, fx.Node):
        return True
    if node in rw.env:
        return rw.info(node) is None
    if node not in seen:
        seen[node] = node.op != "placeholder" and all(_time_free(rw, n, seen) for n in node.all_input_nodes)
    return seen[node]


def _scores_close(rw: Rewriter, start: fx.Node) -> bool:
    """Whether every op reading the scores of ``start`` has a form for them, up to products with
    values that contract the keys (the query and key axes followed through transposes), with no
    other time-carrying operand."""
    rank = len(rw.shape2d(start))
    axes = {start: (rank - 2, rank - 1, rank)}  # region node → (query axis, key axis, rank)
    todo, seen = [start], {}
    while todo:
        for user in todo.pop().users:
            if user in axes:
                continue
            inside = [n for n in user.all_input_nodes if n in axes]
            outside = [n for n in user.all_input_nodes if n not in axes]
            q, k, r = axes[inside[0]]
            if _is_matmul(user):
                first = user.args[0] in axes
                if len(inside) != 1 or len(user.args) < 2 or k != (r - 1 if first else r - 2):
                    return False
                continue  # the product with the values: time comes back there
            if not _score_op(rw, user) or not all(_time_free(rw, n, seen) for n in outside):
                return False
            shape = rw.meta(user)
            if not isinstance(shape, tuple):
                return False
            if user.target in _AXES:
                perm = _permutation(user, r)
                q, k = perm.index(q), perm.index(k)
            shift = len(shape) - r
            axes[user] = (q + shift, k + shift, len(shape))
            todo.append(user)
    return True


def _permutation(node: fx.Node, rank: int) -> list[int]:
    """The axis order a permute or transpose node gives a tensor of ``rank`` axes."""
    if node.target in ("transpose", "swapaxes", torch.transpose):
        i, j = normalize_dim(node.args[1], rank), normalize_dim(node.args[2], rank)
        perm = list(range(rank))
        perm[i], perm[j] = perm[j], perm[i]
        return perm
    dims = node.args[1:] if node.op == "call_method" else arg(node, 1, "dims")
    if node.op == "call_method" and "dims" in node.kwargs:
        dims = node.kwargs["dims"]
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = dims[0]
    return [normalize_dim(d, rank) for d in dims]


def scores_op(rw: Rewriter, node: fx.Node) -> HandlerResult:
    """An op reading :class:`~..layout.Scores`: the same op on the merged axes, with operands
    without time tiled over the time slots and reductions over merged axes averaged over time;
    the product with the values unmerges time."""
    if _is_matmul(node):
        return _values_product(rw, node)
    scores = [rw.info(a) for a in node.all_input_nodes if isinstance(rw.info(a), Scores)]
    s = scores[0]
    target = node.target
    if node.op == "call_module":
        return _score_module(rw, node, s)
    if target in _SOFTMAX:
        dim = normalize_dim(arg(node, 1, "dim"), s.rank2d)
        x = rw.value(node.args[0])
        if dim in (s.q, s.k):
            dtype = rw.value(arg(node, 3 if target in (F.softmax, F.log_softmax) else 2, "dtype"))
            return rw.call_function(layout.softmax_over_slots, x, dim, s.slots, _SOFTMAX[target], dtype), s
        return rw.emit_like(node, *rw.substitute(node, {})), s
    if target in _REDUCTIONS:
        return _score_reduction(rw, node, s, _REDUCTIONS[target])
    if target in _AXES:
        return _score_axes(rw, node, s)
    if _score_op(rw, node):
        return _score_pointwise(rw, node)
    raise rw.unsupported(node, "it reads attention scores across time slots and has no form for them")


def _score_module(rw: Rewriter, node: fx.Node, s: Scores) -> HandlerResult:
    module = rw.submodule(node)
    x = rw.value(node.args[0])
    if isinstance(module, nn.Linear) and s.rank2d - 1 in (s.q, s.k):
        raise rw.unsupported(node, "a linear layer over the merged token axis of attention scores")
    if isinstance(module, nn.Conv2d) and not (
            {s.q, s.k} <= {2, 3, None} and module.kernel_size == (1, 1) and module.stride == (1, 1)
            and module.padding in ((0, 0), "valid")):
        raise rw.unsupported(node, "a convolution across the token axes of attention scores")
    if isinstance(module, nn.BatchNorm2d) and 1 in (s.q, s.k):
        raise rw.unsupported(node, "a batch norm over the token axis of attention scores")
    if isinstance(module, nn.Softmax):
        dim = normalize_dim(module.dim, s.rank2d)
        if dim in (s.q, s.k):
            return rw.call_function(layout.softmax_over_slots, x, dim, s.slots), s
    if not isinstance(module, _SCORE_MODULES):
        raise rw.unsupported(node, "it reads attention scores across time slots and has no form for them")
    # the 2D module itself, unchanged: its weights act on heads or channels, not on tokens
    rw.note(LayerRecord(str(node.target), type(module).__name__, "same op on the scores", "per-frame",
                        kind="attention"))
    return rw.call_module(str(node.target), x), s


def _score_reduction(rw: Rewriter, node: fx.Node, s: Scores, name: str) -> HandlerResult:
    x = rw.value(node.args[0])
    dim = arg(node, 1, "dim")
    if dim is None or not arg(node, 2, "keepdim", False):
        raise rw.unsupported(node, "a reduction of attention scores that drops axes")
    dims = {normalize_dim(d, s.rank2d) for d in (dim if isinstance(dim, (tuple, list)) else [dim])}
    out = rw.call_method(name, x, tuple(sorted(dims)), keepdim=True)
    if name == "sum" and dims & {s.q, s.k}:
        out = rw.call_function(layout.mean_over_slots, out, s.slots)
    return out, s.with_(q=None if s.q in dims else s.q, k=None if s.k in dims else s.k)


def _score_axes(rw: Rewriter, node: fx.Node, s: Scores) -> HandlerResult:
    perm = _permutation(node, s.rank2d)
    moved = {a: perm.index(a) for a in (s.q, s.k) if a is not None}
    out = rw.emit_like(node, *rw.substitute(node, {}))
    return out, s.with_(q=moved.get(s.q), k=moved.get(s.k))


def _score_pointwise(rw: Rewriter, node: fx.Node) -> HandlerResult:
    """Element-wise ops on scores: operands without time that span a merged axis are repeated
    over the time slots (a (heads, N, N) bias tiled over temporal offsets)."""
    rank = len(rw.shape2d(node))
    merged: Optional[Scores] = None
    replaced: dict[fx.Node, Any] = {}
    operands = [a for a in list(node.args) + list(node.kwargs.values()) if isinstance(a, fx.Node)]
    for a in operands:
        info = rw.info(a)
        if isinstance(info, Scores):
            shift = rank - info.rank2d
            s = info.with_(q=None if info.q is None else info.q + shift,
                           k=None if info.k is None else info.k + shift, rank2d=rank)
            if merged is not None and any(x is not None and y is not None and x != y
                                          for x, y in ((merged.q, s.q), (merged.k, s.k))):
                raise rw.unsupported(node, "attention scores whose token axes do not line up")
            merged = s if merged is None else merged.with_(q=merged.q if merged.q is not None else s.q,
                                                           k=merged.k if merged.k is not None else s.k)
        elif info is not None:
            raise rw.unsupported(node, "attention scores combined with a tensor that carries time")
    assert merged is not None
    for a in operands:
        shape = rw.meta(a)
        if rw.info(a) is not None or not isinstance(shape, tuple):
            continue
        value = rw.env[a][0]
        for axis in (merged.q, merged.k):
            at = None if axis is None else axis - (rank - len(shape))
            if at is not None and at >= 0 and shape[at] > 1:
                value = rw.call_function(layout.repeat_axis, value, at, merged.slots)
        if value is not rw.env[a][0]:
            replaced[a] = value
    return rw.emit_like(node, *rw.substitute(node, replaced)), merged


def _values_product(rw: Rewriter, node: fx.Node) -> HandlerResult:
    """scores @ values (or values @ scoresᵀ): contracted over the keys of all time slots and
    averaged over time; the query axis splits back into (time, tokens)."""
    a, b = node.args[:2]
    first = isinstance(rw.info(a), Scores)
    s: Scores = rw.info(a) if first else rw.info(b)
    other = b if first else a
    info, shape = rw.info(other), rw.meta(other)
    rank = len(rw.shape2d(node))
    r = len(shape)
    key_axis, query_axis = (s.rank2d - 1, s.rank2d - 2) if first else (s.rank2d - 2, s.rank2d - 1)
    if s.k != key_axis or s.q not in (query_axis, None) or isinstance(info, Scores):
        raise rw.unsupported(node, "a product of attention scores that does not contract their keys")
    value = rw.env[other][0]
    tokens = r - 2 if first else r - 1  # the values' token axis
    if info is None:
        value = rw.call_function(layout.repeat_axis, value, tokens, s.slots)
    elif isinstance(info, Clip) and info.td == tokens and not info.collapsed:
        value = rw.call_method("flatten", value, tokens, tokens + 1)
    else:
        raise rw.unsupported(node, "values whose time axis is not on their token axis")
    x, y = (rw.value(a), value) if first else (value, rw.value(b))
    out = rw.call_function(layout.mean_over_slots, rw.call_function(operator.matmul, x, y), s.slots)
    if s.q is None:
        return out, None
    axis = rank - (s.rank2d - s.q)
    return rw.call_method("unflatten", out, axis, (s.slots, -1)), Clip(axis, rank)

