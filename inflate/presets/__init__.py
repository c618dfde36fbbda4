"""Presets: a 2D definition plus an inflation policy.

Registration is explicit. The policies (numpy only) are registered by ``import inflate``
through :mod:`.policies`; the model factories (which need torch) by :func:`load_presets`,
which imports the modules listed there and which :mod:`inflate.models` calls before it
looks a name up.
"""

from __future__ import annotations

from . import policies  # noqa: F401  (registers i3d_paper)

__all__ = ["policies", "load_presets"]


def load_presets() -> None:
    """Import the preset modules (torch needed), which register their factories."""
    from . import i3d, inception_v1  # noqa: F401
