"""Writing the user's files: atomically, and never through a mode that forbids writing.

Every file the package writes for a user — a fixed model source, a suppression comment, a baseline,
a results file, a report — goes through :func:`write_atomic`. Whether a file may be written is read
from its mode bits, not only from :func:`os.access`: as root, ``os.access`` says yes to a 0444 file,
and an atomic replace needs no write permission on the file at all, so without this check a
read-only file would be rewritten.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path


def read_only_reason(path: str | os.PathLike[str]) -> str | None:
    """Return why ``path`` must not be written (the file's or its directory's mode), or None when it may.

    A file that does not exist yet may be written when its directory may.
    """
    path = Path(path)
    try:
        if not _may_write(path.stat()) or not os.access(path, os.W_OK):
            return "it is read-only (its mode forbids writing)"
    except FileNotFoundError:
        pass
    directory = path.parent if str(path.parent) else Path(".")
    try:
        info = directory.stat()
    except FileNotFoundError:
        return None  # created by the write, inside a parent that is checked when it is made
    if not _may_write(info) or not os.access(directory, os.W_OK | os.X_OK):
        return f"its directory {directory} is read-only (an atomic write needs to create a file there)"
    return None


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a part.

    The text goes to a temporary file in the same directory (same file system), is flushed to disk,
    then renamed over ``path`` with :func:`os.replace`. Missing parent directories are created. The
    file keeps its permissions, or gets the usual ones for a new file (0o666 minus the umask).
    Raises :class:`PermissionError` without touching anything when the file's or the directory's
    mode forbids writing (:func:`read_only_reason`), as root too.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    reason = read_only_reason(path)
    if reason is not None:
        raise PermissionError(errno.EACCES, reason, str(path))
    try:
        mode: int | None = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # os.open applies the umask to 0o666 itself (mkstemp would create 0o600, and reading the umask
    # means setting it, which races with other threads).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _may_write(info: os.stat_result) -> bool:
    """Whether the mode bits let this process write: the owner's, group's or others' bit that applies.

    Root may write anything the kernel allows, but a file with no write bit at all was made read-only
    on purpose, so root is held to "some write bit is set".
    """
    mode = info.st_mode
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    if uid is None:  # pragma: no cover - Windows: the read-only attribute is the owner's write bit
        return bool(mode & stat.S_IWUSR)
    if uid == 0:
        return bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    if info.st_uid == uid:
        return bool(mode & stat.S_IWUSR)
    if info.st_gid in os.getgroups() or info.st_gid == os.getegid():
        return bool(mode & stat.S_IWGRP)
    return bool(mode & stat.S_IWOTH)
