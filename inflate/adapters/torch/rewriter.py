"""The graph walk: each node of the traced 2D graph is re-emitted into a 3D graph.

Every value in the new graph is paired with its layout: a :class:`~.layout.Clip` for a
tensor that carries frames, a tuple of those for split results, ``None`` for values with
no time (parameters, shapes, the pooled vector before a classifier). Handlers, looked up
by exact module type, function or method name in :mod:`.registry`, decide the 3D
counterpart of one node through their core rule: a module handler returns the 3D module
and its layout (:class:`ModuleResult`), which the walker places (:meth:`Rewriter.place`);
other handlers emit through the Rewriter's methods. A node none of whose inputs carries
time is copied as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from torch import fx, nn

from ...core.errors import InflateError, UnsupportedOpError
from ...core.policy import Policy, role_of
from ...core.rules import get_rule
from ...core.spec import InflatedOp, OpSpec, TimeSpec
from . import layout
from .layout import Clip
from .registry import handler_for
from .tracing import NotBatchMajor, TensorMeta

__all__ = ["Rewriter", "LayerRecord", "ModuleResult", "Handler", "HandlerResult", "rewrite_node", "batch_group",
           "frame_wise_layout", "BATCH_META"]

HandlerResult = tuple[Any, Any]
Handler = Callable[["Rewriter", fx.Node], HandlerResult]


@dataclass(frozen=True)
class LayerRecord:
    """One line of the conversion report.

    ``how`` is "inflated" (a 3D op with the time settings shown), "per-frame" (an op that
    needs no time settings: activations, norms, reshapes) or "frame-wise" (an op with no
    rule, applied to each frame separately with time folded into the batch).
    """

    path: str
    op2d: str
    op3d: str
    how: str
    time_kernel: int = 1
    time_stride: int = 1
    init: str = "-"
    kind: str = ""  # the core rule applied ("" for the frame-wise fallback)

    @classmethod
    def of(cls, path: str, op2d: str, op3d: str, op: InflatedOp, how: str = "inflated") -> "LayerRecord":
        """The record of an op inflated by the core rule ``op.kind``: its time settings, and the
        init where the rule maps a kernel with it."""
        init = op.time.init if get_rule(op.kind).temporal.weighted else "-"
        return cls(path, op2d, op3d, how, op.kernel[0], op.stride[0], init, op.kind)


@dataclass(frozen=True)
class ModuleResult:
    """A module handler's answer: the 3D module replacing the node's module, and its layout.

    The walker (:meth:`Rewriter.place`) moves the input's time axis to ``time_axis`` (None:
    leaves it), installs the module, calls it on the input (and the node's other arguments
    when ``pass_args``) and gives the output ``layout``, or by default the input's layout,
    collapsed when the module pools time away (``collapses``).
    """

    module: nn.Module
    record: LayerRecord
    time_axis: Optional[int] = 2
    collapses: bool = False
    layout: Any = None
    pass_args: bool = False


@dataclass
class Rewriter:
    """State of one 2D → 3D graph rewrite. Handlers call its helpers to emit nodes."""

    model: nn.Module
    policy: Policy
    strict: bool
    stem_path: str | tuple[str, ...] | None  # the stem, and the convs reading the same input
    head_prefixes: tuple[str, ...]
    graph: fx.Graph = field(default_factory=fx.Graph)
    env: dict[fx.Node, tuple[Any, Any]] = field(default_factory=dict)
    replacements: dict[str, nn.Module] = field(default_factory=dict)
    records: list[LayerRecord] = field(default_factory=list)
    batch: Any = None  # node giving the batch size of the input clip
    t: int = 8  # the clip length the model is made for
    # tried before a module with no rule runs per frame as a whole: its joint space-time form, or None
    whole_module: Optional[Callable[["Rewriter", fx.Node], Optional[HandlerResult]]] = None
    # the handler of every op that reads attention scores across time slots (layout.Scores)
    scores: Optional[Handler] = None
    # inflate_model itself, for handlers that inflate a block by a conversion of its own
    nested: Optional[Callable[..., Any]] = None

    # ----- reading the 2D graph -----

    def value(self, arg: Any) -> Any:
        """``arg`` (a node, or a structure holding nodes) with nodes replaced by their 3D values."""
        return fx.node.map_aggregate(arg, lambda a: self.env[a][0] if isinstance(a, fx.Node) else a)

    def info(self, arg: Any) -> Any:
        """The layout of a 2D-graph argument: Clip, tuple of Clips, or None."""
        return self.env[arg][1] if isinstance(arg, fx.Node) else None

    @staticmethod
    def meta(node: Any) -> Any:
        """The 2D value recorded for ``node`` (a shape tuple for tensors)."""
        return node.meta.get("inflate") if isinstance(node, fx.Node) else None

    def shape2d(self, node: Any) -> tuple[int, ...]:
        shape = self.meta(node)
        if not isinstance(shape, tuple):
            raise InflateError(f"node '{node}' does not hold a tensor in the 2D model")
        return tuple(shape)

    def submodule(self, node: fx.Node) -> nn.Module:
        return self.model.get_submodule(str(node.target))

    def role(self, path: str) -> str:
        return role_of(path, self.stem_path, self.head_prefixes)

    def time_for(self, spec: OpSpec) -> TimeSpec:
        return self.policy.time_for(spec)

    def inflate_op(self, spec: OpSpec, weights: Any = None) -> tuple[InflatedOp, dict[str, Any]]:
        """The core rule of ``spec.kind`` applied under the policy's time settings: the 3D op
        and ``weights`` (2D name → numpy array) mapped to 3D."""
        return get_rule(spec.kind).inflate(spec, self.time_for(spec), weights)

    # ----- emitting the 3D graph -----

    def call_function(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> fx.Node:
        return self.graph.call_function(fn, tuple(args), kwargs)

    def call_method(self, name: str, *args: Any, **kwargs: Any) -> fx.Node:
        return self.graph.call_method(name, tuple(args), kwargs)

    def call_module(self, path: str, *args: Any, **kwargs: Any) -> fx.Node:
        return self.graph.call_module(path, tuple(args), kwargs)

    def emit_like(self, node: fx.Node, args: tuple, kwargs: dict) -> fx.Node:
        """A node of the same op and target as ``node`` with new (3D) arguments."""
        return self.graph.create_node(node.op, node.target, tuple(args), dict(kwargs), name=node.name)

    def substitute(self, node: fx.Node, replaced: dict[fx.Node, Any]) -> tuple[Any, Any]:
        """``node``'s args and kwargs in the 3D graph, with some inputs replaced (squeezed, folded, aligned)."""
        def sub(a: Any) -> Any:
            return replaced[a] if a in replaced else self.env[a][0]

        return fx.node.map_arg(node.args, sub), fx.node.map_arg(node.kwargs, sub)

    def move_time(self, value: Any, clip: Clip, td: int) -> tuple[Any, Clip]:
        """Move the time axis of a clip value to index ``td``."""
        if clip.td == td:
            return value, clip
        return self.call_method("movedim", value, clip.td, td), clip.with_(td=td)

    def frames(self, value: Any, clip: Clip) -> fx.Node:
        """A node giving the number of time steps of a clip value."""
        return self.call_method("size", value, clip.td)

    def replace_module(self, node: fx.Node, module: nn.Module, record: LayerRecord) -> str:
        path = str(node.target)
        self.replacements[path] = module
        self.records.append(record)
        return path

    def note(self, record: LayerRecord) -> None:
        self.records.append(record)

    def place(self, node: fx.Node, result: ModuleResult) -> HandlerResult:
        """Emit a module handler's answer: the input with its time axis moved, the module installed
        at the node's path and called."""
        first = node.args[0]
        x, clip = self.env[first][0], self.info(first)
        if result.time_axis is not None:
            if clip.rank2d != 4:
                raise self.unsupported(node, f"expected a 4D feature map, got {clip.rank2d}D")
            x, clip = self.move_time(x, clip, result.time_axis)
        path = self.replace_module(node, result.module, result.record)
        args: tuple[Any, ...] = (x,)
        kwargs: dict[str, Any] = {}
        if result.pass_args:  # the model's own extra arguments (masks, rotary tables, sizes)
            args += tuple(self.value(tuple(node.args[1:])))
            kwargs = self.value(dict(node.kwargs))
        out = self.call_module(path, *args, **kwargs)
        if result.layout is not None:
            return out, result.layout
        return out, clip.with_(collapsed=clip.collapsed or result.collapses)

    def rewrite(self, node: fx.Node) -> HandlerResult:
        """The 3D value and layout of one call node: copied where no input carries time, else
        from the registered handler of its exact target, else applied frame by frame."""
        if not any(self.info(a) is not None for a in node.all_input_nodes):
            # Nothing here carries time: the op runs as in the 2D model.
            return self.graph.node_copy(node, lambda a: self.env[a][0]), None
        if self.scores is not None and any(isinstance(self.info(a), layout.Scores) for a in node.all_input_nodes):
            return self.scores(self, node)
        target = type(self.submodule(node)) if node.op == "call_module" else node.target
        handler = handler_for(node.op, target if node.op != "call_method" else str(target))
        if handler is None:
            return self.frame_wise(node)
        result = handler.fn(self, node)
        return self.place(node, result) if isinstance(result, ModuleResult) else result

    # ----- fallbacks -----

    def unsupported(self, node: fx.Node, why: str = "") -> UnsupportedOpError:
        return UnsupportedOpError(node_path(node), describe_target(self, node), why)

    def frame_wise(self, node: fx.Node, why: str = "", declared: bool = False) -> HandlerResult:
        """Apply a node to each frame: time folded into the batch, then unfolded.

        For a node with no rule (``declared=False``) this is the fallback, reported as
        "frame-wise", and ``strict`` raises instead, naming the node. A rule may choose it on
        purpose (``declared=True``: windowed attention blocks under the "frames" policy).
        A module is first offered to ``whole_module``, which may make it attend across time.
        """
        if not declared and node.op == "call_module" and self.whole_module is not None:
            joint = self.whole_module(self, node)
            if joint is not None:
                return joint
        if self.strict and not declared:
            raise self.unsupported(node, why)
        clips = [(a, self.info(a)) for a in _node_inputs(node) if isinstance(self.info(a), Clip)]
        if any(not isinstance(self.info(a), (Clip, type(None))) for a in _node_inputs(node)):
            raise self.unsupported(node, "it takes a sequence of tensors that carry time")
        if all(c.collapsed for _, c in clips):
            # Time was pooled away: drop the length-1 axis and run the op as in 2D.
            squeezed = {a: self.call_method("squeeze", self.env[a][0], c.td) for a, c in clips}
            args, kwargs = self.substitute(node, squeezed)
            self.note(LayerRecord(node_path(node), describe_target(self, node), "same op (time pooled)", "per-frame"))
            return self.emit_like(node, args, kwargs), None
        if any(BATCH_META in a.meta and a.meta[BATCH_META] != self.meta(a) for a in _node_inputs(node)
               if not isinstance(self.info(a), Clip)):
            raise self.unsupported(node, "an argument counts the batch (a size read from a tensor's shape)")
        groups = {a: batch_group(self, self.meta(a), a.meta.get(BATCH_META)) for a, _ in clips}
        for arg, clip in clips:
            if clip.collapsed or groups[arg] is None:
                raise self.unsupported(node, "its inputs cannot be split into frames along the batch axis")
        framed = frame_wise_layout(self, node)
        if framed is None:
            raise self.unsupported(node, "its output does not keep the batch axis first")
        folded = {a: self.call_function(layout.fold_time_items, self.env[a][0], c.td, groups[a]) for a, c in clips}
        args, kwargs = self.substitute(node, folded)
        out = self.emit_like(node, args, kwargs)
        how = "per-frame" if declared else "frame-wise"
        self.note(LayerRecord(node_path(node), describe_target(self, node), "same op on each frame", how))
        out_layout, out_groups = framed
        if isinstance(out_layout, Clip):
            return self.call_function(layout.unfold_time_items, out, self.batch, out_groups), out_layout
        return self.call_function(layout.unfold_each, out, self.batch, out_groups), out_layout

    batch_size: int = 0


