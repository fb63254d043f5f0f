"""The encoder's conjugate-gradient colour refit against a dense numpy least-squares solve."""
from __future__ import annotations

import numpy as np
import pytest

from reference import contributions
from splatcodec.codec import colors
from splatcodec.errors import InvalidInputError
from splatcodec.splats import Splats


def _random_splats(n: int, channels: int, seed: int, w: int = 28, h: int = 20) -> Splats:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, [w, h], (n, 2))
    chol = np.c_[rng.uniform(1.5, 5, n), rng.normal(0, 1, n), rng.uniform(1.5, 5, n)]
    return Splats(xy, chol, rng.normal(0, 0.4, (n, channels)), w, h)


def _footprints(s: Splats) -> np.ndarray:
    """(N, pixels) footprints W of the independent torch reference (the render is W^T c)."""
    unit = s.packed()
    unit[:, 5:] = 1.0
    return contributions(unit, s.width, s.height)[..., 0].double().numpy().reshape(s.num_gaussians, -1)


def _dense_solution(s: Splats, target: np.ndarray) -> np.ndarray:
    """argmin_c ||W^T c - t||^2."""
    return np.linalg.lstsq(_footprints(s).T, target.reshape(-1, s.channels), rcond=None)[0]


def _error(s: Splats, c: np.ndarray, target: np.ndarray) -> float:
    return float(((_footprints(s).T @ c - target.reshape(-1, s.channels)) ** 2).sum())


@pytest.mark.parametrize("channels,seed", [(3, 0), (3, 1), (1, 2)])
def test_converges_to_the_least_squares_colours(channels, seed):
    s = _random_splats(10, channels, seed)
    target = np.random.default_rng(seed + 10).random((s.height, s.width, channels))
    want = _dense_solution(s, target)
    got = colors.least_squares_colors(s, target, steps=60).color
    assert _error(s, got, target) <= _error(s, want, target) * (1 + 1e-4)
    np.testing.assert_allclose(got, want, atol=2e-3)


def test_each_step_lowers_the_error_from_the_given_colours():
    s = _random_splats(16, 3, seed=4)
    target = np.random.default_rng(5).random((s.height, s.width, 3))
    errors = [_error(s, colors.least_squares_colors(s, target, steps=k).color, target) for k in (0, 1, 3, 10)]
    assert errors[0] == pytest.approx(_error(s, s.color, target), rel=1e-5)  # 0 steps: the colours as given
    assert errors[0] > errors[1] > errors[2] > errors[3]


def test_an_exact_render_is_a_fixed_point_and_geometry_is_kept():
    s = _random_splats(8, 3, seed=6)
    target = _footprints(s).T @ s.color
    out = colors.least_squares_colors(s, target.reshape(s.height, s.width, 3), steps=5)
    np.testing.assert_allclose(out.color, s.color, atol=1e-4)
    np.testing.assert_array_equal(out.xy, s.xy)
    np.testing.assert_array_equal(out.chol, s.chol)


def test_a_target_of_the_wrong_size_is_refused():
    s = _random_splats(4, 3, seed=7)
    with pytest.raises(InvalidInputError, match="target has 75 values"):
        colors.least_squares_colors(s, np.zeros((5, 5, 3)))


@pytest.mark.parametrize("channels,size", [(3, (37, 23)), (1, (37, 23)), (3, (48, 32))])
def test_the_core_products_match_the_reference_footprints(channels, size):
    # ColorProducts (CPU core: binned once, W W^T c in one fused pass) and the render + backward route
    # of other devices, against the dense footprints of the torch reference.
    s = _random_splats(30, channels, seed=8, w=size[0], h=size[1])
    rng = np.random.default_rng(9)
    c = rng.normal(0, 1, (s.num_gaussians, channels))
    g = rng.normal(0, 1, (s.height, s.width, channels)).astype(np.float32)
    foot = _footprints(s)
    params = s.packed().astype(np.float32)
    for times, normal in (colors._color_products(params, s.width, s.height, 1, "cpu"),
                          colors._render_products(params, s.width, s.height, 1, "cpu")):
        np.testing.assert_allclose(normal(c), foot @ (foot.T @ c), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(times(g), foot @ g.reshape(-1, channels), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(normal(2 * c), 2 * foot @ (foot.T @ c), rtol=1e-4, atol=1e-4)  # reusable
