"""Writing output files atomically, so an interrupted or failed write never leaves a partial file."""
from __future__ import annotations

import os
import signal
import tempfile
import threading


def _block_signals() -> object:
    """Blocks SIGINT/SIGTERM on this thread (returns the old mask), so that no handler can run
    between the temporary file's creation and the moment its name is known to the cleanup code."""
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "pthread_sigmask"):
        return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    return None


def _restore_signals(mask: object) -> None:
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending signal's handler runs now


def atomic_write(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename.

    A failure, Ctrl-C or SIGTERM (with the CLI's handler) leaves no partial and no temporary file.
    With ``overwrite=False`` an existing ``path`` raises :class:`FileExistsError` (checked atomically
    with a hard link where the OS allows it). OS errors name ``path``, not the temporary file.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        mask = _block_signals()
        try:
            fd, tmp = tempfile.mkstemp(prefix=".splatcodec-", suffix=".tmp", dir=directory)
        finally:
            _restore_signals(mask)
        # mkstemp creates the file 0600; give it the mode a plain open() would (0666 less the umask).
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if path exists: no race with a concurrent writer
            except (AttributeError, NotImplementedError, PermissionError):  # pragma: no cover - no hard links
                if os.path.exists(path):
                    raise FileExistsError(path) from None
                os.replace(tmp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        # "No such file or directory: '/out/.splatcodec-x1y2.tmp'" would send the user looking for a
        # file they never named.
        raise type(exc)(exc.errno, exc.strerror, path) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
