"""Decoding Gaussians to pixels at any resolution."""
from __future__ import annotations

import numpy as np

from . import _native, backends
from .errors import InvalidInputError
from .limits import DEFAULT_MAX_PIXELS, Limits
from .splats import Splats
from .validation import check_int, check_number


def output_size(fitted_width: int, fitted_height: int, width: int | None = None, height: int | None = None,
                scale: float | None = None) -> tuple[int, int]:
    """Output (width, height): as given, derived from the one given keeping the aspect ratio, or the
    fitted size times ``scale``; the fitted size when nothing is given."""
    if scale is not None:
        if width is not None or height is not None:
            raise InvalidInputError("give either scale or width/height, not both")
        scale = check_number("scale", scale, positive=True, maximum=1e4)
        return max(1, round(fitted_width * scale)), max(1, round(fitted_height * scale))
    width = None if width is None else check_int("width", width, minimum=1)
    height = None if height is None else check_int("height", height, minimum=1)
    if width is None and height is None:
        return fitted_width, fitted_height
    if width is None:
        width = max(1, round(fitted_width * height / fitted_height))
    if height is None:
        height = max(1, round(fitted_height * width / fitted_width))
    return width, height


def _prepare(splats: Splats, width: int | None, height: int | None, threads: int,
             max_pixels: int | None, device: str) -> tuple[np.ndarray, int, int, int, dict]:
    _native.resolve_device(device)  # an unknown or unavailable device fails before anything else
    if not isinstance(splats, Splats):
        raise InvalidInputError(f"expected Splats, got {type(splats).__name__}")
    width, height = output_size(splats.width, splats.height, width, height)
    limits = Limits.for_decode(max_pixels=max_pixels, gaussian_limit=None)
    limits.check_pixels(width, height, "output")
    threads = _native.check_threads(threads)
    return scaled_params(splats, width, height), width, height, threads, limits.native_budget()


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
                 threads: int = 0, max_pixels: int | None = DEFAULT_MAX_PIXELS, device: str = "cpu") -> np.ndarray:
    """Renders to a float32 (height, width, C) array in image units / 255, not clipped.

    ``width``/``height`` default to the fitted size; give one to keep the aspect ratio, or both.
    The limits of :mod:`splatcodec.limits` apply (output pixels, Gaussian-tile entries and render
    work, checked before anything large is allocated: :class:`LimitExceededError`);
    ``max_pixels=None`` lifts them. Ctrl-C or a :class:`~splatcodec.CancelToken` stops a long render.
    ``device``: "cpu" (default), "cuda" (the GPU, :class:`~splatcodec.DeviceUnavailableError` without
    one; ``threads`` is then ignored) or "auto" (the GPU when usable); see docs/cuda.md.
    """
    params, width, height, threads, budget = _prepare(splats, width, height, threads, max_pixels, device)
    return backends.render_packed(params, width, height, threads, device=device, **budget)


def render(splats: Splats, width: int | None = None, height: int | None = None, *,
           threads: int = 0, max_pixels: int | None = DEFAULT_MAX_PIXELS, device: str = "cpu") -> np.ndarray:
    """Renders to a uint8 (height, width, C) image: :func:`to_uint8` of :func:`render_float`,
    converted as each value is written, in the core or on the GPU (the only large allocation is the
    uint8 output). ``device`` as for :func:`render_float`."""
    params, width, height, threads, budget = _prepare(splats, width, height, threads, max_pixels, device)
    return backends.render_packed(params, width, height, threads, uint8=True, device=device, **budget)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] floats to uint8 with rounding; NaN maps to 0 (what :func:`render` does natively)."""
    return np.clip(np.nan_to_num(image * 255.0 + 0.5, nan=0.0), 0, 255).astype(np.uint8)
