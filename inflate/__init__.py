"""inflate: turn 2D image models into 3D video models by weight inflation (I3D).

The framework-neutral core (:mod:`inflate.core`) imports numpy only; everything that
needs torch is imported on first use, so ``import inflate.core`` works without torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "inflate_model",
    "create_model",
    "load_inflated",
    "load",
    "check_boring_video",
    "check_order_sensitivity",
    "BoringVideoReport",
    "OrderReport",
    "InflationReport",
    "TimeSpec",
    "OpSpec",
    "Policy",
    "get_policy",
    "list_policies",
    "InflateError",
    "InvalidInputError",
    "UnsupportedOpError",
    "ShapeMismatchError",
]

from .core import (  # noqa: E402  (numpy only)
    InflateError,
    InvalidInputError,
    OpSpec,
    Policy,
    ShapeMismatchError,
    TimeSpec,
    UnsupportedOpError,
    get_policy,
    list_policies,
)

# Explicit registration (numpy only): the op rules and the presets' policies, so that
# get_rule/get_policy know them in any process that imports the package.
from . import rules  # noqa: E402,F401
from .presets import policies as _preset_policies  # noqa: E402,F401

_LAZY = {
    "inflate_model": ("inflate.adapters.torch", "inflate_model"),
    "InflationReport": ("inflate.adapters.torch", "InflationReport"),
    "check_boring_video": ("inflate.checks", "check_boring_video"),
    "create_model": ("inflate.models", "create_model"),
    "load_inflated": ("inflate.export", "load_inflated"),
    "load": ("inflate.export", "load_inflated"),
    "check_order_sensitivity": ("inflate.checks", "check_order_sensitivity"),
    "BoringVideoReport": ("inflate.checks", "BoringVideoReport"),
    "OrderReport": ("inflate.checks", "OrderReport"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attribute = _LAZY[name]
        return getattr(importlib.import_module(module_name), attribute)
    raise AttributeError(f"module 'inflate' has no attribute {name!r}")
