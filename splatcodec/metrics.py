"""Image quality metrics."""
from __future__ import annotations

import numpy as np

from .errors import InvalidInputError


def psnr(a: np.ndarray, b: np.ndarray, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB between two images of the same shape.

    ``data_range`` defaults to 255 for uint8 inputs and 1.0 otherwise. Identical images give ``inf``.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise InvalidInputError(f"psnr needs images of the same shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise InvalidInputError("psnr of an empty image is undefined")
    if data_range is None:
        data_range = 255.0 if (a.dtype == np.uint8 and b.dtype == np.uint8) else 1.0
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if not np.isfinite(mse):
        raise InvalidInputError("psnr got non-finite pixel values")
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(data_range * data_range / mse))
