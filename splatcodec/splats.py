"""`Splats`: an image stored as coloured anisotropic 2D Gaussians.

Model (shared by the CPU and CUDA kernels, see ``src_cuda/gaussian_math.h``)::

    I(p) = sum_i color_i * exp(-0.5 * (p - mu_i)^T Sigma_i^-1 (p - mu_i)),   Sigma_i = L_i L_i^T

``p`` runs over pixel centres (x + 0.5, y + 0.5). ``L = [[l11, 0], [l21, l22]]`` is stored as
``chol = (l11, l21, l22)`` in pixels. No opacity, no sorting: Gaussians are summed. Each Gaussian is
cut off where its Mahalanobis distance exceeds ``CUTOFF_SIGMA``; this is part of the model, so the
encoder and every decoder agree.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InvalidInputError
from .validation import check_int

#: A Gaussian contributes only where (p - mu)^T Sigma^-1 (p - mu) <= CUTOFF_SIGMA**2.
CUTOFF_SIGMA = 3.0
#: Floats per Gaussian in the packed native layout: x, y, l11, l21, l22, then `channels` colours.
GEOMETRY_FLOATS = 5


@dataclass(eq=False)
class Splats:
    """A set of 2D Gaussians fitted to a ``width`` x ``height`` image.

    Attributes:
        xy: (N, 2) float32 centres in pixels of the fitted image (x right, y down; pixel (0, 0)'s
            centre is at (0.5, 0.5)).
        chol: (N, 3) float32 Cholesky factor ``(l11, l21, l22)`` of each covariance, in pixels.
        color: (N, C) float32 colours in image units scaled to [0, 1] (may leave that range: the
            image is a sum). C is 1 (grayscale) or 3 (RGB).
        width, height: size of the image the Gaussians were fitted to.
    """

    xy: np.ndarray
    chol: np.ndarray
    color: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        self.xy = _as_f32_matrix(self.xy, "xy", 2)
        self.chol = _as_f32_matrix(self.chol, "chol", 3)
        self.color = _as_f32_matrix(self.color, "color", None)
        n = self.xy.shape[0]
        if self.chol.shape[0] != n or self.color.shape[0] != n:
            raise InvalidInputError(
                f"Splats arrays disagree on the Gaussian count: xy {self.xy.shape}, "
                f"chol {self.chol.shape}, color {self.color.shape}")
        if self.color.shape[1] not in (1, 3):
            raise InvalidInputError(f"Splats.color must have 1 or 3 channels, got {self.color.shape[1]}")
        for name in ("width", "height"):
            setattr(self, name, check_int(f"Splats.{name}", getattr(self, name), minimum=1))

    @property
    def num_gaussians(self) -> int:
        """Number of Gaussians N."""
        return int(self.xy.shape[0])

    @property
    def channels(self) -> int:
        """Colour channels C (1 or 3)."""
        return int(self.color.shape[1])

    def packed(self) -> np.ndarray:
        """The (N, 5 + C) float32 row-major layout the native core reads."""
        return np.ascontiguousarray(np.concatenate([self.xy, self.chol, self.color], axis=1), np.float32)

    @classmethod
    def from_packed(cls, params: np.ndarray, width: int, height: int) -> "Splats":
        """Inverse of :meth:`packed`."""
        params = np.asarray(params, np.float32)
        if params.ndim != 2 or params.shape[1] - GEOMETRY_FLOATS not in (1, 3):
            raise InvalidInputError(f"packed Gaussians must be (N, 6) or (N, 8), got {params.shape}")
        return cls(params[:, 0:2].copy(), params[:, 2:5].copy(), params[:, 5:].copy(), width, height)

    def subset(self, index: np.ndarray | slice) -> "Splats":
        """The Gaussians selected by ``index`` (a slice, boolean mask or integer indices)."""
        return Splats(self.xy[index], self.chol[index], self.color[index], self.width, self.height)

    def covariance(self) -> np.ndarray:
        """(N, 2, 2) covariance matrices Sigma = L L^T (float64)."""
        l11, l21, l22 = (self.chol[:, k].astype(np.float64) for k in range(3))
        cov = np.empty((self.num_gaussians, 2, 2))
        cov[:, 0, 0] = l11 * l11
        cov[:, 0, 1] = cov[:, 1, 0] = l11 * l21
        cov[:, 1, 1] = l21 * l21 + l22 * l22
        return cov

    def __repr__(self) -> str:
        return (f"Splats(num_gaussians={self.num_gaussians}, channels={self.channels}, "
                f"width={self.width}, height={self.height})")


def _as_f32_matrix(value: object, name: str, columns: int | None) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"Splats.{name} is not a numeric array: {exc}") from None
    if array.ndim != 2 or (columns is not None and array.shape[1] != columns):
        want = f"(N, {columns})" if columns else "(N, C)"
        raise InvalidInputError(f"Splats.{name} must have shape {want}, got {array.shape}")
    return np.ascontiguousarray(array)
