"""Reading and writing image files with Pillow.

What happens to each pixel format is the one input policy of :mod:`splatcodec.images` (its table);
reading a file adds only the file-level steps: the pixel limit is checked from the header before the
pixels are decoded, multi-frame files (GIF, TIFF, WebP animations) contribute their first frame, and
an embedded ICC profile is returned as metadata (the ``icc`` key) so it can be carried in the
``.gsplat`` file and written back on decode; pixel values are not colour-managed. Any failure of
Pillow to decode a file (whatever exception its plugin raises) is an InvalidInputError.
"""
from __future__ import annotations

import io
import os
from typing import BinaryIO, Union

import numpy as np

from .errors import InvalidInputError, LimitExceededError, SplatcodecError
from .images import WHITE, pil_to_array, to_uint8_image
from .limits import DEFAULT_MAX_PIXELS

__all__ = ["read_image", "write_image", "as_array", "pil_to_array"]

try:
    from PIL import Image
except ImportError as exc:  # pragma: no cover
    raise ImportError("splatcodec.image_io needs Pillow: pip install pillow") from exc

PathOrFile = Union[str, "os.PathLike[str]", BinaryIO]


def read_image(source: PathOrFile | bytes, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
               background: tuple[int, int, int] = WHITE) -> tuple[np.ndarray, dict[str, bytes | str]]:
    """Read an image file into a uint8 array (H, W) for gray or (H, W, 3) for colour.

    Returns ``(pixels, metadata)``; metadata holds the ICC profile under ``"icc"`` if the file has one.
    Raises :class:`InvalidInputError` for unreadable files and :class:`LimitExceededError` when the
    image has more than ``max_pixels`` pixels (``None``: no limit).
    """
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(bytes(source))
    try:
        with Image.open(source) as im:
            if max_pixels is not None and im.size[0] * im.size[1] > max_pixels:
                raise LimitExceededError(f"image of {im.size[0]}x{im.size[1]} pixels exceeds the limit of "
                                         f"{max_pixels} pixels")
            im.seek(0)
            icc = im.info.get("icc_profile")
            pixels = to_uint8_image(im, max_pixels=None, background=background)  # limit checked above
    except (SplatcodecError, MemoryError):
        raise
    except Image.DecompressionBombError as exc:
        raise LimitExceededError(str(exc)) from None
    except FileNotFoundError:
        raise InvalidInputError(f"no such file: {source}") from None
    except Exception as exc:  # Pillow's plugins raise OSError, SyntaxError, ValueError, TypeError, ...
        raise InvalidInputError(f"cannot read image {getattr(source, 'name', source)}: "
                                f"{type(exc).__name__}: {exc}") from None
    metadata: dict[str, bytes | str] = {}
    if icc:
        metadata["icc"] = bytes(icc)
    return pixels, metadata


def as_array(image: object) -> np.ndarray:
    """An in-memory image (numpy array or PIL image) as uint8 (H, W) or (H, W, 3): the one input
    policy of :mod:`splatcodec.images` (:func:`~splatcodec.images.to_uint8_image`, no pixel limit)."""
    return to_uint8_image(image, max_pixels=None)


def write_image(pixels: np.ndarray, target: PathOrFile, *, format: str | None = None,
                metadata: dict[str, bytes | str] | None = None) -> None:
    """Write uint8 pixels with Pillow; the format follows the file extension unless ``format`` is given."""
    im = Image.fromarray(np.ascontiguousarray(pixels[..., 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels))
    kwargs = {}
    icc = (metadata or {}).get("icc")
    if isinstance(icc, bytes):
        kwargs["icc_profile"] = icc
    try:
        im.save(target, format=format, **kwargs)
    except (KeyError, ValueError) as exc:
        raise InvalidInputError(f"cannot write image {target}: {exc}") from None
