"""``inflate_model``: trace a 2D model, rewrite its graph node by node, return the 3D model."""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import fx, nn

from ... import __version__
from ...core.errors import InflateError, InvalidInputError, UnsupportedOpError
from ...core.geometry import StemCandidate, check_clip_length, find_stems
from ...core.policy import HEAD_NAMES, OverrideTable, Policy, get_policy
from . import layout
from .inflated import InflatedModel, inflated_class, module_signature, set_submodule
from .layout import Clip
from .handlers import dynamic_image_size
from .handlers.attention import joint_whole_module
from .handlers.matmul import scores_op
from .inplace import out_of_place_after_folds, sums_into_dead_operands
from .modules import SpaceTimeAttention
from .registry import handler_for, module_types
from .rewriter import BATCH_META, LayerRecord, Rewriter, frame_wise_layout, node_path
from .tracing import InflateTracer, TensorMeta, UntraceableError, record_shapes, trace

__all__ = ["inflate_model", "InflationReport", "InflationSettings", "InflatedModel", "default_input_size"]


@dataclass(frozen=True)
class InflationReport:
    """What the conversion did to each op, in graph order.

    ``frame_wise`` lists the ops with no rule that run on each frame separately: their
    part of the network models no time. Empty for every model the test-suite covers.
    """

    layers: tuple[LayerRecord, ...]

    @property
    def inflated(self) -> tuple[LayerRecord, ...]:
        return tuple(r for r in self.layers if r.how == "inflated")

    @property
    def frame_wise(self) -> tuple[LayerRecord, ...]:
        return tuple(r for r in self.layers if r.how == "frame-wise")

    def temporal_layers(self) -> tuple[LayerRecord, ...]:
        """The ops that mix frames (temporal kernel or stride above 1)."""
        return tuple(r for r in self.inflated if r.time_kernel > 1 or r.time_stride > 1)

    def table(self) -> str:
        """The report as a fixed-width text table."""
        header = ("layer", "2D op", "3D op", "how", "k_t", "s_t", "init")
        rows = [header] + [(r.path, r.op2d, r.op3d, r.how, str(r.time_kernel), str(r.time_stride), r.init)
                           for r in self.layers]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


@dataclass(frozen=True)
class InflationSettings:
    """What an inflated model was made with; kept on the model as ``model.inflation``."""

    source: str
    t: int
    policy: str
    init: str
    pad_mode: str
    input_size: tuple[int, int, int]
    library_version: str
    report: InflationReport = field(repr=False, compare=False)
    overrides: Any = field(default=None, repr=False, compare=False)
    source_kwargs: dict = field(default_factory=dict, compare=False)
    attention: str = "joint"
    tubelet: int = 2


def default_input_size(model: nn.Module) -> tuple[int, int, int]:
    """The (C, H, W) an image model expects: timm's pretrained_cfg, else (3, 224, 224)."""
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    size = cfg.get("input_size") if isinstance(cfg, dict) else None
    if size and len(size) == 3:
        return tuple(int(s) for s in size)  # type: ignore[return-value]
    return (3, 224, 224)


