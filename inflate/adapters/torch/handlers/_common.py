"""Pieces shared by the handler modules: argument reading and the numpy bridge to the rules."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import fx, nn

from ..layout import Clip
from ..rewriter import Rewriter

__all__ = ["arg", "first_clip", "pair", "to_numpy", "from_numpy", "set_params", "module_weights"]


def arg(node: fx.Node, index: int, name: str, default: Any = None) -> Any:
    """Argument ``name`` of a call node, given by keyword or at position ``index``."""
    if name in node.kwargs:
        return node.kwargs[name]
    return node.args[index] if len(node.args) > index else default


def first_clip(rw: Rewriter, node: fx.Node) -> tuple[Any, Clip]:
    """The (3D value, layout) of a node's first argument, which must carry time."""
    first = node.args[0]
    return rw.env[first][0], rw.info(first)


def pair(value: Any) -> tuple[int, int]:
    """A (height, width) pair from an int or a sequence, as torch's 2D ops read their arguments."""
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1])) if len(value) else (0, 0)
    return int(value), int(value)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A CPU numpy view (or float32 copy, for dtypes numpy lacks) of a tensor."""
    tensor = tensor.detach()
    if tensor.dtype in (torch.bfloat16, torch.float16):
        tensor = tensor.float()
    return tensor.cpu().numpy()


def _tensor(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    # copy() makes flipped or strided views contiguous (np.ascontiguousarray would make 0-d arrays 1-d)
    array = array if array.flags.c_contiguous else array.copy()
    return torch.from_numpy(array).to(device=like.device, dtype=like.dtype)


def from_numpy(array: np.ndarray, like: torch.Tensor) -> nn.Parameter:
    """A parameter holding ``array`` with the dtype, device and requires_grad of ``like``."""
    return nn.Parameter(_tensor(array, like), requires_grad=like.requires_grad)


def module_weights(module: nn.Module) -> dict[str, np.ndarray]:
    """A module's own parameters and buffers (not its children's) as numpy arrays, by name."""
    tensors = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
    return {name: to_numpy(value) for name, value in tensors if value is not None}


def set_params(module: nn.Module, weights: dict[str, np.ndarray], source: nn.Module) -> None:
    """Set ``module``'s parameters (and buffers) from a rule's 3D weights, with the dtype,
    device and requires_grad of ``source``'s tensors of the same name."""
    buffers = dict(source.named_buffers(recurse=False))
    for name, array in weights.items():
        like = getattr(source, name)
        if name in buffers:
            module.register_buffer(name, _tensor(array, like))
        else:
            setattr(module, name, from_numpy(array, like))
