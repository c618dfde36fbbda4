"""The torch adapter's handler registry: one table for modules, functions and tensor methods.

A handler is registered with :func:`handles` under the core rule kind it applies and the
exact targets it handles (module types, functions, ``Tensor`` method names), as
onnx2torch's converter registry: the key is a :class:`HandlerKey`, a second registration of
the same key raises, and so does a kind the core has no rule for, so the registry cannot
advertise an op its rules do not cover. Module types are matched exactly, never by
``isinstance`` (timm's ``Conv2dSame`` subclasses ``nn.Conv2d`` but pads at run time).

The handler modules (:mod:`.handlers`, one per op family) fill the table when imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, NamedTuple

from ...core.errors import RuleRegistryError
from ...core.rules import has_rule

__all__ = ["HandlerKey", "Handler", "handles", "handler_for", "list_handlers", "module_types", "target_name"]

NodeOp = Literal["call_module", "call_function", "call_method"]


class HandlerKey(NamedTuple):
    """What a handler is registered under: the fx node op and its exact target (a module type,
    a function, or a ``Tensor`` method name)."""

    op: NodeOp
    target: Any


@dataclass(frozen=True)
class Handler:
    """One registered handler: ``fn(rewriter, node)`` returns the 3D value and its layout, or a
    :class:`~.rewriter.ModuleResult` for the walker to place."""

    key: HandlerKey
    kind: str
    fn: Callable[..., Any]


_HANDLERS: dict[HandlerKey, Handler] = {}


def _key(target: Any) -> HandlerKey:
    if isinstance(target, str):
        return HandlerKey("call_method", target)
    if isinstance(target, type):
        return HandlerKey("call_module", target)
    if callable(target):
        return HandlerKey("call_function", target)
    raise RuleRegistryError(f"cannot register a handler for {target!r}: give a module type, a function or a "
                            "Tensor method name")


def target_name(target: Any) -> str:
    """A readable name of a target: ``torch.nn.Conv2d``, ``F.max_pool2d``, ``Tensor.view``."""
    if isinstance(target, str):
        return f"Tensor.{target}"
    name = getattr(target, "__name__", None) or str(target)
    if not isinstance(target, type):  # builtins report torch._C modules: name them as users write them
        import builtins
        import operator

        import torch
        import torch.nn.functional as F

        for prefix, namespace in (("F", F), ("torch", torch), ("operator", operator), ("builtins", builtins)):
            if getattr(namespace, name, None) is target:
                return f"{prefix}.{name}"
    module = getattr(target, "__module__", None) or ""
    if module.startswith("torch.nn.modules."):
        module = "nn"
    return f"{module}.{getattr(target, '__qualname__', name)}" if module else name


def handles(kind: str, *targets: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register a handler applying the core rule ``kind`` to ``targets``.

    Raises :class:`~inflate.core.errors.RuleRegistryError` for a kind with no core rule or a
    target already registered. A target given twice in one call (aliases such as
    ``torch.split`` and ``torch.functional.split``) counts once.
    """
    if not has_rule(kind):
        raise RuleRegistryError(f"cannot register a handler for op kind {kind!r}: the core has no rule for it; "
                                "register the rule in inflate/rules/ first")
    keys = list(dict.fromkeys(_key(target) for target in targets))
    for key in keys:
        if key in _HANDLERS:
            held = _HANDLERS[key]
            raise RuleRegistryError(
                f"a handler for {target_name(key.target)} is already registered "
                f"({held.fn.__module__}.{held.fn.__qualname__}, kind {held.kind!r})")

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        for key in keys:
            _HANDLERS[key] = Handler(key, kind, fn)
        return fn

    return decorator


def handler_for(op: str, target: Any) -> Handler | None:
    """The handler of an fx node's op and target (for modules: the module's exact type), or None."""
    try:
        return _HANDLERS.get(HandlerKey(op, target))  # type: ignore[arg-type]
    except TypeError:  # an unhashable target has no handler
        return None


def list_handlers() -> list[Handler]:
    """Every registered handler, in registration order."""
    return list(_HANDLERS.values())


def module_types() -> set[type]:
    """The module types with a handler: the tracer keeps them as leaves."""
    return {key.target for key in _HANDLERS if key.op == "call_module"}