def _first_conv(model: nn.Module, graph: fx.Graph) -> tuple[str, ...]:
    """The stem convolution and the convolutions reading the same input
    (:func:`~inflate.core.geometry.find_stems` over the called modules in graph order, with
    timm's ``first_conv`` as the declared name)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    names = cfg.get("first_conv") if isinstance(cfg, dict) else None
    declared = [names] if isinstance(names, str) else list(names or [])
    return find_stems((_stem_candidate(model, n) for n in graph.nodes if n.op == "call_module"), declared)


def _stem_candidate(model: nn.Module, node: fx.Node) -> StemCandidate:
    path = str(node.target)
    module = model.get_submodule(path)
    reads = _source(model, node.args[0]).name if node.args and isinstance(node.args[0], fx.Node) else ""
    if isinstance(module, nn.Conv2d):
        return StemCandidate(path, "conv", reads)
    # a patch embedding computes a strided conv, whatever layer does it (NaFlexViT's linear layer on patches)
    embeds = getattr(handler_for("call_module", type(module)), "kind", None) == "patch_embed"
    holds = embeds or any(isinstance(m, nn.Conv2d) for m in module.modules())
    return StemCandidate(path, "holds_conv" if holds else "other", reads)


def _source(model: nn.Module, node: fx.Node) -> fx.Node:
    """The value ``node`` is computed from by ops with no weights and one input (crops, resizes,
    casts: CrossViT's ``scale_image`` of the input for its second branch), so that the patch
    embeddings of every branch reading the input are found as stems alike."""
    while node.op in ("call_function", "call_method", "call_module"):
        if node.op == "call_module" and next(model.get_submodule(str(node.target)).parameters(), None) is not None:
            break
        inputs = [a for a in node.all_input_nodes if a.op != "get_attr"]
        if len(inputs) != 1:
            break
        node = inputs[0]
    return node


def _head_prefixes(model: nn.Module) -> tuple[str, ...]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    classifier = cfg.get("classifier") if isinstance(cfg, dict) else None
    extra = tuple(c.split(".")[0] for c in ([classifier] if isinstance(classifier, str) else classifier or []))
    return HEAD_NAMES + extra


def _validate(model: Any, t: Any) -> None:
    if not isinstance(model, nn.Module):
        raise InvalidInputError(
            f"inflate_model takes a torch.nn.Module, got {type(model).__name__}; "
            "for a timm name use timm.create_model(name) first"
        )
    check_clip_length(t)


def _output_value(rw: Rewriter, value: Any, info: Any) -> Any:
    if isinstance(info, Clip):
        if info.collapsed:
            return rw.call_method("squeeze", value, info.td)
        if info.rank2d <= 2:  # per-frame vectors (logits, embeddings): average over time
            return rw.call_method("mean", value, info.td)
        return rw.move_time(value, info, 2 if info.rank2d == 4 else info.td)[0]
    if isinstance(info, tuple):
        return tuple(_output_value(rw, rw.call_function(_getitem, value, i), sub) for i, sub in enumerate(info))
    return value


def _getitem(seq: Any, index: int) -> Any:
    return seq[index]


def _output(rw: Rewriter, node: fx.Node) -> None:
    def convert(arg: Any) -> Any:
        if isinstance(arg, fx.Node):
            return _output_value(rw, rw.env[arg][0], rw.info(arg))
        if isinstance(arg, (tuple, list)):
            return type(arg)(convert(a) for a in arg)
        if isinstance(arg, dict):
            return {k: convert(v) for k, v in arg.items()}
        return arg

    rw.graph.output(convert(node.args[0]))


@contextlib.contextmanager
def _traced(model: nn.Module, leaf_modules: Iterable[type], leaf_paths: Iterable[str] = ()) -> Iterator[fx.Graph]:
    """Trace ``model`` to a 2D graph, handlers' module types kept whole, and hold the tracing
    settings while the caller records shapes and rewrites it. A timm ViT is traced on its
    dynamic-image-size path, or on its fixed-size path where that one does not trace."""
    for dynamic in (True, False):
        with dynamic_image_size(model, dynamic) as active:
            tracer = InflateTracer(leaf_types=module_types() | set(leaf_modules), leaf_paths=leaf_paths)
            try:
                graph2d = trace(model, tracer)
            except InflateError:
                if active:
                    continue
                raise
            yield graph2d
            return


def _record_shapes(model: nn.Module, graph2d: fx.Graph, input_size: tuple[int, int, int]) -> tuple[int, torch.device]:
    """Run ``graph2d`` on a random batch of 2 images of ``input_size`` (C, H, W) on the model's
    device and dtype, keeping each node's 2D output shape in its meta, and on a batch of 3
    whose last two images are the same (under :data:`BATCH_META`): the leading axes that grow
    with the batch, batch-major, are the ones a frame-wise op may fold time into. Returns
    (batch size, device)."""
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
    module = fx.GraphModule(model, graph2d)
    sample = torch.randn(2, *input_size, device=device, dtype=dtype)
    record_shapes(module, sample)
    first, second = torch.randn(2, *input_size, device=device, dtype=dtype)
    record_shapes(module, torch.stack([first, second, second]), key=BATCH_META, batch_major=True)
    return sample.shape[0], device


def _rewrite(model: nn.Module, graph2d: fx.Graph, policy: Policy, strict: bool, t: int, batch_size: int,
             channels: int, progress: Optional[Callable[[int, int], None]],
             whole: Optional[dict[str, str]] = None) -> tuple[Rewriter, dict[str, str]]:
    """Re-emit every node of ``graph2d`` (shapes recorded) for clips: the first input becomes a
    checked (B, C, T, H, W) clip, each op goes to its handler; returns the :class:`Rewriter`
    holding the 3D graph, the replacement modules and the report records, and the modules
    found to run per frame as a whole (:func:`_enclosing_module`, not strict), with why.

    Where that is not empty, the 3D graph is incomplete and the model must be traced again with
    those modules kept whole. One pass finds them all: the rest of a module found is skipped,
    its values used outside it given the layout its frame-wise call will give them
    (:func:`_stand_in`), so that the modules after it are checked in the same pass (a model
    with a hand-written attention in each block is traced twice, not once per block).
    """
    rw = Rewriter(model, policy, strict, _first_conv(model, graph2d), _head_prefixes(model))
    rw.batch_size, rw.t = batch_size, t
    rw.whole_module, rw.scores, rw.nested = joint_whole_module, scores_op, inflate_model
    found: dict[str, str] = {}
    placeholders = [n for n in graph2d.nodes if n.op == "placeholder"]
    total = len(graph2d.nodes)
    for done, node in enumerate(graph2d.nodes, 1):
        if progress is not None:
            progress(done, total)
        if node.op == "placeholder":
            new = rw.graph.placeholder(node.name, default_value=node.args[0] if node.args else inspect.Signature.empty)
            new.meta = dict(node.meta)
            if node is placeholders[0]:
                checked = rw.call_function(layout.check_clip, new, channels)
                rw.batch = rw.call_method("size", checked, 0)
                rw.env[node] = (checked, Clip(2, 4))
            else:
                rw.env[node] = (new, None)
        elif node.op == "get_attr":
            rw.env[node] = (rw.graph.get_attr(str(node.target)), None)
        elif found and (_inside(node, found) or any(rw.info(a) is _UNSPLIT for a in node.all_input_nodes)):
            if not _inside(node, found):
                return rw, found  # a module found cannot run per frame: the next trace says which holds it
            rw.env[node] = _stand_in(rw, node)
        elif node.op == "output":
            if found:
                return rw, found
            _output(rw, node)
        else:
            try:
                rw.env[node] = rw.rewrite(node)
            except UnsupportedOpError as error:
                owner = None if strict else _enclosing_module(model, error.path, {**(whole or {}), **found})
                if owner is None:
                    if found:
                        return rw, found  # the modules found may change what reaches this node
                    raise
                found[owner] = str(error)
                rw.env[node] = _stand_in(rw, node)
            except Exception:
                if found:  # downstream of a stand-in: the next trace has the real values
                    return rw, found
                raise
    if not rw.batch.users:
        rw.graph.erase_node(rw.batch)
    rw.graph.lint()
    return rw, found


_UNSPLIT = "unsplit"  # the layout of a skipped value that a frame-wise call cannot give


def _inside(node: fx.Node, modules: dict[str, str]) -> bool:
    """Whether ``node`` is an op of (or a call of a submodule of) one of ``modules``."""
    stack = node.meta.get("nn_module_stack") or {}
    paths = [p[0] if isinstance(p, tuple) else p for p in stack.values()]
    if node.op == "call_module":
        paths.append(str(node.target))
    return any(p == m or str(p).startswith(m + ".") for p in paths for m in modules)


def _stand_in(rw: Rewriter, node: fx.Node) -> tuple[Any, Any]:
    """A placeholder value for ``node``, skipped inside a module that will run per frame as a
    whole: the layout the module's frame-wise call gives such a value (time beside the batch
    axis), or :data:`_UNSPLIT` where it cannot."""
    placeholder = rw.call_function(_skipped, node.name)
    framed = frame_wise_layout(rw, node)
    if framed is not None:
        return placeholder, framed[0]
    value = rw.meta(node)
    if isinstance(value, TensorMeta) or isinstance(value, (tuple, list)) and not isinstance(value, torch.Size):
        return placeholder, _UNSPLIT
    return placeholder, None


def _skipped(name: str) -> None:
    raise InflateError(f"internal: the value of '{name}' was skipped while finding the modules to run per frame")


def _assemble(model: nn.Module, rw: Rewriter, inplace: bool, device: torch.device) -> nn.Module:
    """The 3D model: ``model`` (or a copy that shares nothing with it, the replaced modules
    left out of the copy) with the 3D modules in place and its class made the inflated class,
    whose forward runs the rewritten graph."""
    sources = {path: module_signature(model.get_submodule(path)) for path in rw.replacements}
    model3d = model if inplace else copy.deepcopy(model, {id(model.get_submodule(p)): None for p in rw.replacements})
    for path, module in rw.replacements.items():
        module.train(model.training)
        set_submodule(model3d, path, module.to(device))
    out_of_place_after_folds(rw.graph, model3d)
    sums_into_dead_operands(rw.graph, model3d)
    model3d.__class__ = inflated_class(type(model), rw.graph)
    model3d._inflated_sources = sources
    return model3d


def _warn_unapplied_attention(model: nn.Module, graph2d: fx.Graph, rw: Rewriter, attention: str) -> None:
    """Warn where attention runs within each frame although ``attention`` asked otherwise: SDPA
    calls the rewrite left per frame, attention modules wrapped in "frames" mode, and ops with no
    rule inside modules timm marks as attention (its ``fused_attn`` switch) or nn.MultiheadAttention."""
    if attention == "frames":
        return
    sdpa = {node_path(n) for n in graph2d.nodes if n.op == "call_function" and n.target is F.scaled_dot_product_attention}
    frames = {p for p, m in rw.replacements.items() if isinstance(m, SpaceTimeAttention) and m.mode == "frames"}
    owners = tuple(p + "." for p, m in model.named_modules()
                   if p and (hasattr(m, "fused_attn") or isinstance(m, nn.MultiheadAttention)))
    per_frame = [r.path for r in rw.records if r.path in frames or (r.path in sdpa and r.how != "inflated")
                 or (r.how == "frame-wise" and (r.path.split(":")[0] + ".").startswith(owners))]
    if per_frame:
        warnings.warn(f"attention={attention!r} could not be applied to {len(per_frame)} attention ops "
                      f"(first: '{per_frame[0]}'), which attend within each frame", stacklevel=3)


def inflate_model(
    model: nn.Module,
    t: int = 16,
    *,
    policy: str | Policy = "i3d",
    init: Optional[str] = None,
    pad_mode: Optional[str] = None,
    overrides: OverrideTable = None,
    inplace: bool = False,
    strict: bool = False,
    input_size: Optional[tuple[int, int, int]] = None,
    leaf_modules: Iterable[type] = (),
    return_report: bool = False,
    progress: Optional[Callable[[int, int], None]] = None,
    attention: Optional[str] = None,
    tubelet: Optional[int] = None,
) -> nn.Module | tuple[nn.Module, InflationReport]:
    """Inflate a 2D image model into a 3D video model by rewriting its traced graph.

    Args:
        model: a 2D ``nn.Module`` taking (B, C, H, W) images (any timm CNN).
        t: the clip length the model is made for: recorded on the model and used by
            checks and export. The model itself runs on clips of any length.
        policy: a policy name ("i3d", "i3d_k3", "stem_only") or a :class:`Policy`.
        init: "tile" (repeat each 2D kernel k_t times, divide by k_t) or "center".
        pad_mode: temporal padding, "replicate" (default; exact on repeated-frame clips at
            every time step) or "zeros" (TensorFlow SAME, as the I3D paper).
        overrides: per-layer exceptions to the policy (see :mod:`inflate.core.policy`).
        inplace: modify ``model`` itself instead of a copy.
        strict: raise :class:`UnsupportedOpError` for an op with no rule instead of
            applying it frame by frame.
        input_size: (C, H, W) of a sample image used to record 2D shapes; default from
            timm's pretrained_cfg, else (3, 224, 224).
        leaf_modules: extra module types to treat as opaque when tracing.
        return_report: also return the :class:`InflationReport`.
        progress: called as ``progress(done, total)`` after each graph node is rewritten.
        attention: transformers only: "joint" (default), "divided" or "frames".
        tubelet: transformers only: frames per tubelet of the patch embedding (default 2).

    Returns:
        The 3D model: input (B, C, T, H, W); output as the 2D model's, with classifier logits
        averaged over time (global pools pool time before the head). It keeps the 2D
        model's class as a base (its class is an :class:`InflatedModel`), its attribute names
        (``model.fc``, ``get_classifier()``) and records its settings as ``model.inflation``.
        It pickles (``torch.save``/``torch.load(weights_only=False)``) and deep-copies.

    Limits:
        Python control flow in traced (non-leaf) modules is frozen as in eval mode;
        ``forward_features``/``forward_head`` are not rewritten; ops with no rule run
        frame by frame and are listed in the report.
    """
    _validate(model, t)

    resolved = get_policy(policy, init=init, pad_mode=pad_mode, overrides=overrides, attention=attention,
                          tubelet=tubelet)
    size = input_size or default_input_size(model)
    convert = functools.partial(_converted, model, leaf_modules, size, resolved, strict, t, progress)
    rw, graph2d, whole, device = convert({})
    if not strict and resolved.attention == "joint":
        rw, graph2d, whole, device = _prefer_joint_modules(model, convert, (rw, graph2d, whole, device))
    # the ones whose attention was not made joint across time (joint_whole_module)
    whole = {path: why for path, why in whole.items()
             if any(r.path == path and r.how == "frame-wise" for r in rw.records)}
    if whole:
        warnings.warn(f"{len(whole)} modules run frame by frame as a whole, an op inside having no frame-wise form "
                      f"(first: '{next(iter(whole))}': {next(iter(whole.values()))})", stacklevel=2)
    model3d = _assemble(model, rw, inplace, device)
    _warn_unapplied_attention(model, graph2d, rw, resolved.attention)
    report = InflationReport(tuple(rw.records))
    model3d.inflation = InflationSettings(
        source=_source_name(model), t=t, policy=resolved.name, init=resolved.init, pad_mode=resolved.pad_mode,
        input_size=tuple(size), library_version=__version__, report=report, overrides=overrides,
        source_kwargs=_source_kwargs(model, size[0]), attention=resolved.attention, tubelet=resolved.tubelet,
    )
    return (model3d, report) if return_report else model3d


def _converted(model: nn.Module, leaf_modules: Iterable[type], size: tuple[int, int, int], policy: Policy,
               strict: bool, t: int, progress: Optional[Callable[[int, int], None]],
               whole: dict[str, str]) -> tuple[Rewriter, fx.Graph, dict[str, str], torch.device]:
    """Trace and rewrite ``model``, the modules in ``whole`` (path → why) kept whole, adding the
    modules the non-strict fallback finds must run whole; returns (rewriter, 2D graph, those
    modules, device)."""
    whole = dict(whole)
    while True:
        try:
            with _traced(model, leaf_modules, whole) as graph2d:
                batch_size, device = _record_shapes(model, graph2d, size)
                rw, found = _rewrite(model, graph2d, policy, strict, t, batch_size, size[0], progress, whole)
            if not found:
                return rw, graph2d, whole, device
            whole.update(found)
        except UnsupportedOpError as error:
            owner = None if strict else _enclosing_module(model, error.path, whole)
            if owner is None:
                raise
            whole[owner] = str(error)
        except UntraceableError as error:  # Python control flow on traced values: that module whole
            owner = None if strict or not error.path else _enclosing_module(model, error.path, whole)
            if owner is None:
                raise
            whole[owner] = str(error).split(". Pass the module types")[0]


def _prefer_joint_modules(model: nn.Module, convert: Callable[[dict[str, str]], tuple],
                          first: tuple) -> tuple:
    """Ops that ran frame by frame one at a time (a window partition merged into the batch axis)
    leave the attention of their module within each frame; kept whole instead, the module may
    attend across time (:func:`.handlers.attention.joint_whole_module`). Tried for the modules
    around them: the conversion with those that do attend across time kept whole."""
    rw, _, whole, _ = first
    owners = {_enclosing_module(model, r.path, whole) for r in rw.records
              if r.how == "frame-wise" and r.path not in whole}
    owners.discard(None)
    if not owners:
        return first
    tried = convert({**whole, **{o: "tried for joint attention" for o in owners}})
    joint = {o for o in owners if any(r.path == o and r.how == "inflated" for r in tried[0].records)}
    if joint == owners:
        return tried
    if not joint:
        return first
    return convert({**whole, **{o: "joint attention" for o in joint}})


def _enclosing_module(model: nn.Module, path: str, whole: dict[str, str]) -> Optional[str]:
    """The innermost module around the node at ``path`` ("module.path:op" or a module's path) that
    can run per frame as a whole instead: traced through so far (not a handler's type), not the
    model itself. None where there is none (the error stands)."""
    parts = path.split(":")[0].split(".")
    handled = module_types()
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        try:
            module = model.get_submodule(candidate)
        except AttributeError:
            continue
        if candidate not in whole and type(module) not in handled:
            return candidate
    return None


def _source_kwargs(model: nn.Module, channels: int) -> dict[str, Any]:
    """Arguments that rebuild the 2D architecture: its class count and input channels."""
    kwargs: dict[str, Any] = dict(getattr(model, "inflate_source_kwargs", {}) or {})
    num_classes = getattr(model, "num_classes", None)
    if isinstance(num_classes, int):
        kwargs.setdefault("num_classes", num_classes)
    if getattr(model, "pretrained_cfg", None) and channels != 3:
        kwargs.setdefault("in_chans", channels)
    return kwargs


def _source_name(model: nn.Module) -> str:
    preset = getattr(model, "inflate_source", None)
    if isinstance(preset, str):
        return preset
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return str(cfg.get("architecture") or type(model).__name__) if isinstance(cfg, dict) else type(model).__name__
