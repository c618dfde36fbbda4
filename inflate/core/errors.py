"""The library's exceptions. Each message names what is at fault and what to do next."""

from __future__ import annotations

__all__ = [
    "InflateError",
    "UnsupportedOpError",
    "ShapeMismatchError",
    "InvalidInputError",
    "RuleRegistryError",
]


class InflateError(Exception):
    """Base class of every error this library raises on purpose."""


class InvalidInputError(InflateError, ValueError):
    """An argument given to the library is of the wrong kind or out of range."""


class UnsupportedOpError(InflateError):
    """An op in the model has no inflation rule (raised under ``strict=True``).

    ``path`` names the node in the model, ``op`` the op's type or function.
    """

    def __init__(self, path: str, op: str, hint: str = "") -> None:
        self.path = path
        self.op = op
        message = f"no inflation rule for {op} at node '{path}'"
        message += f": {hint}" if hint else (
            "; run without strict=True to apply it frame by frame, or register a rule for it"
        )
        super().__init__(message)


class ShapeMismatchError(InflateError, ValueError):
    """Two shapes that must agree do not; the message gives both."""

    def __init__(self, what: str, expected: tuple, got: tuple, hint: str = "") -> None:
        self.what = what
        self.expected = tuple(expected)
        self.got = tuple(got)
        message = f"{what}: expected shape {self.expected}, got {self.got}"
        super().__init__(message + (f"; {hint}" if hint else ""))


class RuleRegistryError(InflateError, KeyError):
    """A rule was registered twice, or looked up under a key nobody registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
