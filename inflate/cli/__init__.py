"""The ``inflate`` command line (Typer). One module per command group; ``main`` is the entry point."""

from .app import app, main

__all__ = ["app", "main"]
