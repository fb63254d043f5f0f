"""Decoding Gaussians to pixels at any resolution."""
from __future__ import annotations

import numpy as np

from . import _native, backends
from .errors import InvalidInputError, LimitExceededError
from .images import MAX_IMAGE_PIXELS
from .splats import Splats


def output_size(splats: Splats, width: int | None, height: int | None) -> tuple[int, int]:
    """Output (width, height): as given, or derived from the one given keeping the aspect ratio."""
    if width is None and height is None:
        return splats.width, splats.height
    for name, value in (("width", width), ("height", height)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0):
            raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    if width is None:
        width = max(1, round(splats.width * int(height) / splats.height))
    if height is None:
        height = max(1, round(splats.height * int(width) / splats.width))
    return int(width), int(height)


def scaled_params(splats: Splats, width: int, height: int) -> np.ndarray:
    """Packed parameters mapped to a width x height canvas.

    Scaling by S = diag(sx, sy) maps mu -> S mu and Sigma -> S Sigma S, whose Cholesky factor is S L
    (still lower triangular): l11 -> sx l11, l21 -> sy l21, l22 -> sy l22.
    """
    params = splats.packed()
    sx, sy = width / splats.width, height / splats.height
    if sx != 1.0 or sy != 1.0:
        params[:, 0] *= sx
        params[:, 1] *= sy
        params[:, 2] *= sx
        params[:, 3] *= sy
        params[:, 4] *= sy
    return params


def render_float(splats: Splats, width: int | None = None, height: int | None = None, *,
                 threads: int = 0, max_pixels: int | None = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Renders to a float32 (height, width, C) array in image units / 255, not clipped.

    ``width``/``height`` default to the fitted size; give one to keep the aspect ratio, or both.
    """
    if not isinstance(splats, Splats):
        raise InvalidInputError(f"expected Splats, got {type(splats).__name__}")
    width, height = output_size(splats, width, height)
    if max_pixels is not None and width * height > max_pixels:
        raise LimitExceededError(f"output of {width}x{height} exceeds the limit of {max_pixels} pixels")
    threads = _native.check_threads(threads)
    return backends.render_packed(scaled_params(splats, width, height), width, height, threads)


def render(splats: Splats, width: int | None = None, height: int | None = None, *,
           threads: int = 0, max_pixels: int | None = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Renders to a uint8 (height, width, C) image (values rounded and clipped to 0..255)."""
    image = render_float(splats, width, height, threads=threads, max_pixels=max_pixels)
    return to_uint8(image)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] floats to uint8 with rounding; NaN maps to 0."""
    return np.clip(np.nan_to_num(image * 255.0 + 0.5, nan=0.0), 0, 255).astype(np.uint8)