BATCH_META = "inflate_batch+1"  # node.meta key: the 2D value recorded for a sample batch one larger


def batch_group(rw: Rewriter, shape: Any, shape_next: Any) -> Optional[int]:
    """How many items per sample the leading axis of a 2D tensor holds, batch-major (1: it is
    the batch axis; N for HaloNet's or TNT's (B·N, ...) blocks), read from its ``shape`` at the
    sample batch and ``shape_next`` at a batch one larger (:func:`~.tracing.record_shapes`
    with ``batch_major``); None where that axis does not grow with the batch, or not
    batch-major (or ``shape`` is not a tensor's). Without ``shape_next``, only 1 is told."""
    if not isinstance(shape, TensorMeta) or not shape:
        return None
    batch = rw.batch_size
    if shape_next is None:
        return 1 if shape[0] == batch else None
    if not isinstance(shape_next, TensorMeta) or isinstance(shape_next, NotBatchMajor) or not shape_next:
        return None
    if shape[0] % batch == 0 and shape_next[0] * batch == shape[0] * (batch + 1):
        return shape[0] // batch
    return None


def frame_wise_layout(rw: Rewriter, node: fx.Node) -> Optional[tuple[Any, Any]]:
    """The layout of ``node``'s output applied to each frame, and the batch group of each of its
    tensors (:func:`batch_group`), for an output that is a tensor or a tuple of tensors (and
    values that do not depend on the batch: sizes, None), every tensor's leading axis holding
    the batch; None otherwise."""
    shape, shape_next = rw.meta(node), node.meta.get(BATCH_META)
    if isinstance(shape, TensorMeta):
        group = batch_group(rw, shape, shape_next)
        return None if group is None else (Clip(1, len(shape), framed=True), group)
    if not isinstance(shape, (tuple, list)) or isinstance(shape, torch.Size):
        return None
    nexts = shape_next if isinstance(shape_next, (tuple, list)) and len(shape_next) == len(shape) else None
    layouts: list[Any] = []
    groups: list[Optional[int]] = []
    for i, item in enumerate(shape):
        item_next = nexts[i] if nexts is not None else None
        if isinstance(item, TensorMeta):
            group = batch_group(rw, item, item_next)
            if group is None:
                return None
            layouts.append(Clip(1, len(item), framed=True))
        elif nexts is not None and item_next != item:  # a size that counts the batch
            return None
        else:
            group = None
            layouts.append(None)
        groups.append(group)
    if all(g is None for g in groups):
        return None
    return tuple(layouts), tuple(groups)


