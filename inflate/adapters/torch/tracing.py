"""Tracing a 2D model into a torch.fx graph and recording every value's 2D shape."""

from __future__ import annotations

import contextlib
import inspect
import operator
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import fx, nn

from ...core.errors import InflateError

__all__ = ["InflateTracer", "UntraceableError", "trace", "record_shapes", "TensorMeta", "trace_through", "NotBatchMajor", "check_flag"]

# timm module types it marks untraceable (leaves) that trace correctly in some configurations,
# with the test that says when: the tracer then records their inner ops, which have rules.
_TRACE_THROUGH: dict[type, Callable[[nn.Module], bool]] = {}


# Of those, the types traced on their TorchScript path (torch.jit.is_scripting() True inside):
# the eager path branches on values fx cannot read (a device type), the scripted one does not.
_SCRIPTED: set[type] = set()


def trace_through(module_type: type, when: Callable[[nn.Module], bool], scripted: bool = False) -> None:
    """Trace into ``module_type`` (a type timm registers as untraceable) where ``when(module)``;
    ``scripted``: along the code path TorchScript would take."""
    _TRACE_THROUGH[module_type] = when
    if scripted:
        _SCRIPTED.add(module_type)


@contextlib.contextmanager
def _scripting() -> Iterator[None]:
    saved = torch.jit.is_scripting
    torch.jit.is_scripting = lambda: True  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.jit.is_scripting = saved  # type: ignore[assignment]


class TensorMeta(tuple):
    """The 2D shape of a tensor value, as recorded on ``node.meta['inflate']``."""


def _timm_notrace() -> tuple[set[type], tuple[Any, ...]]:
    try:
        from timm.layers import get_notrace_functions, get_notrace_modules
    except ImportError:  # timm is optional for models that are not timm's
        return set(), ()
    return set(get_notrace_modules()), tuple(get_notrace_functions())


class InflateTracer(fx.Tracer):
    """An fx tracer whose leaves are the modules we have rules for plus timm's own leaves.

    Matching is on the exact type: a subclass of ``nn.Conv2d`` that pads at run time (timm's
    ``Conv2dSame``) is not a ``Conv2d`` here, so it is either matched by its own rule or
    traced through.
    """

    def __init__(self, leaf_types: Iterable[type] = (), autowrap: Iterable[Any] = (),
                 leaf_paths: Iterable[str] = ()) -> None:
        timm_leaves, timm_functions = _timm_notrace()
        super().__init__(autowrap_functions=tuple(timm_functions) + tuple(autowrap))
        self.explicit_leaves = set(leaf_types)
        self.leaf_types = self.explicit_leaves | timm_leaves
        self.leaf_paths = set(leaf_paths)  # single modules kept whole (the non-strict fallback's)

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        if qualified_name in self.leaf_paths:
            return True
        when = _TRACE_THROUGH.get(type(module))
        if when is not None and type(module) not in self.explicit_leaves and when(module):
            return False
        return type(module) in self.leaf_types or super().is_leaf_module(module, qualified_name)

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        if type(m) in _SCRIPTED:
            with _scripting():
                return super().call_module(m, forward, args, kwargs)
        return super().call_module(m, forward, args, kwargs)


def trace(model: nn.Module, tracer: InflateTracer) -> fx.Graph:
    """Trace ``model`` in eval mode (its mode is restored), with a clear error on failure.

    Arguments of ``model.forward`` after the image whose default is None or a bool (Hiera's
    ``mask``, ViT's ``attn_mask`` and ``is_causal``) are traced at their default: a 3D model is
    called with a clip alone, and a placeholder would take the ``if mask is not None`` branch
    that the sample batch then cannot run.
    """
    was_training = model.training
    model.eval()
    try:
        graph = tracer.trace(model, concrete_args=_switch_defaults(model) or None)
        _exportable_guards(graph)
        return graph
    except Exception as error:  # fx raises many kinds; the user needs the one next step
        # the innermost module being traced when it failed (fx leaves its stack as it was)
        path = next(reversed(tracer.module_stack.values()), ("", None))[0] if tracer.module_stack else ""
        where = f" in '{path}'" if path else ""
        raise UntraceableError(
            f"could not trace {type(model).__name__}{where} with torch.fx: {error}. Pass the module types "
            "that hold data-dependent Python control flow as leaf_modules=[...] so they are treated "
            "as opaque (they are then applied frame by frame)", path
        ) from error
    finally:
        model.train(was_training)


