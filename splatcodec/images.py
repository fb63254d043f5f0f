"""Turning user images (numpy arrays, PIL images) into the float32 HxWxC arrays the core works on."""
from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InvalidInputError, LimitExceededError

#: Default largest image (pixels) accepted for fitting or rendering, like Pillow's MAX_IMAGE_PIXELS.
MAX_IMAGE_PIXELS = 89_478_485


def to_float_image(image: Any, *, max_pixels: int | None = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Returns ``image`` as a C-contiguous float32 (H, W, C) array in [0, 1], C in {1, 3}.

    Accepts HxW or HxWxC arrays (uint8 in 0..255, uint16 in 0..65535, float in [0, 1]) or a PIL
    image (converted per its mode: L/I;16 -> 1 channel, RGB -> 3; palette, CMYK and the like -> RGB).
    4-channel (RGBA) input is refused: the model has no alpha. Raises InvalidInputError.
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        image = _pil_to_array(image)
    if not isinstance(image, np.ndarray):
        raise InvalidInputError(f"expected a numpy array or PIL image, got {type(image).__name__}")
    array = image
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise InvalidInputError(f"image must be HxW or HxWxC, got shape {image.shape}")
    height, width, channels = array.shape
    if height == 0 or width == 0:
        raise InvalidInputError(f"image is empty (shape {image.shape})")
    if channels == 4:
        raise InvalidInputError("RGBA images are not supported: the model has no alpha channel; "
                                "composite onto a background or drop alpha first")
    if channels not in (1, 3):
        raise InvalidInputError(f"image must have 1 or 3 channels, got {channels}")
    if max_pixels is not None and height * width > max_pixels:
        raise LimitExceededError(f"image of {width}x{height} pixels exceeds the limit of {max_pixels} "
                                 "pixels (raise max_pixels to allow it)")
    if array.dtype == np.uint8:
        out = array.astype(np.float32) / np.float32(255.0)
    elif array.dtype == np.uint16:
        out = array.astype(np.float32) / np.float32(65535.0)
    elif array.dtype in (np.float16, np.float32, np.float64):
        out = array.astype(np.float32)
        if not np.all(np.isfinite(out)):
            raise InvalidInputError("image contains NaN or infinite values")
    elif array.dtype == np.bool_:
        out = array.astype(np.float32)
    else:
        raise InvalidInputError(f"unsupported image dtype {array.dtype}; use uint8, uint16 or float")
    return np.ascontiguousarray(out)


def _pil_to_array(image: Any) -> np.ndarray:
    mode = image.mode
    if mode in ("L", "RGB"):
        return np.asarray(image)
    if mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(image, dtype=np.uint16)
    if mode in ("1",):
        return np.asarray(image.convert("L"))
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        raise InvalidInputError(f"PIL image mode {mode} has alpha, which the model cannot store; "
                                "convert('RGB') or composite it first")
    return np.asarray(image.convert("RGB"))
