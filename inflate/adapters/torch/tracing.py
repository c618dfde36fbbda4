"""Tracing a 2D model into a torch.fx graph and recording every value's 2D shape."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import fx, nn

from ...core.errors import InflateError

__all__ = ["InflateTracer", "trace", "record_shapes", "TensorMeta", "trace_through"]

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
    """Trace ``model`` in eval mode (its mode is restored), with a clear error on failure."""
    was_training = model.training
    model.eval()
    try:
        return tracer.trace(model)
    except Exception as error:  # fx raises many kinds; the user needs the one next step
        raise InflateError(
            f"could not trace {type(model).__name__} with torch.fx: {error}. Pass the module types "
            "that hold data-dependent Python control flow as leaf_modules=[...] so they are treated "
            "as opaque (they are then applied frame by frame)"
        ) from error
    finally:
        model.train(was_training)


class _ShapeRecorder(fx.Interpreter):
    def run_node(self, n: fx.Node) -> Any:
        value = super().run_node(n)
        n.meta["inflate"] = _describe(value)
        return value


def _describe(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return TensorMeta(value.shape)
    if isinstance(value, (tuple, list)):
        return type(value)(_describe(v) for v in value) if not isinstance(value, torch.Size) else value
    if isinstance(value, dict):
        return {k: _describe(v) for k, v in value.items()}
    return value


@torch.no_grad()
def record_shapes(module: fx.GraphModule, sample: torch.Tensor) -> None:
    """Run ``sample`` through ``module`` (eval mode, restored after) and store shapes in node.meta."""
    was_training = module.training
    module.eval()
    try:
        _ShapeRecorder(module).run(sample)
    except Exception as error:
        raise InflateError(
            f"the 2D model failed on a sample image batch of shape {tuple(sample.shape)}: {error}. "
            "Pass input_size=(C, H, W) with a size the 2D model accepts"
        ) from error
    finally:
        module.train(was_training)
