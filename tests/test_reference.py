"""Checks of the dense float64 reference itself: hand-computed values, cutoff, degenerate handling,
and its autograd gradient against finite differences. Every rasteriser backend is tested against it in
test_backends.py, so it has to be right on its own."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

try:
    from reference import (CUTOFF_Q, cutoff_ambiguity, gradient_scale, gradient_scale_autograd,
                           random_gaussians, redraw_ambiguous, render_backward_reference,
                           render_reference, render_reference_numpy)
except ImportError:  # tests/ imported as a package
    from tests.reference import (CUTOFF_Q, cutoff_ambiguity, gradient_scale, gradient_scale_autograd,
                                 random_gaussians, redraw_ambiguous, render_backward_reference,
                                 render_reference, render_reference_numpy)


def iso(x: float, y: float, sigma: float, *colour: float) -> list[float]:
    """Packed row of an isotropic Gaussian."""
    return [x, y, sigma, 0.0, sigma, *colour]


def test_peak_and_one_sigma_values() -> None:
    # Centre on pixel (col 2, row 2)'s centre, sigma 2: that pixel gets the full colour.
    params = np.array([iso(2.5, 2.5, 2.0, 0.7)], np.float64)
    img = render_reference(params, 9, 7).numpy()
    assert img.shape == (7, 9, 1)
    assert img[2, 2, 0] == pytest.approx(0.7, abs=1e-15)
    # 1 sigma away horizontally and vertically: exp(-1/2).
    assert img[2, 4, 0] == pytest.approx(0.7 * math.exp(-0.5), abs=1e-15)
    assert img[4, 2, 0] == pytest.approx(0.7 * math.exp(-0.5), abs=1e-15)
    # Diagonal (2, 2) offset: q = (4 + 4) / 4 = 2.
    assert img[4, 4, 0] == pytest.approx(0.7 * math.exp(-1.0), abs=1e-15)
    # Isotropic: symmetric about the centre pixel.
    np.testing.assert_allclose(img[:5, :5], img[:5, :5][::-1, ::-1], atol=1e-15)


def test_pixel_centres_are_at_half_integers() -> None:
    # A Gaussian centred on the pixel *corner* (2, 2) gives four equal pixels around it.
    img = render_reference(np.array([iso(2.0, 2.0, 1.0, 1.0)]), 4, 4).numpy()[..., 0]
    expected = math.exp(-0.5 * 0.5)  # d = (0.5, 0.5), q = 0.5
    for r, c in [(1, 1), (1, 2), (2, 1), (2, 2)]:
        assert img[r, c] == pytest.approx(expected, abs=1e-15)


def test_cutoff_at_three_sigma() -> None:
    # Pixel col 3 is exactly 3 sigma from the centre (q == 9): still included.
    img = render_reference(np.array([iso(0.5, 0.5, 1.0, 1.0)]), 6, 1).numpy()[0, :, 0]
    assert img[3] == pytest.approx(math.exp(-4.5), abs=1e-15)
    assert img[4] == 0.0 and img[5] == 0.0
    # Slightly narrower: the same pixel is now just beyond 3 sigma and gets exactly zero.
    img = render_reference(np.array([iso(0.5, 0.5, 0.9999, 1.0)]), 6, 1).numpy()[0, :, 0]
    assert img[2] == pytest.approx(math.exp(-0.5 * 4 / 0.9999 ** 2), abs=1e-15)
    assert img[3] == 0.0


def test_cutoff_gradient_is_zero_beyond_three_sigma() -> None:
    # Only pixel 4 (4 sigma away) carries gradient: nothing may flow back.
    params = np.array([iso(0.5, 0.5, 1.0, 1.0)])
    g = np.zeros((1, 6, 1))
    g[0, 4, 0] = 1.0
    np.testing.assert_array_equal(render_backward_reference(params, 6, 1, g), 0.0)


def test_anisotropic_rotated_value_matches_explicit_inverse() -> None:
    rng = np.random.default_rng(3)
    a, b, theta = 4.0, 1.5, 0.6
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    sigma = rot @ np.diag([a * a, b * b]) @ rot.T
    chol = np.linalg.cholesky(sigma)
    params = np.array([[7.3, 5.1, chol[0, 0], chol[1, 0], chol[1, 1], 0.4, -0.2, 0.9]])
    img = render_reference(params, 16, 12).numpy()
    inv = np.linalg.inv(sigma)
    for _ in range(20):
        col, row = rng.integers(0, 16), rng.integers(0, 12)
        d = np.array([col + 0.5 - 7.3, row + 0.5 - 5.1])
        q = d @ inv @ d
        w = math.exp(-0.5 * q) if q <= CUTOFF_Q else 0.0
        np.testing.assert_allclose(img[row, col], w * params[0, 5:], atol=1e-14)


def test_sign_of_cholesky_does_not_matter() -> None:
    params = np.array([[5.2, 4.7, 2.0, 1.3, 0.8, 1.0]])
    flipped = params.copy()
    flipped[0, 2:4] *= -1.0  # (l11, l21) -> -(l11, l21): same Sigma
    np.testing.assert_allclose(render_reference(params, 11, 10).numpy(),
                               render_reference(flipped, 11, 10).numpy(), atol=1e-15)


def test_torch_and_numpy_variants_agree_and_sum_is_linear() -> None:
    rng = np.random.default_rng(7)
    params = random_gaussians(rng, 40, 37, 23, 3)
    img = render_reference(params, 37, 23).numpy()
    np.testing.assert_allclose(img, render_reference_numpy(params, 37, 23), atol=1e-11)
    np.testing.assert_allclose(img, sum(render_reference(params[i:i + 1], 37, 23).numpy()
                                        for i in range(40)), atol=1e-12)
    assert np.abs(img).max() > 0.5  # the scene is not accidentally empty


def test_degenerate_gaussians_contribute_nothing_and_get_zero_gradient() -> None:
    good = [6.0, 5.0, 2.0, 0.5, 1.5, 0.8]
    rows = np.array([good,
                     [6.0, 5.0, 0.0, 0.5, 1.5, 0.8],          # l11 = 0
                     [6.0, 5.0, 2.0, 0.5, 5e-7, 0.8],         # |l22| < 1e-6
                     [6.0, 5.0, -5e-7, 0.5, 1.5, 0.8],        # |l11| < 1e-6, negative
                     [np.nan, 5.0, 2.0, 0.5, 1.5, 0.8],       # NaN centre
                     [6.0, 5.0, 2.0, np.inf, 1.5, 0.8],       # Inf l21
                     [6.0, 5.0, 2.0, 0.5, 1.5, np.nan]])      # NaN colour
    img = render_reference(rows, 12, 10).numpy()
    np.testing.assert_array_equal(img, render_reference(rows[:1], 12, 10).numpy())
    g = np.random.default_rng(0).normal(size=(10, 12, 1))
    grad = render_backward_reference(rows, 12, 10, g)
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[1:], 0.0)
    assert np.abs(grad[0]).min() > 0.0
    np.testing.assert_allclose(render_reference_numpy(rows, 12, 10), img, atol=1e-14)


def test_empty_scene() -> None:
    assert np.array_equal(render_reference(np.zeros((0, 8)), 5, 3).numpy(), np.zeros((3, 5, 3)))
    assert render_backward_reference(np.zeros((0, 6)), 5, 3, np.ones((3, 5, 1))).shape == (0, 6)


def test_gradcheck_on_random_scene() -> None:
    rng = np.random.default_rng(11)
    width, height = 13, 9
    params = random_gaussians(rng, 6, width, height, 3, sigma_range=(0.7, 6.0))
    # Finite differences must not step across the hard cutoff: keep pixels well away from q = 9.
    params = redraw_ambiguous(params, width, height,
                              lambda k: random_gaussians(rng, k, width, height, 3, (0.7, 6.0)), rel=1e-2)
    assert cutoff_ambiguity(params, width, height, 1e-2).sum() == 0
    weight = torch.from_numpy(rng.normal(size=(height, width, 3)))
    p = torch.from_numpy(params.astype(np.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: (render_reference(t, width, height) * weight).sum(),
                                    (p,), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_backward_matches_central_differences_and_is_bounded_by_scale() -> None:
    rng = np.random.default_rng(5)
    width, height = 11, 8
    params = random_gaussians(rng, 4, width, height, 1, sigma_range=(0.8, 5.0)).astype(np.float64)
    params = redraw_ambiguous(params, width, height,
                              lambda k: random_gaussians(rng, k, width, height, 1, (0.8, 5.0)), rel=1e-2)
    g = rng.normal(size=(height, width, 1))
    grad = render_backward_reference(params, width, height, g)

    def loss(p: np.ndarray) -> float:
        return float((render_reference_numpy(p, width, height) * g).sum())

    h = 1e-6
    fd = np.zeros_like(params)
    for idx in np.ndindex(*params.shape):
        plus, minus = params.copy(), params.copy()
        plus[idx] += h
        minus[idx] -= h
        fd[idx] = (loss(plus) - loss(minus)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7)
    scale = gradient_scale(params, width, height, g)
    assert np.all(np.abs(grad) <= scale * (1 + 1e-12))
    assert np.all(scale[np.any(grad != 0, axis=1)] > 0)


@pytest.mark.parametrize("channels", [1, 3])
def test_closed_form_gradient_scale_matches_forward_mode_autograd(channels: int) -> None:
    rng = np.random.default_rng(17 + channels)
    params = random_gaussians(rng, 25, 21, 14, channels)
    params[3, 2] = 0.0        # degenerate rows count for nothing
    params[4, 0] = np.nan
    g = rng.normal(size=(14, 21, channels))
    fast = gradient_scale(params, 21, 14, g)
    np.testing.assert_allclose(fast, gradient_scale_autograd(params, 21, 14, g), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(fast[3:5], 0.0)
    assert np.count_nonzero(fast) > 0.5 * fast.size


def test_torch_baseline_renders_the_same_model() -> None:
    # benchmarks/torch_baseline.py is the speed benchmark's comparison point: it must fit this model.
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "torch_baseline.py"
    spec = importlib.util.spec_from_file_location("torch_baseline", path)
    baseline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(baseline)
    rng = np.random.default_rng(23)
    params = random_gaussians(rng, 60, 37, 23, 3, sigma_range=(0.2, 9.0))  # 3 sigma < the 32 px cap
    params[0, 2] = 0.0
    params[1, 5] = np.nan
    t = torch.from_numpy(params)
    img = baseline.render_flat(t[:, :2], t[:, 2:5], t[:, 5:], 37, 23, baseline.bucket_radii(32))
    np.testing.assert_allclose(img.reshape(23, 37, 3).numpy(), render_reference(params, 37, 23).numpy(),
                               atol=1e-5)
