"""Independent dense reference of the splatcodec image model (float64, torch autograd).

Written straight from the model definition, sharing no code with the native core::

    I(p) = sum_i c_i * w_i(p),   w_i(p) = exp(-0.5 q)  if q <= 9 else 0
    q = z1^2 + z2^2,   z1 = dx / l11,   z2 = (dy - l21 * z1) / l22,   d = p - mu

(``z = L^-1 d``, so ``q = d^T Sigma^-1 d`` with ``Sigma = L L^T``.) Pixel (col j, row i) has centre
(j + 0.5, i + 0.5). A Gaussian with ``|l11| < 1e-6``, ``|l22| < 1e-6`` or any non-finite parameter
contributes nothing and gets zero gradient. Packed rows are ``[x, y, l11, l21, l22, c_0..c_{C-1}]``.

Everything is evaluated densely (every pixel x every Gaussian), so it is only meant for small scenes.
"""
from __future__ import annotations

import math

import numpy as np
import torch

#: q above this (3 sigma, squared) gives exactly zero weight.
CUTOFF_Q = 9.0
#: |l11| or |l22| below this makes a Gaussian degenerate. Parameters are float32, so the threshold is
#: the float32 nearest 1e-6 (9.99999997e-07): float32(1e-6) itself is a valid, if tiny, Gaussian.
DEGENERATE_EPS = float(np.float32(1e-6))
GEOMETRY = 5


def _as_params(params: np.ndarray | torch.Tensor) -> torch.Tensor:
    """float64 torch view of packed params, keeping autograd history if it is already a tensor."""
    t = params if isinstance(params, torch.Tensor) else torch.from_numpy(np.asarray(params))
    t = t.to(torch.float64)
    if t.ndim != 2 or t.shape[1] - GEOMETRY not in (1, 3):
        raise ValueError(f"params must be (N, 6) or (N, 8), got {tuple(t.shape)}")
    return t


def valid_mask(params: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N,) bool: which Gaussians are non-degenerate (finite, |l11|, |l22| >= 1e-6)."""
    p = _as_params(params).detach()
    return (torch.isfinite(p).all(dim=1)
            & (p[:, 2].abs() >= DEGENERATE_EPS) & (p[:, 4].abs() >= DEGENERATE_EPS))


def pixel_centres(width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W) float64 grids of pixel-centre x and y coordinates."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64) + 0.5,
                            torch.arange(width, dtype=torch.float64) + 0.5, indexing="ij")
    return xs, ys


def mahalanobis_q(params: np.ndarray | torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(N, H, W) squared Mahalanobis distance of every pixel centre to every Gaussian.

    Degenerate Gaussians have their parameters replaced by a harmless unit Gaussian here (so autograd
    never sees a NaN or a division by zero); callers mask them out with :func:`valid_mask`.
    """
    p = _as_params(params)
    ok = valid_mask(p)[:, None]
    safe = torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    # torch.where routes a zero gradient to the rows it does not select, NaN rows included.
    geo = torch.where(ok, p[:, :GEOMETRY], safe)
    x, y, l11, l21, l22 = (geo[:, k, None, None] for k in range(GEOMETRY))
    xs, ys = pixel_centres(width, height)
    dx = xs[None] - x
    dy = ys[None] - y
    z1 = dx / l11
    z2 = (dy - l21 * z1) / l22
    return z1 * z1 + z2 * z2


