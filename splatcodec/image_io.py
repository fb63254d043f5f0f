"""Reading and writing images with Pillow, with every mode conversion spelled out.

What happens to each input (the codec stores 1-channel gray or 3-channel RGB, 8 bits per sample):

========================  ===================================================================
Pillow mode               Becomes
========================  ===================================================================
``L``                     gray, unchanged
``1``                     gray (0 / 255)
``RGB``                   RGB, unchanged
``P`` (palette)           RGB via the palette (gray ``L`` if every palette entry is gray);
                          palette transparency is treated as alpha (below)
``LA``, ``La``, ``PA``    gray/RGB composited over ``background`` (default white) using alpha
``RGBA``, ``RGBa``        RGB composited over ``background`` using alpha
``I;16*``, ``I`` (16-bit) gray, rounded ``v / 257`` (full 16-bit range to 0..255); ``I`` values
                          outside 0..65535 are clipped
``CMYK``, ``YCbCr``,      RGB through Pillow's conversion (CMYK is converted naively, without a
``LAB``, ``HSV``          colour-management step)
``F`` (float)             refused: the intended range is ambiguous
========================  ===================================================================

The EXIF orientation tag is applied first (the pixels are rotated/flipped, as a viewer would show
them). Multi-frame files (GIF, TIFF, WebP animations) contribute their first frame. An embedded
ICC profile is returned as metadata (the ``icc`` key) so it can be carried in the ``.gsplat`` file
and written back on decode; pixel values are not colour-managed.

Images are checked against a pixel limit before their pixels are decoded.
"""
from __future__ import annotations

import io
import os
from typing import BinaryIO, Union

import numpy as np

from .errors import InvalidInputError, LimitExceededError
from .codec.container import DEFAULT_MAX_PIXELS

try:
    from PIL import Image, ImageOps
except ImportError as exc:  # pragma: no cover
    raise ImportError("splatcodec.image_io needs Pillow: pip install pillow") from exc

PathOrFile = Union[str, "os.PathLike[str]", BinaryIO]
WHITE = (255, 255, 255)


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
            im = ImageOps.exif_transpose(im)
            pixels = pil_to_array(im, background=background)
    except (InvalidInputError, LimitExceededError):
        raise
    except Image.DecompressionBombError as exc:
        raise LimitExceededError(str(exc)) from None
    except FileNotFoundError:
        raise InvalidInputError(f"no such file: {source}") from None
    except (OSError, SyntaxError, ValueError, Image.UnidentifiedImageError) as exc:
        raise InvalidInputError(f"cannot read image {getattr(source, 'name', source)}: {exc}") from None
    metadata: dict[str, bytes | str] = {}
    if icc:
        metadata["icc"] = bytes(icc)
    return pixels, metadata


def pil_to_array(im: "Image.Image", *, background: tuple[int, int, int] = WHITE) -> np.ndarray:
    """Convert a PIL image to uint8 gray (H, W) or RGB (H, W, 3) following the table above."""
    mode = im.mode
    if mode == "F":
        raise InvalidInputError("floating-point (mode F) images are not supported: their range is ambiguous")
    if mode == "P":
        has_alpha = "transparency" in im.info or im.palette is not None and im.palette.mode == "RGBA"
        rgb = im.convert("RGBA" if has_alpha else "RGB")
        palette = np.asarray(im.convert("RGB"))
        gray = bool(np.all(palette[..., 0] == palette[..., 1]) and np.all(palette[..., 1] == palette[..., 2]))
        if has_alpha:
            rgb = _composite(rgb, background)
        return np.asarray(rgb.convert("L") if gray else rgb, dtype=np.uint8)
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"), dtype=np.uint8)
    if mode in ("LA", "La", "PA"):
        rgba = im.convert("RGBA")
        out = _composite(rgba, background)
        if mode != "PA":
            return np.asarray(out.convert("L"), dtype=np.uint8)
        return np.asarray(out, dtype=np.uint8)
    if mode in ("RGBA", "RGBa"):
        return np.asarray(_composite(im.convert("RGBA"), background), dtype=np.uint8)
    if mode.startswith("I"):
        values = np.asarray(im).astype(np.float64)
        if mode == "I" and values.max(initial=0) <= 255 and values.min(initial=0) >= 0 and \
                im.info.get("bits", 16) == 8:  # pragma: no cover - rare 8-bit data stored as I
            return values.astype(np.uint8)
        return np.rint(np.clip(values, 0, 65535) / 257.0).astype(np.uint8)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _composite(rgba: "Image.Image", background: tuple[int, int, int]) -> "Image.Image":
    base = Image.new("RGBA", rgba.size, tuple(background) + (255,))
    return Image.alpha_composite(base, rgba).convert("RGB")


def as_array(image: object) -> np.ndarray:
    """Normalize an in-memory image (numpy array or PIL image) to uint8 (H, W) or (H, W, 3).

    Arrays: uint8 as is; uint16 scaled by 1/257; float arrays must lie in [0, 1] (scaled by 255 and
    rounded). (H, W, 1) is gray; 4 channels are refused (composite the alpha first).
    """
    if isinstance(image, Image.Image):
        return pil_to_array(image)
    try:
        arr = np.asarray(image)
    except Exception as exc:
        raise InvalidInputError(f"cannot interpret {type(image).__name__} as an image: {exc}") from None
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise InvalidInputError(f"image must be (H, W) gray or (H, W, 3) RGB, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInputError(f"image is empty: shape {arr.shape}")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.uint16:
        return np.rint(arr / 257.0).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InvalidInputError("image contains NaN or infinite values")
        if arr.min() < 0 or arr.max() > 1:
            raise InvalidInputError("float images must lie in [0, 1]")
        return np.rint(arr * 255.0).astype(np.uint8)
    raise InvalidInputError(f"unsupported image dtype {arr.dtype}")


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
