"""Least-squares colours on fixed geometry: the encoder's quantization-aware colour refit.

The render is linear in the colours: ``I = W^T c`` with ``W`` the (N, pixels) footprints. After the
geometry is quantized, the colours that minimise ``||W^T c - t||^2`` absorb much of its quantization
error. On images of at most 64x64 pixels :func:`solve_colors` solves for them exactly with the
footprints in numpy (:func:`footprints`, also RDOQ's model). Larger, :func:`least_squares_colors`
finds them by conjugate gradients on the normal equations ``W W^T c = W t``: each step is one render
(``W^T d``) and one backward pass (``W g``) of the native core, on any device, so the footprints are
never stored (on the CPU the core bins the Gaussians once and fuses the two passes:
``ColorProducts``), with a Jacobi preconditioner. Started from the fitted colours, 12 steps do
better than the 150 Adam iterations the encoder ran before, at a tenth of the time (224x224
Flickr8k training crops; docs/codec.md, "Small images").
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import _native
from ..errors import InvalidInputError
from ..splats import CUTOFF_SIGMA, GEOMETRY_FLOATS, Splats
from .quantize import _geometry

#: Conjugate-gradient steps of :func:`least_squares_colors` in the encoder.
CG_STEPS = 12


def least_squares_colors(splats: Splats, target: np.ndarray, steps: int = CG_STEPS, threads: int = 1,
                         device: str = "cpu") -> Splats:
    """``splats`` with colours moved towards the least-squares fit of ``target`` ((H, W, C) floats in
    image units / 255) by ``steps`` preconditioned conjugate-gradient steps from the current colours
    (every channel is its own linear problem; they share the footprints). Geometry is unchanged."""
    h, w = splats.height, splats.width
    params = splats.packed().astype(np.float32)
    target = np.asarray(target, np.float32)
    if target.size != h * w * splats.channels:
        raise InvalidInputError(f"target has {target.size} values, the {w}x{h} image with "
                                f"{splats.channels} channels {h * w * splats.channels}")
    target = np.ascontiguousarray(target.reshape(h, w, splats.channels))

    footprints_times, normal = _color_products(params, w, h, threads, device)
    # Jacobi preconditioner: diag(W W^T)_i = sum_p w_i(p)^2 ~ the integral of exp(-q) = pi |l11 l22|
    # (floored for Gaussians smaller than a pixel). Gaussians of very different sizes make W W^T
    # badly scaled; with it, 12 steps beat 20 plain ones (docs/codec.md, "Small images").
    diagonal = np.maximum(np.pi * np.abs(splats.chol[:, 0] * splats.chol[:, 2]).astype(np.float64), 0.5)[:, None]
    tiny = np.finfo(np.float64).tiny
    x = splats.color.astype(np.float64)
    residual = footprints_times(target) - normal(x.astype(np.float32))
    scaled = residual / diagonal
    direction = scaled.copy()
    rz = (residual * scaled).sum(axis=0)
    for _ in range(steps):
        if not np.any(rz > 0):
            break
        ad = normal(direction.astype(np.float32))
        alpha = rz / np.maximum((direction * ad).sum(axis=0), tiny)
        x += alpha * direction
        residual -= alpha * ad
        scaled = residual / diagonal
        rz_next = (residual * scaled).sum(axis=0)
        direction = scaled + (rz_next / np.maximum(rz, tiny)) * direction
        rz = rz_next
    return Splats(splats.xy, splats.chol, x.astype(np.float32), w, h)


Products = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]


def _color_products(params: np.ndarray, w: int, h: int, threads: int, device: str) -> Products:
    """``(footprints_times, normal)``: g -> W g and c -> W W^T c (float64 (N, C)) for the footprints W
    of ``params``. On the CPU the core's ColorProducts (binned once, W W^T c in one fused pass);
    elsewhere :func:`_render_products`."""
    if _native.resolve_device(device) != "cpu":
        return _render_products(params, w, h, threads, device)
    products = _native.call("ColorProducts", params, w, h, threads)
    return (lambda image: np.asarray(products.footprints_times(image), np.float64),
            lambda colors: np.asarray(products.normal(colors), np.float64))


def _render_products(params: np.ndarray, w: int, h: int, threads: int, device: str) -> Products:
    """The same products from any device's render and backward pass (one or two calls per product)."""
    params = params.copy()

    def footprints_times(image: np.ndarray) -> np.ndarray:  # the colour part of the backward pass
        grad = _native.call("render_backward", params, w, h, image, threads, device=device)
        return np.asarray(grad, np.float64)[:, GEOMETRY_FLOATS:]

    def normal(colors: np.ndarray) -> np.ndarray:
        params[:, GEOMETRY_FLOATS:] = colors
        image = _native.run("render", params, w, h, threads, device=device)
        return footprints_times(np.ascontiguousarray(image, np.float32))

    return footprints_times, normal


def footprints(x: np.ndarray, y: np.ndarray, log_a: np.ndarray, log_b: np.ndarray, shear: np.ndarray,
               px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """(M, P) float32 footprints exp(-q/2) (0 beyond the cutoff) of M Gaussians, given as position and
    quantizer attributes (log a, log b, shear), at the pixel centres (px, py): the core's model in numpy,
    for small images (every Gaussian over every listed pixel)."""
    inv_a = np.exp(-log_a).astype(np.float32)[:, None]
    inv_b = np.exp(-log_b).astype(np.float32)[:, None]
    c = (np.sinh(shear) * np.exp(log_b)).astype(np.float32)[:, None]
    z1 = (px[None, :] - x.astype(np.float32)[:, None]) * inv_a
    z2 = py[None, :] - y.astype(np.float32)[:, None]
    z2 -= c * z1
    z2 *= inv_b
    z1 *= z1
    z2 *= z2
    z1 += z2  # q
    out = np.exp(np.float32(-0.5) * z1)
    out[z1 > np.float32(CUTOFF_SIGMA ** 2)] = 0.0
    return out


def pixel_centres(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 (x, y) centres of every pixel of a ``width`` x ``height`` image, row by row (the ``px``,
    ``py`` of :func:`footprints`)."""
    ys, xs = np.mgrid[0:height, 0:width]
    return (xs.reshape(-1) + 0.5).astype(np.float32), (ys.reshape(-1) + 0.5).astype(np.float32)


def solve_colors(splats: Splats, target: np.ndarray, ridge: float = 1e-6) -> Splats:
    """``splats`` with the colours that minimise the squared error of the render against ``target``
    (the render is linear in them: a least-squares solve; ``ridge`` x mean footprint energy keeps
    near-duplicate footprints from cancelling with huge colours)."""
    h, w = splats.height, splats.width
    geom = _geometry(splats)
    weights = footprints(splats.xy[:, 0].astype(np.float64), splats.xy[:, 1].astype(np.float64), geom[:, 0],
                         geom[:, 1], geom[:, 2], *pixel_centres(w, h)).astype(np.float64)
    gram = weights @ weights.T
    gram[np.diag_indices_from(gram)] += ridge * max(float(np.trace(gram)) / max(len(gram), 1), 1e-12)
    rhs = weights @ np.asarray(target, np.float64).reshape(h * w, -1)
    colors = np.linalg.solve(gram, rhs)
    return Splats(splats.xy, splats.chol, colors.astype(np.float32), w, h)


__all__ = ["CG_STEPS", "footprints", "least_squares_colors", "pixel_centres", "solve_colors"]
