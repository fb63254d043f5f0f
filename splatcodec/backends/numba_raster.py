"""A numba renderer: decoding where the C++ core is not built (``pip install splatcodec[numba]``).

It computes what ``src_cuda/raster_cpu.cpp`` computes, with the same arithmetic, so its images agree
with the native ones to float rounding:

* the bounding box of each Gaussian comes from ``prepare_gaussian`` (``gaussian_math.h``): done here
  in float64 with numpy, the same formula in the same order; degenerate Gaussians (non-finite
  parameters, ``|l11|`` or ``|l22|`` under 1e-6) and those outside the image are skipped;
* each pixel of the box gets ``colour * exp(-q / 2)`` where ``q <= CUTOFF_SIGMA**2``, with the core's
  bounded exp polynomial, in float32, pixel centres at integer + 0.5;
* each pixel sums its Gaussians in index order, as the core's tile lists do, so without fused
  multiply-adds the result is the baseline core's bit for bit (the x86-64-v3/v4 cores contract some
  multiply-adds into FMAs, which moves the last bit).

Work is split into bands of ``BAND_ROWS`` rows, rendered in parallel (``numba.prange``); each band
lists, in index order, the Gaussians whose box reaches it. The kernel is compiled on first use and
cached on disk (``cache=True``): in the package's ``__pycache__`` when it is writable, else in numba's
per-user cache (``NUMBA_CACHE_DIR`` chooses another place); where no cache directory is writable it is
compiled in every process, with a warning.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import numpy as np

from .._native import _prefer_passive_openmp_waits
from ..errors import InvalidInputError, LimitExceededError

# numba's default threading layer runs on libgomp, the OpenMP runtime the native core uses too: the
# first to load it fixes its wait policy for the process, so make it the passive one (see _native).
_prefer_passive_openmp_waits()
import numba  # noqa: E402

#: Rows per parallel work item (one tile row of the native core).
BAND_ROWS = 16
#: The native core's tile side and work-counting chunk (raster_cpu.cpp), for the same budget verdicts.
TILE = 16
WORK_CHUNK = 16
#: Limits of the native core's check_raster_args (raster_cpu.cpp), kept identical.
MAX_SIDE = 1 << 16
MAX_PIXELS = 1 << 31
MAX_GAUSSIANS = 1 << 28

_F32 = np.float32
_CUTOFF_Q = _F32(9.0)          # kCutoffQ = kCutoffSigma^2
_MIN_CHOL_DIAG = _F32(1e-6)    # kMinCholDiag
_HALF = _F32(0.5)
_MINUS_HALF = _F32(-0.5)
_LOG2E = _F32(1.44269504088896341)
_SIXTEEN = _F32(16.0)
_MINUS_SIX = _F32(-6.0)
# Coefficients of 2^f on [0, 1) from gaussian_math.h's exp_neg_bounded, highest degree first.
_P5, _P4, _P3 = _F32(1.8670309884587645e-3), _F32(9.017238410825553e-3), _F32(5.5799767077003286e-2)
_P2, _P1, _P0 = _F32(2.4016448867009993e-1), _F32(6.931513088958443e-1), _F32(1.0)
# 2^n for n in -9..0: multiplying by an exact power of two is the core's exponent-bit addition.
_POW2 = np.array([2.0 ** n for n in range(-9, 1)], dtype=np.float32)


def _compile(function: Callable[..., Any], **options: Any) -> Callable[..., Any]:
    """``numba.njit(cache=True)``, or without the disk cache where numba finds no writable directory."""
    try:
        return numba.njit(cache=True, **options)(function)
    except RuntimeError as exc:  # "cannot cache function ...: no locator available"
        warnings.warn(f"splatcodec's numba renderer cannot be cached ({exc}); it is compiled in each "
                      "process (set NUMBA_CACHE_DIR to a writable directory)", RuntimeWarning, stacklevel=2)
        return numba.njit(**options)(function)


def _exp_neg_bounded_py(x):  # pragma: no cover - compiled by numba
    x = _MINUS_SIX if x < _MINUS_SIX else x
    t = x * _LOG2E
    n = np.int32(t + _SIXTEEN) - 16  # truncation of a positive number is floor
    f = t - np.float32(n)
    p = _P5
    p = p * f + _P4
    p = p * f + _P3
    p = p * f + _P2
    p = p * f + _P1
    p = p * f + _P0
    return p * _POW2[n + 9]


_exp_neg_bounded = _compile(_exp_neg_bounded_py, inline="always")


def _render_bands_py(mx, my, inv_l11, l21, inv_l22, x0, x1, y0, y1, colors, band_start, band_gaussians,
                     height, out):  # pragma: no cover - compiled by numba
    channels = colors.shape[1]
    for band in numba.prange(band_start.shape[0] - 1):
        row0 = band * BAND_ROWS
        row1 = min(row0 + BAND_ROWS, height) - 1
        for k in range(band_start[band], band_start[band + 1]):
            g = band_gaussians[k]
            gx, gy, a, b, d = mx[g], my[g], inv_l11[g], l21[g], inv_l22[g]
            for y in range(max(y0[g], row0), min(y1[g], row1) + 1):
                dy = (np.float32(y) + _HALF) - gy
                for x in range(x0[g], x1[g] + 1):
                    z1 = ((np.float32(x) + _HALF) - gx) * a
                    z2 = (dy - b * z1) * d
                    q = z1 * z1 + z2 * z2
                    if q <= _CUTOFF_Q:
                        w = _exp_neg_bounded(_MINUS_HALF * q)
                        for c in range(channels):
                            out[y, x, c] += colors[g, c] * w


_render_bands = _compile(_render_bands_py, parallel=True, nogil=True)


def check_args(params: np.ndarray, width: int, height: int) -> int:
    """The native core's argument checks (InvalidInputError); returns the channel count."""
    if not isinstance(params, np.ndarray) or params.ndim != 2 or params.shape[1] not in (6, 8):
        raise InvalidInputError(f"params must be a float32 (N, 6) or (N, 8) array, got "
                                f"{getattr(params, 'shape', type(params).__name__)}")
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE and width * height <= MAX_PIXELS):
        raise InvalidInputError(f"image size {width}x{height} is outside 1..{MAX_SIDE} per side")
    if params.shape[0] > MAX_GAUSSIANS:
        raise InvalidInputError(f"Gaussian count {params.shape[0]} is out of range")
    return params.shape[1] - 5