class UntraceableError(InflateError):
    """torch.fx could not trace the model; ``path`` is the innermost module it was tracing ("" for
    the model's own forward), which the non-strict fallback can keep whole and run per frame."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


def check_flag(value: Any, expected: bool, message: str) -> None:
    """fx's guard on an argument traced at its bool default, in a form exporters trace: they pass
    such flags as tensors (their ``==`` with a bool has no TorchScript op)."""
    if isinstance(value, torch.Tensor):
        value = bool(value)
    if value != expected:
        raise InflateError(message)


def _exportable_guards(graph: fx.Graph) -> None:
    """fx guards an argument specialised to a bool with ``_assert(arg == value)``: replaced by
    :func:`check_flag`, which says the same and exports."""
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target is torch._assert and isinstance(node.args[0], fx.Node):
            eq = node.args[0]
            if eq.op == "call_function" and eq.target is operator.eq and len(eq.users) == 1 and \
                    isinstance(eq.args[0], fx.Node) and eq.args[0].op == "placeholder" and isinstance(eq.args[1], bool):
                with graph.inserting_before(node):
                    graph.call_function(check_flag, (eq.args[0], eq.args[1], node.args[1]))
                graph.erase_node(node)
                graph.erase_node(eq)


def _switch_defaults(model: nn.Module) -> dict[str, Any]:
    try:
        parameters = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):  # a builtin or C forward: nothing to fix
        return {}
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                  inspect.Parameter.KEYWORD_ONLY)
    return {p.name: p.default for p in parameters[1:]
            if p.kind in positional and (p.default is None or isinstance(p.default, bool))}


class _ShapeRecorder(fx.Interpreter):
    def __init__(self, module: fx.GraphModule, key: str, describe: Callable[[Any, Any], Any]) -> None:
        super().__init__(module)
        self.key = key
        self.describe = describe

    def run_node(self, n: fx.Node) -> Any:
        value = super().run_node(n)
        n.meta[self.key] = self.describe(value, n.meta.get("inflate"))
        return value


class NotBatchMajor(TensorMeta):
    """The shape of a tensor whose leading axis does not hold the batch merged batch-major."""


def _describe_batch_major(value: Any, shape: Any = None) -> Any:
    """As :func:`_describe`, for a batch of 3 images whose last two are the same, ``shape``
    being the value recorded for the batch of 2: a tensor whose leading axis holds 3·k items
    where it held 2·k (k > 1) is a :class:`NotBatchMajor` shape unless items k..2k equal
    items 2k..3k, as they do where that axis is the batch merged batch-major with k items per
    sample. (The others need no look at their values: k = 1 is the batch axis itself.)"""
    if isinstance(value, torch.Tensor):
        grouped = (isinstance(shape, tuple) and len(shape) == value.dim() > 0 and shape[0] % 2 == 0
                   and shape[0] > 2 and value.shape[0] * 2 == shape[0] * 3)
        if not grouped:
            return TensorMeta(value.shape)
        k = value.shape[0] // 3
        second, third = value[k:2 * k], value[2 * k:]
        if value.is_floating_point() or value.is_complex():
            scale = float(second.abs().max()) if second.numel() else 0.0
            same = float((second - third).abs().max()) <= 1e-4 * scale if second.numel() else True
        else:
            same = torch.equal(second, third)
        return TensorMeta(value.shape) if same else NotBatchMajor(value.shape)
    if isinstance(value, (tuple, list)) and not isinstance(value, torch.Size):
        items = shape if isinstance(shape, (tuple, list)) and len(shape) == len(value) else [None] * len(value)
        return type(value)(_describe_batch_major(v, s) for v, s in zip(value, items))
    return _describe(value)


def _describe(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return TensorMeta(value.shape)
    if isinstance(value, (tuple, list)):
        return type(value)(_describe(v) for v in value) if not isinstance(value, torch.Size) else value
    if isinstance(value, dict):
        return {k: _describe(v) for k, v in value.items()}
    return value


@torch.no_grad()
def record_shapes(module: fx.GraphModule, sample: torch.Tensor, key: str = "inflate",
                  batch_major: bool = False) -> None:
    """Run ``sample`` through ``module`` (eval mode, restored after) and store each node's
    shapes (for tensors; other values as they are) in ``node.meta[key]``. With ``batch_major``,
    after a run on 2 images, ``sample`` is 3 images, the last two the same, and tensors whose
    leading axis grows with the batch but is not the batch merged batch-major with other items
    are marked :class:`NotBatchMajor`."""
    was_training = module.training
    module.eval()
    try:
        _ShapeRecorder(module, key, _describe_batch_major if batch_major else lambda v, _: _describe(v)).run(sample)
    except Exception as error:
        raise InflateError(
            f"the 2D model failed on a sample image batch of shape {tuple(sample.shape)}: {error}. "
            "Pass input_size=(C, H, W) with a size the 2D model accepts"
        ) from error
    finally:
        module.train(was_training)
