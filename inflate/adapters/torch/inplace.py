"""In-place activations after folded layers, made out-of-place where that cannot change a value;
residual sums written into their dead first operand when no gradient is recorded.

A time-1 layer runs on frames folded into the batch and hands back a (B, C, T, H, W) *view* of its
(B·T, C, H, W) result (:mod:`.modules`). An in-place op on a view makes autograd record the write
on the view's base (``CopySlices``): in the backward pass each such op clones the whole gradient,
fills a zero tensor and copies it back, which cost resnet50 a quarter of its training step. In the
2D model the same activation wrote into a fresh tensor, so the cost is the inflation's alone.

Where the tensor written in place is the output of a layer that makes a fresh tensor in the 2D
model (a convolution, a batch norm, a pool) and nothing else reads it, the in-place form and the
out-of-place form compute the same values: nothing can observe the difference. There the pass
turns the write out-of-place (``inplace=False`` on the module or the call). Memory stays the same:
the input is freed as soon as the activation has run, as the written tensor would have been.

The other way round, torch.fx records a residual ``x += shortcut`` (ResNet's blocks) as ``x +
shortcut``: a fresh tensor per block where the 2D model wrote into ``x``. Where ``x`` is a
layer's fresh output that nothing else reads, :func:`add_into_dead` writes the sum into it when
no gradient is being recorded (inference), and adds out of place otherwise (autograd would
record an in-place write on a folded layer's view, as above).
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx, nn

from .modules import InflatedAvgPool3d, InflatedBatchNorm3d, InflatedConv3d, InflatedMaxPool3d

__all__ = ["out_of_place_after_folds", "add_into_dead", "sums_into_dead_operands"]

# Layers whose output is a new tensor in the 2D model (and, folded, a view of a new tensor).
FRESH_OUTPUT = (InflatedConv3d, InflatedBatchNorm3d, InflatedMaxPool3d, InflatedAvgPool3d)



def _pass_through() -> tuple[type, ...]:
    """Modules that hand back their input itself (or, training, a fresh tensor): identity, dropout."""
    types: list[type] = [nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout]
    try:
        from timm.layers import DropBlock2d, DropPath

        types += [DropPath, DropBlock2d]
    except ImportError:  # timm is optional here
        pass
    return tuple(types)


def _fresh_single_use(root: nn.Module, node: fx.Node, consumer: fx.Node) -> bool:
    """``node`` is a call of a layer with a fresh output, read by ``consumer`` alone, possibly
    through a chain of single-use identity or dropout modules."""
    pass_through = _pass_through()
    while isinstance(node, fx.Node) and node.op == "call_module" and list(node.users) == [consumer]:
        module = root.get_submodule(str(node.target))
        if isinstance(module, FRESH_OUTPUT):
            return True
        if not isinstance(module, pass_through) or not node.args:
            return False
        node, consumer = node.args[0], node
    return False


def out_of_place_after_folds(graph: fx.Graph, root: nn.Module) -> list[str]:
    """Rewrite in-place activations whose input is a folded layer's single-use output, in ``graph``
    (whose modules live in ``root``). A module is switched to ``inplace=False`` only where every
    call of it qualifies, since it may be shared. Returns the module paths and function calls switched."""
    calls: dict[str, list[bool]] = {}
    switched = []
    for node in graph.nodes:
        if not node.args:
            continue
        if node.op == "call_module":
            module = root.get_submodule(str(node.target))
            if getattr(module, "inplace", False) is True:
                calls.setdefault(str(node.target), []).append(_fresh_single_use(root, node.args[0], node))
        elif node.op == "call_function" and node.kwargs.get("inplace") is True \
                and _fresh_single_use(root, node.args[0], node):
            node.kwargs = {**node.kwargs, "inplace": False}
            switched.append(f"{node.name} ({getattr(node.target, '__name__', node.target)})")
    for path, qualifies in calls.items():
        if all(qualifies):
            root.get_submodule(path).inplace = False
            switched.append(path)
    return switched


def add_into_dead(dead: torch.Tensor, other: Any) -> torch.Tensor:
    """``dead + other``, written into ``dead`` (a tensor nothing reads afterwards) when no gradient
    is recorded and the sum has ``dead``'s shape and dtype; a new tensor otherwise (training,
    tracing for export, broadcasting that grows ``dead``)."""
    if torch.is_grad_enabled() or torch.jit.is_tracing() or torch.jit.is_scripting():
        return dead + other
    if isinstance(other, torch.Tensor):  # the common case, equal shapes and dtypes, checked first: it is cheap
        if other.dtype != dead.dtype or (other.shape != dead.shape and
                                         torch.broadcast_shapes(dead.shape, other.shape) != dead.shape):
            return dead + other
    elif not isinstance(other, (int, float)) or torch.result_type(dead, other) != dead.dtype:
        return dead + other
    return dead.add_(other)


def sums_into_dead_operands(graph: fx.Graph, root: nn.Module) -> list[str]:
    """Point the two-operand additions of ``graph`` whose first operand is a layer's fresh output
    read by the addition alone (through identity or dropout modules) at :func:`add_into_dead`.
    Returns the nodes changed."""
    changed = []
    for node in graph.nodes:
        if node.op == "call_function" and node.target in (operator.add, torch.add) and len(node.args) == 2 \
                and not node.kwargs and isinstance(node.args[0], fx.Node) \
                and _fresh_single_use(root, node.args[0], node):
            node.target = add_into_dead
            changed.append(node.name)
    return changed
