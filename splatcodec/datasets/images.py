"""Turning a sample's image bytes into pixels for the encoder, with img2dataset-style downscaling."""
from __future__ import annotations

import io
import math

import numpy as np

from ..errors import InvalidInputError, LimitExceededError

#: Extensions (lower case) taken as a sample's image, in order of preference.
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif", "ppm", "pgm", "pnm", "tga")


def image_entry(sample: dict) -> str | None:
    """The name of the sample's image entry (its extension as stored), or None if it has none."""
    by_lower = {str(k).lower(): k for k in sample if not str(k).startswith("__")}
    for ext in IMAGE_EXTENSIONS:
        if ext in by_lower:
            return by_lower[ext]
    return None


def fit_longest(width: int, height: int, longest: int | None) -> tuple[int, int]:
    """(width, height) scaled down so the longer side is ``longest`` (never up; None: unchanged)."""
    if longest is None or max(width, height) <= longest:
        return width, height
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def decode_image(data: bytes, *, resize_longest: int | None = None, max_pixels: int | None = None) -> np.ndarray:
    """Decode image bytes (see :func:`decode_image_sized`)."""
    return decode_image_sized(data, resize_longest=resize_longest, max_pixels=max_pixels)[0]


def decode_image_sized(data: bytes, *, resize_longest: int | None = None,
                       max_pixels: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """(pixels, (width, height) of the image before any resize, after EXIF rotation).

    Decode image bytes to uint8 (H, W) or (H, W, 3), EXIF-rotated, alpha composited on white.

    ``max_pixels`` refuses inputs whose header declares more pixels (checked before any pixel is
    decoded: a tiny file may claim a huge canvas); ``resize_longest`` downscales (Lanczos) so the longer
    side is at most that many pixels; JPEGs are first decoded at a reduced DCT scale that still covers
    the target size, which makes large photos cheap. Raises :class:`InvalidInputError` /
    :class:`LimitExceededError`.
    """
    from PIL import Image, ImageOps

    from ..image_io import pil_to_array

    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            if max_pixels is not None and width * height > max_pixels:
                raise LimitExceededError(f"image of {width}x{height} pixels exceeds the limit of {max_pixels}")
            target = fit_longest(width, height, resize_longest)
            if target != (width, height) and im.format == "JPEG":
                im.draft(im.mode if im.mode in ("L", "RGB") else "RGB",
                         (math.ceil(target[0]), math.ceil(target[1])))
            # EXIF orientations 5-8 turn the image by 90 degrees
            upright = (height, width) if im.getexif().get(0x0112) in (5, 6, 7, 8) else (width, height)
            im = ImageOps.exif_transpose(im)
            if resize_longest is not None:
                size = fit_longest(im.width, im.height, resize_longest)
                if size != im.size:
                    if im.mode not in ("L", "RGB", "RGBA", "LA"):
                        im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
                    im = im.resize(size, Image.Resampling.LANCZOS)
            return pil_to_array(im), upright
    except (InvalidInputError, LimitExceededError):
        raise
    except Image.DecompressionBombError as exc:
        raise LimitExceededError(str(exc)) from None
    except Image.UnidentifiedImageError:
        raise InvalidInputError("not an image in a format Pillow reads") from None
    except (OSError, SyntaxError, ValueError, TypeError, EOFError, Image.UnidentifiedImageError) as exc:
        raise InvalidInputError(f"cannot decode image: {exc}") from None
