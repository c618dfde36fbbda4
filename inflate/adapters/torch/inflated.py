"""The class of an inflated model, and how it pickles.

An inflated model is the 2D model itself, with its submodules (some replaced by their 3D
forms), attributes and methods (``get_classifier``, ``no_weight_decay``, ...), whose class
becomes ``Inflated<Base>(InflatedModel, Base)``: ``forward`` is the code generated from the
rewritten graph. So ``isinstance(model3d, timm.models.ResNet)`` still holds, and
``isinstance(model3d, InflatedModel)`` tells an inflated model.

Pickling: that class is made at run time, once per (2D class, generated code), so pickle
cannot find it by name. An instance reduces instead to :func:`_rebuild` with the 2D class
(found by name, as pickle finds any class) and the generated code (plain source with its
imports, the form ``torch.fx.GraphModule`` pickles its code in), plus the instance's state;
unpickling makes the class again from those two. ``copy.deepcopy`` takes the same path.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, Optional

from torch import fx, nn

from ...core.errors import InflateError

__all__ = ["InflatedModel", "inflated_class", "module_signature"]


class InflatedModel(nn.Module):
    """The first base of every inflated model's class (see the module docstring).

    Class attributes set by :func:`inflated_class`: ``_inflated_base`` (the 2D class) and
    ``_inflated_code`` (the forward's source with its imports; None where a function the
    graph calls cannot be imported by name, and the model then does not pickle).
    """

    _inflated_base: type
    _inflated_code: Optional[str] = None

    def __reduce_ex__(self, protocol: Any) -> Any:
        cls = type(self)
        if cls._inflated_code is None:
            return super().__reduce_ex__(protocol)  # deepcopy works; pickle says which class it cannot find
        return _rebuild, (cls._inflated_base, cls._inflated_code), self.__dict__.copy()

    def forward_features(self, *args: Any, **kwargs: Any) -> Any:
        raise InflateError(
            f"{type(self).__name__} is an inflated model: only forward(clip) was rewritten for clips; "
            "forward_features/forward_head still run the 2D code. Call the model itself"
        )

    forward_head = forward_features


def _rebuild(base: type, code: str) -> InflatedModel:
    """An empty instance of the inflated class of ``base`` with forward ``code``; pickle then
    restores its state (``nn.Module.__setstate__``)."""
    cls = _class_from_code(base, code)
    return cls.__new__(cls)


def inflated_class(base: type, graph: fx.Graph) -> type:
    """The class of an inflated ``base`` model whose forward runs ``graph`` (with ``self`` the model).

    Classes are shared between models with the same 2D class and the same generated code.
    """
    from torch.fx.graph_module import _format_import_block, _forward_from_src
    from torch.package import sys_importer

    python_code = graph.python_code(root_module="self")
    try:
        code = _format_import_block(python_code.globals, sys_importer) + python_code.src
    except Exception:  # a global pickle cannot name (a local function): the model works but does not pickle
        return _make_class(base, _forward_from_src(python_code.src, python_code.globals), None)
    return _class_from_code(base, code)


@functools.lru_cache(maxsize=None)
def _class_from_code(base: type, code: str) -> type:
    from torch.fx.graph_module import _forward_from_src

    return _make_class(base, _forward_from_src(code, {}), code)


def _make_class(base: type, forward: Any, code: Optional[str]) -> type:
    name = f"Inflated{base.__name__}"
    namespace: dict[str, Any] = {
        "forward": forward,
        "_inflated_base": base,
        "_inflated_code": code,
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": f"{base.__name__} inflated to 3D by inflate.inflate_model; input (B, C, T, H, W).",
    }
    if hasattr(base, "reset_classifier"):
        namespace["reset_classifier"] = _reset_classifier
    return type(name, (InflatedModel, base), namespace)


def _reset_classifier(self: InflatedModel, *args: Any, **kwargs: Any) -> None:
    """timm's ``reset_classifier``, then the 3D forms of the head modules it rebuilt put back
    where the rebuilt 2D module has the same structure as the one that was inflated."""
    inflated = {path: self.get_submodule(path) for path in self._inflated_sources}
    type(self)._inflated_base.reset_classifier(self, *args, **kwargs)
    for path, module3d in inflated.items():
        current = self.get_submodule(path)
        if current is module3d:
            continue
        if module_signature(current) != self._inflated_sources[path]:
            raise InflateError(
                f"reset_classifier replaced '{path}' by a different {type(current).__name__}, which has no 3D "
                "form yet: call reset_classifier on the 2D model and inflate it again"
            )
        set_submodule(self, path, module3d)


def module_signature(module: nn.Module) -> tuple[Any, ...]:
    """What makes two modules interchangeable: the exact type, the plain settings
    (numbers, strings, tuples), parameter and buffer shapes, and the children's signatures."""
    plain = (int, float, str, bool, tuple, type(None))
    settings = tuple(sorted((k, v) for k, v in vars(module).items()
                            if not k.startswith("_") and k != "training" and isinstance(v, plain)))
    tensors = tuple((name, tuple(t.shape)) for name, t in itertools.chain(module._parameters.items(),
                                                                          module._buffers.items()) if t is not None)
    children = tuple((name, module_signature(child)) for name, child in module.named_children())
    return type(module), settings, tensors, children


def set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    """Put ``module`` at dotted ``path`` under ``root`` (the parent must exist)."""
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    parent._modules[name] = module