def contributions(params: np.ndarray | torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(N, H, W, C) per-Gaussian terms c_i * w_i(p); their sum over axis 0 is the image."""
    p = _as_params(params)
    ok = valid_mask(p)
    q = mahalanobis_q(p, width, height)
    # The cutoff is part of the model: w and all its derivatives are exactly 0 beyond q = 9.
    w = torch.where(q <= CUTOFF_Q, torch.exp(-0.5 * q), torch.zeros_like(q))
    w = torch.where(ok[:, None, None], w, torch.zeros_like(w))
    colour = torch.where(ok[:, None], p[:, GEOMETRY:], torch.zeros_like(p[:, GEOMETRY:]))
    return w[..., None] * colour[:, None, None, :]


def render_reference(params: np.ndarray | torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(H, W, C) float64 image of packed Gaussians; differentiable w.r.t. ``params`` if it is a tensor."""
    p = _as_params(params)
    if p.shape[0] == 0:
        return torch.zeros((height, width, p.shape[1] - GEOMETRY), dtype=torch.float64)
    return contributions(p, width, height).sum(dim=0)


def render_backward_reference(params: np.ndarray, width: int, height: int,
                              grad_image: np.ndarray) -> np.ndarray:
    """(N, 5+C) float64 gradient of sum(grad_image * render(params)) w.r.t. ``params``, by autograd."""
    p = _as_params(params).detach().clone().requires_grad_(True)
    if p.shape[0] == 0:
        return np.zeros(tuple(p.shape))
    img = render_reference(p, width, height)
    g = torch.from_numpy(np.asarray(grad_image, np.float64))
    (grad,) = torch.autograd.grad((img * g).sum(), p)
    return grad.numpy()


def gradient_scale(params: np.ndarray, width: int, height: int, grad_image: np.ndarray) -> np.ndarray:
    """(N, 5+C) sum over pixels/channels of |grad_image| * |d(c_i w_i)/d theta|, per parameter.

    This is the sum of absolute values of the terms a gradient entry adds up, i.e. the natural scale of
    the rounding error of any float32 implementation (a gradient that cancels to ~0 still accumulates
    rounding noise proportional to this). Uses the closed-form partials of z = L^-1 d (cheap; checked
    against forward-mode autograd in test_reference.py, see :func:`gradient_scale_autograd`)::

        dw/dtheta = -w (z1 dz1/dtheta + z2 dz2/dtheta)
        dz1/dx = -1/l11, dz2/dx = l21/(l11 l22), dz2/dy = -1/l22, dz1/dl11 = -z1/l11,
        dz2/dl11 = l21 z1/(l11 l22), dz2/dl21 = -z1/l22, dz2/dl22 = -z2/l22.
    """
    with torch.no_grad():
        p = _as_params(params)
        n, channels = p.shape[0], p.shape[1] - GEOMETRY
        out = torch.zeros_like(p)
        if n == 0:
            return out.numpy()
        ok = valid_mask(p)
        safe = torch.where(ok[:, None], p, torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0] + [0.0] * channels,
                                                        dtype=torch.float64))
        x, y, l11, l21, l22 = (safe[:, k, None, None] for k in range(GEOMETRY))
        xs, ys = pixel_centres(width, height)
        z1 = (xs[None] - x) / l11
        z2 = (ys[None] - y - l21 * z1) / l22
        q = z1 * z1 + z2 * z2
        w = torch.where((q <= CUTOFF_Q) & ok[:, None, None], torch.exp(-0.5 * q), torch.zeros_like(q))
        g = torch.from_numpy(np.asarray(grad_image, np.float64)).abs()      # (H, W, C)
        gc = torch.einsum("hwc,nc->nhw", g, safe[:, GEOMETRY:].abs())      # sum_c |g_c| |c_ic|
        partials = [(-1.0 / l11, l21 / (l11 * l22)),                      # x
                    (torch.zeros_like(z1), -1.0 / l22),                   # y
                    (-z1 / l11, l21 * z1 / (l11 * l22)),                  # l11
                    (torch.zeros_like(z1), -z1 / l22),                    # l21
                    (torch.zeros_like(z1), -z2 / l22)]                    # l22
        for k, (dz1, dz2) in enumerate(partials):
            out[:, k] = (gc * (w * (z1 * dz1 + z2 * dz2)).abs()).sum(dim=(1, 2))
        out[:, GEOMETRY:] = torch.einsum("nhw,hwc->nc", w, g)
        return out.numpy()


def gradient_scale_autograd(params: np.ndarray, width: int, height: int,
                            grad_image: np.ndarray) -> np.ndarray:
    """Slow twin of :func:`gradient_scale` by forward-mode AD, one tangent per column: every parameter
    only affects its own Gaussian's term, so one jvp yields all N per-term derivatives."""
    p = _as_params(params).detach()
    g = torch.from_numpy(np.asarray(grad_image, np.float64)).abs()
    out = torch.zeros_like(p)
    for k in range(p.shape[1]):
        tangent = torch.zeros_like(p)
        tangent[:, k] = 1.0
        _, d = torch.func.jvp(lambda t: contributions(t, width, height), (p,), (tangent,))
        out[:, k] = (d.abs() * g[None]).sum(dim=(1, 2, 3))
    return out.numpy()


def cutoff_ambiguity(params: np.ndarray, width: int, height: int, rel: float = 1e-4) -> np.ndarray:
    """(N,) count of pixel centres whose q lies within ``rel`` (relative) of the cutoff q = 9.

    There float32 and float64 may legitimately land on different sides of the hard cutoff (a jump of
    |c| exp(-4.5)); random test scenes avoid such Gaussians rather than loosening tolerances.
    """
    q = mahalanobis_q(params, width, height).detach()
    near = ((q - CUTOFF_Q).abs() <= rel * CUTOFF_Q) & valid_mask(params)[:, None, None]
    return near.sum(dim=(1, 2)).numpy()


