"""The CLI's input and output policy: bounded reads, safe targets, signals.

* ``.gsplat`` inputs (files or stdin) are read header first: a 1.0 file's 40-byte header is checked
  (signature, CRC, size and count limits), then at most the length it declares is read, and one more
  byte proves there is nothing after it. A compact 1.1 file declares no length: it is read to its
  end, at most :func:`compact_bytes_cap` bytes. ``splatcodec info /dev/zero`` or
  ``yes | splatcodec decode -`` end at once with a format error instead of reading forever.
* Image inputs on stdin are identified from their first 64 KiB before the rest is read; the rest is
  bounded by what the declared size can need (:func:`image_bytes_cap`).
* Output targets: an existing target is replaced only with ``--force`` and only if it is a regular
  file. Symbolic links, character or block devices, FIFOs and sockets are refused, with or without
  ``--force`` (replacing ``/dev/null`` or a link's name is never what the user meant; write to the
  link's target path or use ``-o -`` for stdout).
* Signals: SIGINT exits 130 and SIGTERM 143, both after the running native call has stopped and any
  temporary output file has been removed (see :mod:`splatcodec.cancellation`).
"""
from __future__ import annotations

import io
import os
import signal
import stat
import sys
from typing import Any, BinaryIO

from .errors import FormatError, InvalidInputError, LimitExceededError, SplatcodecError
from .limits import Limits

#: Bytes of an image read from stdin before Pillow must recognise it.
IDENTIFY_BYTES = 64 * 1024


class Terminated(BaseException):
    """Raised in the main thread by the CLI's SIGTERM handler (a BaseException, like
    KeyboardInterrupt, so that ``except Exception`` blocks do not swallow it)."""


def install_sigterm_handler() -> None:
    """Turns SIGTERM into :class:`Terminated` on the main thread, so cleanup code runs."""
    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)


def ignore_exit_signals() -> None:
    """Ignores SIGINT and SIGTERM from now on (the CLI calls it once its work is over)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _stdin() -> BinaryIO:
    return sys.stdin.buffer


def _read_exactly(stream: BinaryIO, count: int) -> bytes:
    chunks = []
    while count > 0:
        chunk = stream.read(min(count, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def compact_bytes_cap(limits: Limits) -> int | None:
    """Most bytes read of a compact (1.1) file, which declares no length: the file-size allowance
    plus the bytes-per-Gaussian cap times the Gaussian limit (None: no cap)."""
    from .limits import BYTES_ALLOWANCE

    if limits.max_gaussians is None or limits.max_bytes_per_gaussian is None:
        return None
    return int(BYTES_ALLOWANCE + limits.max_bytes_per_gaussian * limits.max_gaussians)


def read_gsplat(src: str, limits: Limits) -> bytes:
    """The bytes of a ``.gsplat`` file or stdin (``-``), read header first (see the module doc)."""
    if src == "-":
        return _read_gsplat_stream(_stdin(), "stdin", limits)
    with open(src, "rb") as fh:
        return _read_gsplat_stream(fh, src, limits)


def _read_gsplat_stream(stream: BinaryIO, name: str, limits: Limits) -> bytes:
    from .codec.compact import is_compact
    from .codec.container import HEADER_SIZE, read_header

    head = _read_exactly(stream, 3)
    if is_compact(head):
        cap = compact_bytes_cap(limits)
        rest = stream.read() if cap is None else _read_exactly(stream, cap - len(head) + 1)
        if cap is not None and len(head) + len(rest) > cap:
            raise LimitExceededError(f"{name}: a compact .gsplat file longer than {cap} bytes")
        return head + rest
    head += _read_exactly(stream, HEADER_SIZE - len(head))
    try:
        header = read_header(head, limits)
    except FormatError as exc:
        raise FormatError(f"{name}: {exc}") from None
    body = _read_exactly(stream, header.total_length - len(head))
    data = head + body
    if len(data) < header.total_length:
        raise FormatError(f"{name}: .gsplat file truncated: header says {header.total_length} bytes, "
                          f"got {len(data)}")
    if stream.read(1):
        raise FormatError(f"{name}: .gsplat file has trailing bytes after the {header.total_length} "
                          "its header declares")
    return data


def image_bytes_cap(width: int, height: int) -> int:
    """Most bytes an image file of this size may take: 8 bytes per pixel (16-bit RGBA stored raw)
    plus 64 MiB for metadata and container overhead."""
    return 8 * width * height + (64 << 20)


def read_image_input(src: str, max_pixels: int | None) -> tuple[Any, dict]:
    """``read_image`` of a path, or of stdin identified from its first bytes and read bounded."""
    from .image_io import read_image

    if src != "-":
        return read_image(src, max_pixels=max_pixels)
    stream = _stdin()
    head = _read_exactly(stream, IDENTIFY_BYTES)
    try:
        from PIL import Image

        with Image.open(io.BytesIO(head)) as im:
            width, height = im.size
    except Exception:  # Pillow raises many types for garbage; all mean "not an image it knows"
        raise InvalidInputError("stdin: not an image file Pillow can identify") from None
    Limits(max_pixels=max_pixels).check_pixels(width, height, "stdin image")
    cap = image_bytes_cap(width, height)
    rest = _read_exactly(stream, cap - len(head) + 1)
    if len(head) + len(rest) > cap:
        raise LimitExceededError(f"stdin: a {width}x{height} image file should not exceed {cap} bytes")
    return read_image(io.BytesIO(head + rest), max_pixels=max_pixels)


def check_output_target(path: str, force: bool) -> None:
    """Refuses a target the CLI must not replace (see the module doc)."""
    if path == "-":
        return
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise SplatcodecError(f"{path}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise SplatcodecError(f"{path} is a symbolic link: refusing to replace it (give the path it points "
                              "to, or - for stdout)")
    if stat.S_ISDIR(st.st_mode):
        raise SplatcodecError(f"{path} is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise SplatcodecError(f"{path} is not a regular file (a device, FIFO or socket): refusing to "
                              "replace it; use - to write to stdout")
    if not force:
        raise SplatcodecError(f"{path} exists (use --force to overwrite)")
