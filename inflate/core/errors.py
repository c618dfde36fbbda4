"""The library's exceptions. Each message names what is at fault and what to do next."""

from __future__ import annotations

from typing import Iterable

__all__ = [
    "key_mismatch",
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
    """A registry (rules, the torch adapter's handlers, policies, presets) was given a key twice,
    a handler for a kind with no rule, or a lookup under a key nobody registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def key_mismatch(expected: Iterable[str], given: Iterable[str], expected_name: str, given_name: str) -> str | None:
    """What is missing from ``given`` and what it has in excess, or None when the key sets agree.

    BatchNorm's ``num_batches_tracked`` counters may be missing: they carry no weights.
    """
    given_set, expected_set = set(given), set(expected)
    missing = [k for k in expected if k not in given_set and not k.endswith("num_batches_tracked")]
    extra = [k for k in given if k not in expected_set]
    if not missing and not extra:
        return None
    parts = []
    if missing:
        parts.append(f"{len(missing)} {expected_name} keys are missing (first: '{missing[0]}')")
    if extra:
        parts.append(f"{len(extra)} {given_name} keys are not expected (first: '{extra[0]}')")
    return "; ".join(parts)


MAX_MESSAGE = 1000


def printable(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` safe for one line of a terminal: control characters (a file name may hold newlines
    or escape sequences) shown escaped, and cut to ``limit`` characters (a split file's 20 MB line)."""
    safe = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return safe if len(safe) <= limit else f"{safe[:limit]}… ({len(safe) - limit} more characters)"
