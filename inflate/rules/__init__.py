"""Inflation rules, one module per op family. Importing this package registers them all."""

from . import attention, conv, norm, patch_embed, pool, resample  # noqa: F401

__all__ = ["attention", "conv", "norm", "patch_embed", "pool", "resample"]
