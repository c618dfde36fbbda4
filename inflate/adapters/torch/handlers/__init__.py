"""The torch adapter's handlers, one module per op family beside its rule in :mod:`inflate.rules`.

Importing this package registers them all in :mod:`..registry` (timm's layer types too,
when timm is installed). A new op is one rule (``inflate/rules/``) and one handler here.
"""

from __future__ import annotations

from . import attention, axis, conv, linear, matmul, norm, pointwise, pool, resample  # noqa: F401
from .attention import dynamic_image_size
from .timm import register_timm

register_timm()

__all__ = ["dynamic_image_size", "attention", "axis", "conv", "linear", "matmul", "norm", "pointwise", "pool", "resample"]
