"""Inflation rules, one module per op family. Importing this package registers them all
(``import inflate`` does); the core never imports it."""

from . import attention, axis, conv, linear, norm, patch_embed, pointwise, pool, resample, std_conv  # noqa: F401

__all__ = ["attention", "axis", "conv", "linear", "norm", "patch_embed", "pointwise", "pool", "resample", "std_conv"]
