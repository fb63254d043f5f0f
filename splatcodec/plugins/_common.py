"""What the Pillow and imageio plugins share: header peeking, bounded reads, encoder options, errors."""
from __future__ import annotations

from typing import Any, BinaryIO

import numpy as np

from ..codec import bitstream, compact, container
from ..codec.container import Header, Limits
from ..errors import FormatError, InvalidInputError

EXTENSION = ".gsplat"
MIME_TYPE = "image/x-gsplat"
SIGNATURE = container.SIGNATURE
#: Largest compact (1.1) file the plugins read to learn its size: 1.1 is the layout for small images,
#: and its header is only known valid once the CRC at the end of the file checks out.
MAX_COMPACT_BYTES = 1 << 26
#: Keyword arguments of the plugins' save/write that go to :func:`splatcodec.encode`.
ENCODE_OPTIONS = ("quality", "target_bpp", "target_psnr", "num_gaussians", "effort", "levels", "seed",
                  "threads", "max_pixels")
_CHUNK = 1 << 20


class CorruptFileError(FormatError, OSError):
    """A ``.gsplat`` body that cannot be decoded: our :class:`FormatError`, and the ``OSError`` Pillow
    and imageio callers catch for broken image data."""


class TruncatedFileError(CorruptFileError):
    """The file ends before the length its header declares."""


class UnsupportedModeError(InvalidInputError, OSError):
    """An image mode the input policy refuses (``F``): our :class:`InvalidInputError`, and the
    ``OSError`` Pillow raises for "cannot write mode ... as ..."."""


def has_signature(prefix: bytes) -> bool:
    """Whether ``prefix`` starts like a ``.gsplat`` file, 1.0 or compact 1.1 (nothing is parsed)."""
    prefix = bytes(prefix[:len(SIGNATURE)])
    return prefix == SIGNATURE or compact.is_compact(prefix)


def read_header(fp: BinaryIO) -> Header:
    """The header of the ``.gsplat`` file at ``fp``'s position (FormatError when it is not one).

    A 1.0 file's fixed header has its own CRC, so only those bytes are read. A compact 1.1 file (the
    small-image layout) is read whole, up to :data:`MAX_COMPACT_BYTES`, and checked by the format's
    own parser: its header is covered only by the CRC at the end. Nothing is range-decoded either way.
    """
    prefix = fp.read(container.HEADER_SIZE)
    if not compact.is_compact(prefix[:3]):
        return container.read_header(prefix)
    chunks, size = [prefix], len(prefix)
    while size <= MAX_COMPACT_BYTES:
        chunk = fp.read(min(_CHUNK, MAX_COMPACT_BYTES + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > MAX_COMPACT_BYTES:
        raise FormatError(f"compact .gsplat file larger than {MAX_COMPACT_BYTES} bytes")
    return bitstream.parse(b"".join(chunks), Limits(max_pixels=None, max_gaussians=None)).header


def read_body(fp: BinaryIO, header: Header, start: int) -> bytes:
    """The whole file (header included) from offset ``start``: exactly the length the header declares,
    read in chunks, so a lying header costs no more memory than the bytes really there."""
    fp.seek(start)
    chunks, remaining = [], header.total_length
    while remaining > 0:
        chunk = fp.read(min(_CHUNK, remaining))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    data = b"".join(chunks)
    if remaining > 0:
        raise TruncatedFileError(f".gsplat file is truncated: {len(data)} of the {header.total_length} bytes "
                                 "its header declares")
    return data


def encode_options(options: dict[str, Any]) -> dict[str, Any]:
    """The :data:`ENCODE_OPTIONS` present (and not None) in ``options``."""
    return {name: options[name] for name in ENCODE_OPTIONS if options.get(name) is not None}


def pil_for_encoding(im: Any) -> tuple[np.ndarray, dict[str, bytes | str]]:
    """A PIL image as the uint8 pixels and metadata :func:`splatcodec.encode` takes.

    The package's one input policy applies (:mod:`splatcodec.images`, as for ``encode(PIL image)``
    and the CLI): EXIF orientation first; ``1`` -> gray, palette -> RGB or gray, 16-bit -> ``round(v /
    257)``, CMYK/YCbCr/LAB/HSV -> RGB; alpha (``RGBA``, ``LA``, ``PA``, palette transparency)
    composited over white. A mode it refuses (``F``) raises :class:`UnsupportedModeError`. The ICC
    profile, if any, travels in the file's metadata.
    """
    from ..errors import LimitExceededError
    from ..images import to_uint8_image

    try:
        pixels = to_uint8_image(im)
    except LimitExceededError:
        raise
    except InvalidInputError as exc:
        raise UnsupportedModeError(f"cannot write mode {im.mode} as GSPLAT: {exc}") from None
    icc = im.info.get("icc_profile")
    return pixels, ({"icc": bytes(icc)} if icc else {})
