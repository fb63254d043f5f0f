"""The one input policy: how every entry (fit, fit_batch, encode, the CLI, plugins) reads an image.

:func:`normalize` checks and converts; :func:`to_float_image` (fitting) and :func:`to_uint8_image`
(encoding, 8-bit storage) only change the sample type of its result, so they accept and refuse exactly
the same inputs (tests/test_inputs.py says so).

Arrays: HxW or HxWxC with C = 1 (gray) or 3 (RGB). 4 channels are refused (an array does not say
whether its alpha is straight or premultiplied: composite it first). dtypes: uint8 (0..255), uint16
(0..65535), bool (False/True = black/white), float16/32/64 (image units, [0, 1] is black..white; any
finite value is accepted because fitting a residual is a real use; encoding clips to [0, 1] when it
quantises to 8 bits, with a warning if that changes a value by more than half a step). NaN and
infinities, other dtypes, empty images and images over the pixel limit are refused.

PIL images: the EXIF orientation is applied first (as a viewer shows the image; the CLI reads files
the same way), then the mode decides:

========================  ===================================================================
Pillow mode               Becomes
========================  ===================================================================
``L``, ``1``              gray (``1``: 0 / 255)
``RGB``                   RGB
``P`` (palette)           RGB via the palette (gray if every entry is gray); palette
                          transparency is composited over ``background`` (default white)
``LA``, ``La``, ``PA``    gray (``PA``: RGB) composited over ``background`` using alpha
``RGBA``, ``RGBa``        RGB composited over ``background`` using alpha
``I;16*``, ``I``          16-bit gray (uint16; ``I`` values outside 0..65535 are refused)
``CMYK``, ``YCbCr``,      RGB through Pillow's conversion (CMYK naively, without colour management)
``LAB``, ``HSV``
``F`` (float)             refused: the intended range is ambiguous
========================  ===================================================================
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .limits import DEFAULT_MAX_PIXELS, Limits

#: Kept for compatibility: the default pixel limit of every input (splatcodec.limits).
MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS
WHITE = (255, 255, 255)
_FLOATS = (np.float16, np.float32, np.float64)


def normalize(image: Any, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
              background: tuple[int, int, int] = WHITE) -> np.ndarray:
    """``image`` checked against the policy above, as an (H, W, C) uint8, uint16 or float32 array
    (C in {1, 3}; bool becomes uint8). Raises InvalidInputError / LimitExceededError."""
    if _is_pil(image):
        image = pil_to_array(image, background=background)
    if not isinstance(image, np.ndarray):
        raise InvalidInputError(f"expected a numpy array or PIL image, got {type(image).__name__}")
    array = image[:, :, None] if image.ndim == 2 else image
    if array.ndim != 3:
        raise InvalidInputError(f"image must be HxW or HxWxC, got shape {image.shape}")
    height, width, channels = array.shape
    if height == 0 or width == 0:
        raise InvalidInputError(f"image is empty (shape {image.shape})")
    if channels == 4:
        raise InvalidInputError("RGBA arrays are not supported: the model has no alpha channel; "
                                "composite onto a background or drop alpha first")
    if channels not in (1, 3):
        raise InvalidInputError(f"image must have 1 or 3 channels, got {channels}")
    Limits(max_pixels=max_pixels).check_pixels(width, height)
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if array.dtype in (np.uint8, np.uint16):
        return np.ascontiguousarray(array)
    if array.dtype in _FLOATS:
        out = np.ascontiguousarray(array, dtype=np.float32)
        if not np.isfinite(out).all():
            raise InvalidInputError("image contains NaN or infinite values")
        return out
    raise InvalidInputError(f"unsupported image dtype {array.dtype}; use uint8, uint16, bool or float")


def to_float_image(image: Any, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """:func:`normalize`, as C-contiguous float32 (H, W, C) in image units (uint8 / 255, uint16 / 65535)."""
    array = normalize(image, max_pixels=max_pixels)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    if array.dtype == np.uint16:
        return array.astype(np.float32) / np.float32(65535.0)
    return array


def to_uint8_image(image: Any, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                   background: tuple[int, int, int] = WHITE) -> np.ndarray:
    """:func:`normalize`, as uint8 (H, W) gray or (H, W, 3) RGB: uint16 rounded ``v / 257``, floats
    clipped to [0, 1] and rounded ``v * 255``."""
    array = normalize(image, max_pixels=max_pixels, background=background)
    if array.dtype == np.uint16:
        array = np.rint(array / 257.0).astype(np.uint8)
    elif array.dtype == np.float32:
        low, high = float(array.min()), float(array.max())
        if low < -0.5 / 255 or high > 1 + 0.5 / 255:
            warnings.warn(f"float image values span [{low:.3g}, {high:.3g}]; encoding clips them to [0, 1] "
                          "(8-bit storage)", RuntimeWarning, stacklevel=3)
        array = np.rint(np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    return array[:, :, 0] if array.shape[2] == 1 else array


def _is_pil(image: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return False
    return isinstance(image, Image.Image)


def pil_to_array(im: Any, *, background: tuple[int, int, int] = WHITE) -> np.ndarray:
    """A PIL image as uint8 (H, W) gray, (H, W, 3) RGB or uint16 (H, W) gray, following the table
    above (EXIF orientation applied)."""
    from PIL import Image, ImageOps

    if im.getexif().get(0x0112, 1) != 1:  # orientation tag: transpose as a viewer would
        im = ImageOps.exif_transpose(im)
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
        # Pillow cannot convert La (premultiplied) to RGBA directly: go through LA.
        out = _composite((im.convert("LA") if mode == "La" else im).convert("RGBA"), background)
        return np.asarray(out if mode == "PA" else out.convert("L"), dtype=np.uint8)
    if mode in ("RGBA", "RGBa"):
        return np.asarray(_composite(im.convert("RGBA"), background), dtype=np.uint8)
    if mode.startswith("I"):
        values = np.asarray(im)
        if values.size and (int(values.min()) < 0 or int(values.max()) > 65535):
            raise InvalidInputError(f"mode {mode} image has values outside 0..65535 (not a 16-bit image)")
        return values.astype(np.uint16)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _composite(rgba: Any, background: tuple[int, int, int]) -> Any:
    from PIL import Image

    base = Image.new("RGBA", rgba.size, tuple(background) + (255,))
    return Image.alpha_composite(base, rgba).convert("RGB")
