"""Writing outputs safely: refuse to overwrite without being asked, never leave a half-written file.

An output is written to a temporary file beside it (``.NAME.PID.XXXX.part``) and put in
place only when complete. The final step refuses a file that appeared at the output path
meanwhile (a hard link fails on an existing name; no check-then-rename window), unless
overwriting was asked for. Paths that exist and are not regular files (device nodes,
FIFOs, sockets, folders) are never replaced, even with ``force``. SIGTERM and SIGINT remove
the temporary; a later write of the same output removes temporaries that dead processes
left behind. The output gets the permissions a plain ``open(path, "w")`` would give it
(0666 less the umask, or the mode of the file it replaces).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

from .errors import InflateError

__all__ = ["OutputExistsError", "check_output_path", "atomic_output", "is_no_space_error", "require_input_file"]


class OutputExistsError(InflateError):
    """An output cannot be written: it exists and overwriting was not asked for, it is not a
    regular file, its folder is missing or not writable, or the disk is full."""


def _describe(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def _existing_mode(path: Path) -> int | None:
    """The mode of what ``path`` names (following links), None when nothing is there."""
    try:
        return os.stat(path).st_mode
    except FileNotFoundError:
        try:  # a dangling link: something is there, but not a file we may replace
            return os.lstat(path).st_mode
        except FileNotFoundError:
            return None


def require_input_file(path: str | os.PathLike[str], what: str = "file", expected: str = "") -> Path:
    """``path`` as a Path if it names a regular file (links followed); otherwise InvalidInputError
    saying what is there instead. ``expected`` names the kinds of file wanted, for the hint."""
    from .errors import InvalidInputError

    path = Path(path)
    mode = _existing_mode(path)
    hint = f"; give {expected}" if expected else ""
    if mode is None:
        raise InvalidInputError(f"{what} {path} does not exist".lstrip())
    if stat.S_ISDIR(mode):
        raise InvalidInputError(f"{what} {path} is a folder{hint}".lstrip())
    if not stat.S_ISREG(mode):
        raise InvalidInputError(f"{what} {path} is {_describe(mode)}, not a regular file{hint}".lstrip())
    return path


def check_output_path(path: str | os.PathLike[str], force: bool,
                      inputs: tuple[str | os.PathLike[str] | None, ...] = ()) -> Path:
    """Refuse an existing output without ``force``, anything but a regular file even with it,
    one of the command's ``inputs`` even with it, and a folder that is missing or cannot be written."""
    path = Path(path)
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise OutputExistsError(f"{path} is the input {source}; write to another path "
                                    "(--force never replaces a command's own input)")
    mode = _existing_mode(path)
    if mode is not None and not stat.S_ISREG(mode):
        if stat.S_ISDIR(mode):
            raise OutputExistsError(f"{path} is a folder; give a file name")
        raise OutputExistsError(f"{path} exists and is {_describe(mode)}, not a regular file; "
                                "inflate only writes regular files (--force does not replace it): choose another path")
    if mode is not None and not force:
        raise OutputExistsError(f"{path} exists; pass --force (force=True) to overwrite it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputExistsError(f"cannot write {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputExistsError(f"cannot write {path}: folder {parent} is not writable")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def is_no_space_error(error: BaseException, folder: str | os.PathLike[str] | None = None) -> bool:
    """True for a full disk or quota, however the writer reports it (OSError, safetensors'
    Rust io error). torch's stream writer only reports positions that do not add up: with
    ``folder``, an OSError or RuntimeError counts when the folder's file system has under
    64 KiB left."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error)
    if "No space left on device" in text or "os error 28" in text or "Disk quota exceeded" in text:
        return True
    if folder is not None and isinstance(error, (OSError, RuntimeError)):
        try:
            usage = os.statvfs(folder)
        except OSError:
            return False
        return usage.f_bavail * usage.f_frsize < 64 * 1024
    return False


def _umask() -> int:
    try:  # reading it does not change it (os.umask would, for a moment, in every thread)
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_STALE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.part$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Delete temporaries of ``target`` left by processes that no longer run (killed, power
    lost); temporaries of a live process (a concurrent write) are kept. Returns the removed."""
    removed = []
    folder = target.parent if str(target.parent) else Path(".")
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            match = _STALE.match(entry.name)
            if not match or match["name"] != target.name or int(match["pid"]) == os.getpid():
                continue
            if not _pid_alive(int(match["pid"])) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


class _Terminated(SystemExit):
    """Raised in the main thread by SIGTERM while an output is being written, so that the
    cleanup below runs; exits with 128 + SIGTERM as the default action would."""


@contextlib.contextmanager
def _cleanup_on_sigterm() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield  # someone else handles SIGTERM (or we cannot install a handler from this thread)
        return

    def terminate(signum: int, frame: Any) -> None:
        raise _Terminated(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _place(temporary: Path, target: Path, force: bool, mode: int) -> None:
    """Put the finished temporary at ``target``: never over a file that appeared meanwhile
    (unless ``force``), never over anything but a regular file."""
    os.chmod(temporary, mode)
    if not force:
        try:
            os.link(temporary, target)  # fails on an existing name, atomically
        except FileExistsError:
            raise OutputExistsError(f"{target} appeared while it was being written; it was kept. Pass --force "
                                    "(force=True) to overwrite it") from None
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
                raise
            # No hard links on this file system: claim the name exclusively, then rename over the claim.
            try:
                os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                raise OutputExistsError(f"{target} appeared while it was being written; it was kept. Pass "
                                        "--force (force=True) to overwrite it") from None
            os.replace(temporary, target)
            return
        os.unlink(temporary)
        return
    existing = _existing_mode(target)
    if existing is not None and not stat.S_ISREG(existing):
        raise OutputExistsError(f"{target} was replaced by {_describe(existing)} while it was being written; "
                                "inflate only writes regular files")
    os.replace(temporary, target)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it to ``path`` only if the block succeeds.

    Raises :class:`OutputExistsError` (before the block) for a path that may not be written,
    and (after it) when a file appeared at ``path`` meanwhile and ``force`` is False, or the
    disk filled up. On any error, SIGINT or SIGTERM the temporary is removed.
    """
    target = check_output_path(path, force)
    remove_stale_temporaries(target)
    existing = _existing_mode(target)
    mode = stat.S_IMODE(existing) if existing is not None else 0o666 & ~_umask()
    with _cleanup_on_sigterm():
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".part",
                                        dir=target.parent if str(target.parent) else ".")
        os.close(handle)
        temporary = Path(name)
        try:
            try:
                yield temporary
            except Exception as error:
                if is_no_space_error(error, target.parent if str(target.parent) else "."):
                    raise OutputExistsError(f"cannot write {target}: no space left on device "
                                            f"(folder {target.parent}); nothing was written") from None
                raise
            _place(temporary, target, force, mode)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
