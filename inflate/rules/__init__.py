"""Inflation rules, one module per op family. Importing this package registers them all."""

from . import conv, norm, pool, resample  # noqa: F401

__all__ = ["conv", "norm", "pool", "resample"]
