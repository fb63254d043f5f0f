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


# Standard MS-SSIM constants (Wang, Simoncelli & Bovik 2003): five scales with these exponents, an 11-tap
# Gaussian window of sigma 1.5, and K1/K2 stabilisers. They match pytorch_msssim, which CompressAI uses,
# so numbers here are comparable with published CompressAI-style results.
_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_MS_SSIM_WIN_SIZE = 11
_MS_SSIM_WIN_SIGMA = 1.5
_MS_SSIM_K = (0.01, 0.03)


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
    coords = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(coords**2) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(x: np.ndarray, win: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter over axes 0 and 1 of an HxWxC array, keeping only 'valid' outputs."""
    k = win.shape[0]
    x = np.lib.stride_tricks.sliding_window_view(x, k, axis=0) @ win  # (H-k+1, W, C)
    return np.lib.stride_tricks.sliding_window_view(x, k, axis=1) @ win  # (H-k+1, W-k+1, C)


def _ssim_and_cs(x: np.ndarray, y: np.ndarray, win: np.ndarray, data_range: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean SSIM and mean contrast-structure term at one scale."""
    c1 = (_MS_SSIM_K[0] * data_range) ** 2
    c2 = (_MS_SSIM_K[1] * data_range) ** 2
    mu_x = _filter_valid(x, win)
    mu_y = _filter_valid(y, win)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    sigma_xx = _filter_valid(x * x, win) - mu_xx
    sigma_yy = _filter_valid(y * y, win) - mu_yy
    sigma_xy = _filter_valid(x * y, win) - mu_xy
    cs_map = (2.0 * sigma_xy + c2) / (sigma_xx + sigma_yy + c2)
    ssim_map = ((2.0 * mu_xy + c1) / (mu_xx + mu_yy + c1)) * cs_map
    return ssim_map.mean(axis=(0, 1)), cs_map.mean(axis=(0, 1))


def _avg_pool2(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling with stride 2; an odd side gets one zero row/column of padding on each edge,
    counted in the average (torch ``avg_pool2d(kernel_size=2, padding=side % 2)``), to match pytorch_msssim."""
    ph, pw = x.shape[0] % 2, x.shape[1] % 2
    if ph or pw:
        x = np.pad(x, ((ph, ph), (pw, pw), (0, 0)))
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    x = x[:h, :w]
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def ms_ssim(a: np.ndarray, b: np.ndarray, data_range: float | None = None) -> float:
    """Multi-scale SSIM between two HxW or HxWxC images, averaged over channels (RGB MS-SSIM).

    Follows Wang et al. (2003) with the standard five-scale weights, as implemented by pytorch_msssim
    (the implementation behind CompressAI's ``ms-ssim-rgb``): 11x11 Gaussian window (sigma 1.5) applied
    without padding, negative terms clamped to zero, 2x2 average pooling between scales. ``data_range``
    defaults to 255 for uint8 inputs and 1.0 otherwise. Both sides must exceed 160 pixels, so that the
    window still fits at the coarsest scale. Returns a value in [0, 1]; identical images give 1.0.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise InvalidInputError(f"ms_ssim needs images of the same shape, got {a.shape} and {b.shape}")
    if a.ndim not in (2, 3):
        raise InvalidInputError(f"ms_ssim needs an HxW or HxWxC image, got shape {a.shape}")
    levels = len(_MS_SSIM_WEIGHTS)
    min_side = (_MS_SSIM_WIN_SIZE - 1) * 2 ** (levels - 1)
    if min(a.shape[:2]) <= min_side:
        raise InvalidInputError(f"ms_ssim needs both image sides > {min_side} pixels, got {a.shape[:2]}")
    if data_range is None:
        data_range = 255.0 if (a.dtype == np.uint8 and b.dtype == np.uint8) else 1.0
    x = a.astype(np.float64)
    y = b.astype(np.float64)
    if x.ndim == 2:
        x, y = x[:, :, None], y[:, :, None]
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise InvalidInputError("ms_ssim got non-finite pixel values")
    win = _gaussian_window(_MS_SSIM_WIN_SIZE, _MS_SSIM_WIN_SIGMA)
    terms = []
    for level in range(levels):
        ssim_c, cs_c = _ssim_and_cs(x, y, win, data_range)
        if level < levels - 1:
            terms.append(np.maximum(cs_c, 0.0))
            x, y = _avg_pool2(x), _avg_pool2(y)
    terms.append(np.maximum(ssim_c, 0.0))
    weights = np.asarray(_MS_SSIM_WEIGHTS)[:, None]
    per_channel = np.prod(np.stack(terms) ** weights, axis=0)
    return float(per_channel.mean())