def rewrite_node(rw: Rewriter, node: fx.Node) -> HandlerResult:
    """:meth:`Rewriter.rewrite` as a function."""
    return rw.rewrite(node)


def _node_inputs(node: fx.Node) -> list[fx.Node]:
    return list(node.all_input_nodes)


def node_path(node: fx.Node) -> str:
    """A readable location for a node: the module path, or the enclosing module and node name."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack")
    if stack:
        owner = list(stack.values())[-1]
        owner = owner[0] if isinstance(owner, tuple) else owner
        return f"{owner}:{node.name}" if owner else node.name
    return node.name


def describe_target(rewriter: Rewriter, node: fx.Node) -> str:
    if node.op == "call_module":
        module = rewriter.submodule(node)
        return f"{type(module).__module__}.{type(module).__qualname__}"
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    target = node.target
    return f"{getattr(target, '__module__', '') or ''}.{getattr(target, '__name__', str(target))}".lstrip(".")


def pointwise_result(rewriter: Rewriter, node: fx.Node) -> HandlerResult:
    """Emit ``node`` unchanged after aligning broadcast operands to the output's time axis.

    For element-wise ops (activations, add, mul...). A tensor without time whose 2D
    dimensions straddle the time axis gets a length-1 axis there, so that a (1, C, 1, 1)
    scale stays aligned with the channels of a (B, C, T, H, W) clip.
    """
    out_rank = len(rewriter.shape2d(node))
    operands = [a for a in list(node.args) + list(node.kwargs.values()) if isinstance(a, fx.Node)]
    clips = [(a, rewriter.info(a)) for a in operands if isinstance(rewriter.info(a), Clip)]
    ref_node, ref = max(clips, key=lambda pair: pair[1].rank2d)
    out_td = ref.td + (out_rank - ref.rank2d)
    replaced: dict[fx.Node, Any] = {}
    for arg in operands:
        info = rewriter.info(arg)
        meta = rewriter.meta(arg)
        if isinstance(info, Clip):
            pos = out_td - (out_rank - info.rank2d)
            if pos != info.td:
                if not 0 <= pos <= info.rank2d:
                    raise rewriter.unsupported(node, "its operands put time on different axes")
                replaced[arg] = rewriter.move_time(rewriter.env[arg][0], info, pos)[0]
        elif info is None and isinstance(meta, tuple):
            rank = len(meta)
            pos = out_td - (out_rank - rank)
            if 0 < pos <= rank:
                replaced[arg] = rewriter.call_method("unsqueeze", rewriter.env[arg][0], pos)
        elif info is not None:
            raise rewriter.unsupported(node, "it takes a sequence of tensors that carry time")

    args, kwargs = rewriter.substitute(node, replaced)
    collapsed = all(c.collapsed for _, c in clips)
    return rewriter.emit_like(node, args, kwargs), Clip(out_td, out_rank, collapsed)
