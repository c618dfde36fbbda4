"""The one place that turns known exceptions into a one-line message and an exit code.

Exit codes: 0 success; 1 a check failed; 2 bad usage or input (unknown model, bad value,
unreadable file); 3 an op or model the library cannot convert; 4 an output problem
(exists without --force, not writable). ``INFLATE_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, TypeVar

import typer

from ..core.errors import InflateError, InvalidInputError, ShapeMismatchError, UnsupportedOpError

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_UNSUPPORTED, EXIT_OUTPUT = 0, 1, 2, 3, 4

F = TypeVar("F", bound=Callable[..., Any])


def exit_code_for(error: BaseException) -> int:
    from ..io import OutputExistsError

    if isinstance(error, OutputExistsError):
        return EXIT_OUTPUT
    if isinstance(error, UnsupportedOpError):
        return EXIT_UNSUPPORTED
    if isinstance(error, (InvalidInputError, ShapeMismatchError, FileNotFoundError)):
        return EXIT_BAD_INPUT
    if isinstance(error, InflateError):
        return EXIT_UNSUPPORTED
    return EXIT_BAD_INPUT


def handle_errors(command: F) -> F:
    """Run ``command``; known errors become one line on stderr and their exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (InflateError, FileNotFoundError, PermissionError) as error:
            if os.environ.get("INFLATE_DEBUG"):
                raise
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(exit_code_for(error)) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as error:  # a bug or an unforeseen model: still one line, and how to see more
            if os.environ.get("INFLATE_DEBUG"):
                raise
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            typer.echo(f"error: unexpected {type(error).__name__}: {first} "
                       "(INFLATE_DEBUG=1 shows the traceback)", err=True)
            raise typer.Exit(EXIT_UNSUPPORTED) from None

    return wrapper  # type: ignore[return-value]

