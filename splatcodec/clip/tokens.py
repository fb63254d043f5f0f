"""Per-Gaussian token features for the GS-CLIP splat stem (numpy only; no torch here).

Every Gaussian becomes one feature row (a set: the order of the rows carries no meaning):

* position ``(2 x / W - 1, 2 y / H - 1)``: centres mapped to [-1, 1] by the image size, each axis
  by its own size (an image of any resolution or aspect maps to the same square token space, as a
  squash-resize to the backbone's square input would);
* covariance in those same normalised coordinates (``Sigma_n = D Sigma D``, ``D = diag(1/W, 1/H)``,
  so ``L_n = D L`` stays lower-triangular), in one of two parameterisations:

  - ``"log_ab_shear"`` (3 values): ``L_n = [[a, 0], [c, b]] = [[1, 0], [k, 1]] diag(a, b)`` ->
    ``log a, log b, asinh(k)`` with the shear ``k = c / a`` (asinh keeps very thin, tilted
    Gaussians in range);
  - ``"scale_rotation"`` (4 values): eigen-decomposition ``Sigma_n = R diag(s1^2, s2^2) R^T`` ->
    ``log s1, log s2, e cos 2t, e sin 2t`` with the major axis angle ``t`` and the anisotropy
    ``e = (s1^2 - s2^2) / (s1^2 + s2^2)``: the doubled angle removes the t / t + pi ambiguity and the
    factor ``e`` makes the pair continuous where the angle is undefined (round Gaussians);
* colour (3 values; a grayscale image's one channel is repeated).

The Cholesky factor is canonicalised first (``Sigma = L L^T`` does not change when a column of ``L``
flips sign). Gaussians the renderer skips (non-finite values, ``|l11|`` or ``|l22|`` below 1e-6) carry
no image content and are marked invalid, like padding.

The stem then normalises each feature with the fixed constants :data:`FEATURE_SHIFT` /
:data:`FEATURE_SCALE` (``(f - shift) / scale``), chosen from the value ranges: positions are already in
[-1, 1]; log scales of real fits run from about -7.5 (0.5 px in a 1000 px image) to 0 (the whole image),
centred at -4 with scale 2; colours in [0, 1] map to [-1, 1].
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..splats import Splats
from .config import COV_PARAMS
from .errors import ClipInputError

#: Diagonal Cholesky entries below this (pixels) make a Gaussian degenerate (the renderer skips it).
MIN_CHOL_DIAG = 1e-6
#: Floor of normalised scales before the log (a 1e-6 px Gaussian in a 1 px image is the worst case).
_MIN_NORM_SCALE = 1e-12

_COV_DIM = {"log_ab_shear": 3, "scale_rotation": 4}
_LOG_SCALE = (-4.0, 2.0)  # (shift, scale) of log scales

#: Per-parameterisation feature shift / scale: position (2), covariance (3 or 4), colour (3).
FEATURE_SHIFT = {
    "log_ab_shear": (0.0, 0.0, _LOG_SCALE[0], _LOG_SCALE[0], 0.0, 0.5, 0.5, 0.5),
    "scale_rotation": (0.0, 0.0, _LOG_SCALE[0], _LOG_SCALE[0], 0.0, 0.0, 0.5, 0.5, 0.5),
}
FEATURE_SCALE = {
    "log_ab_shear": (1.0, 1.0, _LOG_SCALE[1], _LOG_SCALE[1], 1.0, 0.5, 0.5, 0.5),
    "scale_rotation": (1.0, 1.0, _LOG_SCALE[1], _LOG_SCALE[1], 1.0, 1.0, 0.5, 0.5, 0.5),
}


def FEATURE_DIM(param: str = "log_ab_shear") -> int:  # noqa: N802 - the contract's name
    """Feature count per Gaussian for a covariance parameterisation (8 or 9)."""
    _check_param(param)
    return 2 + _COV_DIM[param] + 3


def _check_param(param: str) -> None:
    if param not in COV_PARAMS:
        raise ClipInputError(f"unknown covariance parameterisation {param!r}; use one of {COV_PARAMS}")


def gaussian_features(splats: Splats, *, param: str = "log_ab_shear") -> tuple[np.ndarray, np.ndarray]:
    """Features of one image's Gaussians: ``(features float32 [N, F], valid bool [N])``.

    Rows of invalid (degenerate or non-finite) Gaussians are zero.
    """
    _check_param(param)
    if not isinstance(splats, Splats):
        raise ClipInputError(f"expected a Splats object, got {type(splats).__name__}")
    n = splats.num_gaussians
    xy = splats.xy.astype(np.float64)
    chol = splats.chol.astype(np.float64)
    color = splats.color.astype(np.float64)
    if splats.channels == 1:
        color = np.repeat(color, 3, axis=1)
    with np.errstate(invalid="ignore"):
        valid = (np.isfinite(xy).all(1) & np.isfinite(chol).all(1) & np.isfinite(color).all(1)
                 & (np.abs(chol[:, 0]) >= MIN_CHOL_DIAG) & (np.abs(chol[:, 2]) >= MIN_CHOL_DIAG))
    xy, chol, color = xy[valid], chol[valid], color[valid]
    w, h = float(splats.width), float(splats.height)

    pos = np.stack([2.0 * xy[:, 0] / w - 1.0, 2.0 * xy[:, 1] / h - 1.0], axis=1)
    # Canonical Cholesky factor (positive diagonal), then into normalised coordinates: L_n = D L.
    sign = np.where(chol[:, 0] < 0, -1.0, 1.0)
    a = np.abs(chol[:, 0]) / w
    c = sign * chol[:, 1] / h
    b = np.abs(chol[:, 2]) / h
    if param == "log_ab_shear":
        cov = np.stack([np.log(np.maximum(a, _MIN_NORM_SCALE)), np.log(np.maximum(b, _MIN_NORM_SCALE)),
                        np.arcsinh(c / a)], axis=1)
    else:
        s11, s12, s22 = a * a, a * c, c * c + b * b
        half_diff = 0.5 * (s11 - s22)
        radius = np.hypot(half_diff, s12)
        mean = 0.5 * (s11 + s22)
        lam1, lam2 = mean + radius, np.maximum(mean - radius, 0.0)
        # e cos 2t = (s11 - s22) / (s11 + s22), e sin 2t = 2 s12 / (s11 + s22): no division by radius.
        cov = np.stack([0.5 * np.log(np.maximum(lam1, _MIN_NORM_SCALE ** 2)),
                        0.5 * np.log(np.maximum(lam2, _MIN_NORM_SCALE ** 2)),
                        half_diff / mean, s12 / mean], axis=1)
    feats = np.zeros((n, FEATURE_DIM(param)), np.float32)
    feats[valid] = np.concatenate([pos, cov, color], axis=1)
    return feats, valid


def splat_features(splats: Sequence[Splats] | Splats, *,
                   param: str = "log_ab_shear") -> tuple[np.ndarray, np.ndarray]:
    """Features of a batch of images with any Gaussian counts, padded to the largest.

    Returns ``(features float32 [B, Nmax, F], valid bool [B, Nmax])``: image ``i``'s valid Gaussians
    come first, in their original order; padding (and degenerate Gaussians, dropped) leave zero rows
    with ``valid`` False. ``F = FEATURE_DIM(param)``.
    """
    _check_param(param)
    if isinstance(splats, Splats):
        splats = [splats]
    try:
        items = list(splats)
    except TypeError:
        raise ClipInputError(f"expected a sequence of Splats, got {type(splats).__name__}") from None
    if not items:
        raise ClipInputError("splat_features needs at least one Splats")
    per_image = [gaussian_features(s, param=param) for s in items]
    n_max = max(int(v.sum()) for _, v in per_image)
    dim = FEATURE_DIM(param)
    features = np.zeros((len(items), n_max, dim), np.float32)
    valid = np.zeros((len(items), n_max), bool)
    for i, (f, v) in enumerate(per_image):
        k = int(v.sum())
        features[i, :k] = f[v]
        valid[i, :k] = True
    return features, valid
