"""Writing files without ever leaving a half-written one behind: every file spadekit writes goes through
`atomic_write` (images through `spadekit.imageio.save_image`, which uses it).

A write that fails for want of space (or any other OS error) raises `WriteError`: one message naming the
file and what it holds, the temporary file removed and the old file, if any, untouched.
"""
from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from spadekit import SpadekitError

# Below this much free space a failed write is put down to a full disk: some writers (torch.save's zip
# writer) report a short write as a RuntimeError without the OS error behind it.
LOW_SPACE_BYTES = 1 << 20
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class WriteError(SpadekitError, OSError):
    """A file could not be written. `path`: the file (or folder) meant; `what`: what it holds
    ("the checkpoint"); `reason`: why, in words; `disk_full`: whether it was for want of space.
    An OSError too, so code that handles write failures as OSErrors keeps working."""

    def __init__(self, path: str | os.PathLike, what: str, reason: str, disk_full: bool):
        self.path, self.what, self.reason, self.disk_full = Path(path), what, reason, disk_full
        advice = "free space there and try again" if disk_full else "check the folder's permissions and the disk"
        super().__init__(f"cannot write {what} {self.path}: {reason}; {advice}")

    def __reduce__(self):  # pickled across processes with its fields, not OSError's (errno, strerror)
        return (type(self), (self.path, self.what, self.reason, self.disk_full))


def free_bytes(folder: str | os.PathLike) -> int | None:
    """Bytes an unprivileged writer may still use on the filesystem of `folder` (None when unknown)."""
    try:
        stat = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return stat.f_bavail * stat.f_frsize


def _as_write_error(error: BaseException, path: Path, what: str) -> WriteError | None:
    """The WriteError a failed write amounts to, or None when it was not about writing (a bug in `write`)."""
    code = getattr(error, "errno", None)
    text = str(error)
    free = free_bytes(path.parent) if path.parent.is_dir() else None
    if code in _FULL_ERRNOS or "No space left" in text or (free is not None and free < LOW_SPACE_BYTES):
        return WriteError(path, what, f"no space left on the disk ({free if free is not None else 'unknown'} bytes free)", True)
    if isinstance(error, OSError):
        return WriteError(path, what, error.strerror or text or type(error).__name__, False)
    return None


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], what: str = "the file") -> None:
    """Write via `write(tmp_path)` to a temporary file in the same folder, fsync, then rename over `path`.

    what: what the file holds, for the error message ("the checkpoint", "the sample grid").
    The temporary name ends in ".tmp": writers that pick a format from the suffix need it given
    explicitly (PIL's `format=`), and writers that append one (numpy's savez) need a file handle.
    On any error the temporary file is removed and `path` is left as it was; a failure to write
    (no space, permissions, I/O) raises `WriteError`.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.chmod(tmp, _FILE_MODE)
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        # judged before the temporary file goes: its blocks are what filled the disk
        failure = _as_write_error(error, path, what) if isinstance(error, Exception) and not isinstance(error, WriteError) else None
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if failure is not None:
            raise failure from error
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, what: str = "the file") -> None:
    atomic_write(path, lambda p: Path(p).write_bytes(data), what)


def atomic_write_text(path: str | os.PathLike, text: str, what: str = "the file") -> None:
    atomic_write(path, lambda p: Path(p).write_text(text, encoding="utf-8"), what)


def append_text(path: str | os.PathLike, text: str, what: str = "the file") -> None:
    """Append `text` to a log-like file (a cut line is possible on failure; readers skip it)."""
    path = Path(path)
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:
        raise _as_write_error(error, path, what) from error


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp makes owner-only files; written files get the usual permissions (0666 less the umask) instead.
_FILE_MODE = 0o666 & ~_umask()
