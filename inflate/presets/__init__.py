"""Presets: a 2D definition plus an inflation policy. Importing this package registers them."""

from . import i3d, inception_v1  # noqa: F401

__all__ = ["i3d", "inception_v1"]