def render_reference_numpy(params: np.ndarray, width: int, height: int) -> np.ndarray:
    """Plain numpy float64 twin of :func:`render_reference` (a loop over Gaussians, no torch)."""
    params = np.asarray(params, np.float64)
    channels = params.shape[1] - GEOMETRY
    ys, xs = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    img = np.zeros((height, width, channels))
    for row in params:
        x, y, l11, l21, l22 = row[:GEOMETRY]
        if (not np.all(np.isfinite(row)) or abs(l11) < DEGENERATE_EPS or abs(l22) < DEGENERATE_EPS):
            continue
        # Sigma^-1 written out explicitly (a different route than z = L^-1 d above).
        s11, s12, s22 = l11 * l11, l11 * l21, l21 * l21 + l22 * l22
        det = s11 * s22 - s12 * s12
        dx, dy = xs - x, ys - y
        q = (s22 * dx * dx - 2.0 * s12 * dx * dy + s11 * dy * dy) / det
        w = np.where(q <= CUTOFF_Q, np.exp(-0.5 * q), 0.0)
        img += w[..., None] * row[GEOMETRY:]
    return img


def random_gaussians(rng: np.random.Generator, n: int, width: int, height: int, channels: int,
                     sigma_range: tuple[float, float] = (0.3, 20.0),
                     centre_margin: float = 0.25) -> np.ndarray:
    """(n, 5+C) float32 random anisotropic, rotated Gaussians.

    Axis lengths are log-uniform in ``sigma_range`` (pixels), orientation uniform, centres uniform over
    the image grown by ``centre_margin`` of its size on each side (so some lie partly or fully outside),
    colours uniform in [-0.5, 1]. Returned as the Cholesky factor of R diag(a^2, b^2) R^T, with the sign
    of l11 random (Sigma does not depend on it, the packed row does).
    """
    lo, hi = np.log(sigma_range[0]), np.log(sigma_range[1])
    a = np.exp(rng.uniform(lo, hi, n))
    b = np.exp(rng.uniform(lo, hi, n))
    theta = rng.uniform(0.0, np.pi, n)
    cos, sin = np.cos(theta), np.sin(theta)
    s11 = a * a * cos * cos + b * b * sin * sin
    s12 = (a * a - b * b) * cos * sin
    s22 = a * a * sin * sin + b * b * cos * cos
    l11 = np.sqrt(s11)
    l21 = s12 / l11
    l22 = np.sqrt(np.maximum(s22 - l21 * l21, 0.0))
    sign = rng.choice([-1.0, 1.0], n)
    x = rng.uniform(-centre_margin * width, (1 + centre_margin) * width, n)
    y = rng.uniform(-centre_margin * height, (1 + centre_margin) * height, n)
    colour = rng.uniform(-0.5, 1.0, (n, channels))
    geo = np.stack([x, y, sign * l11, sign * l21, l22], axis=1)
    return np.ascontiguousarray(np.concatenate([geo, colour], axis=1), np.float32)


def redraw_ambiguous(params: np.ndarray, width: int, height: int, redraw, rel: float = 1e-4,
                     max_rounds: int = 50) -> np.ndarray:
    """Replace rows whose cutoff ellipse passes within ``rel`` of a pixel centre (see cutoff_ambiguity).

    ``redraw(k)`` must return k fresh rows. Keeps a random scene's statistics while making the float32
    vs float64 comparison well-posed at the hard 3-sigma cutoff.
    """
    params = params.copy()
    for _ in range(max_rounds):
        bad = np.nonzero(cutoff_ambiguity(params, width, height, rel))[0]
        if bad.size == 0:
            return params
        params[bad] = redraw(bad.size)
    raise RuntimeError("could not draw a scene free of cutoff-ambiguous Gaussians")


def random_scene(seed: int, n: int, width: int, height: int, channels: int, **kw) -> np.ndarray:
    """Seeded random Gaussians (see random_gaussians) free of cutoff-ambiguous rows."""
    rng = np.random.default_rng(seed)
    params = random_gaussians(rng, n, width, height, channels, **kw)
    return redraw_ambiguous(params, width, height,
                            lambda k: random_gaussians(rng, k, width, height, channels, **kw))


def rotated_gaussian(x: float, y: float, a: float, b: float, theta: float, colour: list[float]) -> list[float]:
    """Packed row for axis lengths a, b (pixels) rotated by theta."""
    c, s = math.cos(theta), math.sin(theta)
    s11 = a * a * c * c + b * b * s * s
    s12 = (a * a - b * b) * c * s
    s22 = a * a * s * s + b * b * c * c
    l11 = math.sqrt(s11)
    l21 = s12 / l11
    return [x, y, l11, l21, math.sqrt(s22 - l21 * l21), *colour]
