"""The tables presets register into: 2D presets (``register_preset``) and ready 3D models
(``register_model``). :mod:`inflate.models` reads them; the preset modules fill them when
:func:`inflate.presets.load_presets` imports them."""

from __future__ import annotations

from typing import Any, Callable

from ..core.errors import RuleRegistryError

__all__ = ["PRESETS", "MODELS_3D", "register_preset", "register_model"]

Factory = Callable[..., Any]  # (**kwargs) -> nn.Module
PRESETS: dict[str, Factory] = {}
MODELS_3D: dict[str, Factory] = {}


def _registrar(table: dict[str, Factory], what: str, name: str) -> Callable[[Factory], Factory]:
    def decorator(factory: Factory) -> Factory:
        if name in table:
            raise RuleRegistryError(f"a {what} named {name!r} is already registered")
        table[name] = factory
        return factory
    return decorator


def register_preset(name: str) -> Callable[[Factory], Factory]:
    """Register a factory ``(**kwargs) -> nn.Module`` under ``name`` for create_2d_model and the CLI."""
    return _registrar(PRESETS, "preset", name)


def register_model(name: str) -> Callable[[Factory], Factory]:
    """Register a factory of a ready 3D model (``inflate.create_model(name)``, ``inflate convert name``)."""
    return _registrar(MODELS_3D, "3D model", name)
