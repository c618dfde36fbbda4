"""The one place that turns exceptions into a one-line message and an exit code.

Exit codes: 0 success; 1 a check failed; 2 bad usage or input (unknown model, bad value,
unreadable, damaged or refused file, an option that does not apply); 3 an op or model the
library cannot convert (or pretrained weights that cannot be fetched); 4 an output problem
(exists without --force, not a regular file, folder missing or not writable, no space
left). ``INFLATE_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, TypeVar

import typer

from ..core.errors import InflateError, InvalidInputError, ShapeMismatchError, UnsupportedOpError, printable

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_UNSUPPORTED, EXIT_OUTPUT = 0, 1, 2, 3, 4

F = TypeVar("F", bound=Callable[..., Any])


def exit_code_for(error: BaseException) -> int:
    """The documented exit code of ``error`` (see the module docstring)."""
    from ..core.files import OutputExistsError, is_no_space_error

    if isinstance(error, OutputExistsError) or is_no_space_error(error):
        return EXIT_OUTPUT
    if is_out_of_memory(error):
        return EXIT_BAD_INPUT
    if isinstance(error, UnsupportedOpError):
        return EXIT_UNSUPPORTED
    if isinstance(error, (InvalidInputError, ShapeMismatchError, OSError)):
        return EXIT_BAD_INPUT
    if isinstance(error, InflateError):
        return EXIT_UNSUPPORTED
    return EXIT_UNSUPPORTED


def is_out_of_memory(error: BaseException) -> bool:
    """An allocation that failed: Python's MemoryError, torch's CPU allocator or CUDA out of memory."""
    import sys

    torch = sys.modules.get("torch")  # not imported: the error cannot be torch's
    if isinstance(error, MemoryError) or (torch is not None and isinstance(error, torch.OutOfMemoryError)):
        return True
    return isinstance(error, RuntimeError) and "can't allocate memory" in str(error)


def format_error(error: BaseException) -> str:
    """One line: ``error: <message>``. Messages of the library's own errors are shown as they
    are; anything else is named as unexpected, with the way to see the traceback."""
    from ..core.files import is_no_space_error

    if is_no_space_error(error) and not isinstance(error, InflateError):
        name = getattr(error, "filename", None)
        message = f"no space left on device{f' writing {name}' if name else ''}; free some space or write elsewhere"
    elif is_out_of_memory(error):
        message = ("out of memory for these settings; use a smaller --time, --size, --batch or --num-classes "
                   f"(or another device) ({type(error).__name__}: {str(error).strip().splitlines()[0][:200] if str(error).strip() else 'no details'})")
    elif isinstance(error, InflateError):
        message = str(error)
    elif isinstance(error, OSError):
        where = f" {error.filename}" if getattr(error, "filename", None) else ""
        message = f"cannot access{where}: {error.strerror or error}"
    else:
        text = str(error).strip()
        first = text.splitlines()[0][:300] if text else ""
        message = f"unexpected {type(error).__name__}: {first} (INFLATE_DEBUG=1 shows the traceback)"
    return "error: " + printable(" ".join(message.split()))


def handle_errors(command: F) -> F:
    """Run ``command``; every error becomes one line on stderr and its exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as error:  # a bug or an unforeseen model: still one line, and how to see more
            if os.environ.get("INFLATE_DEBUG"):
                raise
            typer.echo(format_error(error), err=True)
            raise typer.Exit(exit_code_for(error)) from None

    return wrapper  # type: ignore[return-value]


def _click_usage_error() -> type:
    # Typer vendors its own copy of click: take its UsageError from a public Typer exception.
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def _usage_error_class() -> type:
    class OneLineUsageError(_click_usage_error()):  # type: ignore[misc, valid-type]
        """click's usage error, shown as the other errors are: one line, naming the option."""

        def show(self, file: Any = None) -> None:
            command = f" {self.ctx.command_path}" if self.ctx is not None else ""
            typer.echo(f"error: {' '.join(self.format_message().split())} (see{command} --help)", err=True)

    return OneLineUsageError


def one_line_usage_errors(group_class: type) -> type:
    """A Typer group class whose commands report bad usage (a wrong option value, a missing
    argument) in one line, like every other error, with exit code 2."""
    usage_error, error_class = _click_usage_error(), _usage_error_class()

    class OneLineErrorsGroup(group_class):  # type: ignore[misc, valid-type]
        def invoke(self, ctx: Any) -> Any:
            try:
                return super().invoke(ctx)
            except usage_error as error:
                if isinstance(error, error_class):
                    raise
                raise error_class(error.format_message(), error.ctx) from None

    return OneLineErrorsGroup