def prepare(params: np.ndarray, width: int, height: int) -> tuple[np.ndarray, ...]:
    """prepare_gaussian for all rows: (visible indices, mx, my, 1/l11, l21, 1/l22, x0, x1, y0, y1).

    Indices are increasing; the other arrays are indexed by Gaussian (entries of skipped ones unused).
    """
    p = params
    l11, l21, l22 = p[:, 2], p[:, 3], p[:, 4]
    usable = np.isfinite(p).all(axis=1) & (np.abs(l11) >= _MIN_CHOL_DIAG) & (np.abs(l22) >= _MIN_CHOL_DIAG)
    mx, my = p[:, 0].astype(np.float64), p[:, 1].astype(np.float64)
    ex = 3.0 * np.abs(l11.astype(np.float64))
    l21d, l22d = l21.astype(np.float64), l22.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):  # rows with non-finite values are dropped below
        ey = 3.0 * np.sqrt(l21d * l21d + l22d * l22d)
        fx0, fx1 = np.ceil(mx - ex - 0.5), np.floor(mx + ex - 0.5)
        fy0, fy1 = np.ceil(my - ey - 0.5), np.floor(my + ey - 0.5)
        usable &= ~((fx1 < 0.0) | (fy1 < 0.0) | (fx0 > width - 1.0) | (fy0 > height - 1.0))
        # A box with no pixel centre (a tiny Gaussian between centres): bin() lists it in no tile.
        usable &= (fx0 <= fx1) & (fy0 <= fy1)
    index = np.flatnonzero(usable)
    n = p.shape[0]
    x0, x1, y0, y1 = (np.zeros(n, np.int64) for _ in range(4))
    x0[index] = np.maximum(fx0[index], 0.0)
    y0[index] = np.maximum(fy0[index], 0.0)
    x1[index] = np.minimum(fx1[index], width - 1.0)
    y1[index] = np.minimum(fy1[index], height - 1.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv_l11 = np.float32(1.0) / l11
        inv_l22 = np.float32(1.0) / l22
    return index, p[:, 0], p[:, 1], inv_l11, np.ascontiguousarray(l21), inv_l22, x0, x1, y0, y1


def bin_bands(index: np.ndarray, y0: np.ndarray, y1: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(band_start, band_gaussians): CSR lists of the Gaussians reaching each band, in index order."""
    bands = math.ceil(height / BAND_ROWS)
    first, last = y0[index] // BAND_ROWS, y1[index] // BAND_ROWS
    spans = last - first + 1
    total = int(spans.sum())
    owner = np.repeat(index, spans)
    # Band of each entry: its Gaussian's first band plus its position within that Gaussian's run.
    run_start = np.repeat(np.cumsum(spans) - spans, spans)
    band = np.repeat(first, spans) + (np.arange(total) - run_start)
    order = np.argsort(band, kind="stable")  # stable: index order within a band
    band_start = np.zeros(bands + 1, np.int64)
    np.cumsum(np.bincount(band, minlength=bands), out=band_start[1:])
    return band_start, owner[order].astype(np.int64)


def check_budget(index: np.ndarray, x0: np.ndarray, x1: np.ndarray, y0: np.ndarray, y1: np.ndarray,
                 max_entries: int = 0, max_work: float = 0.0) -> None:
    """The native bin()'s budget, counted the same way (Gaussian-tile entries of 16x16 tiles, and
    pixels evaluated in 16-column chunks), so both renderers refuse the same requests; 0: no limit.
    Raises LimitExceededError before anything proportional to the work is allocated."""
    if not (max_entries or max_work) or index.size == 0:
        return
    gx0, gx1, gy0, gy1 = x0[index], x1[index], y0[index], y1[index]
    entries = int(((gx1 // TILE - gx0 // TILE + 1) * (gy1 // TILE - gy0 // TILE + 1)).sum())
    work = int(((gx1 // WORK_CHUNK - gx0 // WORK_CHUNK + 1) * WORK_CHUNK * (gy1 - gy0 + 1)).sum())
    if max_entries > 0 and entries > max_entries:
        raise LimitExceededError(f"rendering needs {entries} Gaussian-tile entries ({entries * 12 >> 20} MiB), "
                                 f"over the limit of {max_entries}")
    if max_work > 0 and work > max_work:
        raise LimitExceededError(f"rendering would evaluate {work} pixels (counted in 16-column chunks), over "
                                 f"the limit of {int(max_work)}")


def render(params: np.ndarray, width: int, height: int, threads: int = 0, *, max_entries: int = 0,
           max_work: float = 0.0) -> np.ndarray:
    """Render packed Gaussians (N, 5 + C) float32 to a float32 (height, width, C) image.

    The same contract as the native ``render``, budget included (:func:`check_budget`); ``threads``
    0 uses numba's default thread count. Unlike the native core it cannot be interrupted midway.
    """
    channels = check_args(params, width, height)
    params = np.ascontiguousarray(params, dtype=np.float32)
    index, mx, my, inv_l11, l21, inv_l22, x0, x1, y0, y1 = prepare(params, width, height)
    check_budget(index, x0, x1, y0, y1, max_entries, max_work)
    band_start, band_gaussians = bin_bands(index, y0, y1, height)
    colors = np.ascontiguousarray(params[:, 5:])
    out = np.zeros((height, width, channels), np.float32)
    previous = numba.get_num_threads()
    if threads:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        _render_bands(np.ascontiguousarray(mx), np.ascontiguousarray(my), inv_l11, l21, inv_l22, x0, x1, y0, y1,
                      colors, band_start, band_gaussians, height, out)
    finally:
        numba.set_num_threads(previous)
    return out
