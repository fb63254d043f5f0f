"""The native rasterizer (``splatcodec._core.render`` / ``render_backward``) against the independent
float64 reference in ``reference.py``, on seeded random and hand-built scenes.

Skipped only when the extension is missing *and* SPLATCODEC_REQUIRE_NATIVE is unset (or "0"); with it
set (CI), a missing extension is a loud collection error.

Tolerances (float32 core vs float64 reference):
* forward: |native - ref| <= 1e-5 + 1e-5 |ref| per pixel and channel;
* gradients: |native - ref| <= 1e-7 + GRAD_RTOL * S, where S (reference.gradient_scale) is the sum of
  |grad_image| * |d term / d theta| over the terms a gradient entry adds up: the scale of any float32
  implementation's rounding error, which stays meaningful when the terms cancel to ~0. A wrong
  formula, a dropped pixel or a dropped Gaussian errs by O(S), far above GRAD_RTOL * S.
Random scenes redraw Gaussians whose 3-sigma ellipse passes within 1e-4 (relative) of a pixel centre,
where float32 and float64 may legitimately disagree on the hard cutoff.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

try:
    from reference import (gradient_scale, random_gaussians, random_scene, redraw_ambiguous,
                           rotated_gaussian,
                           render_backward_reference, render_reference)
except ImportError:  # tests/ imported as a package
    from tests.reference import (gradient_scale, random_gaussians, random_scene, redraw_ambiguous,
                                 rotated_gaussian,
                                 render_backward_reference, render_reference)

_REQUIRE = os.environ.get("SPLATCODEC_REQUIRE_NATIVE", "") not in ("", "0")
try:
    from splatcodec import _core
except ImportError as exc:
    if _REQUIRE:
        raise ImportError(f"SPLATCODEC_REQUIRE_NATIVE is set but splatcodec._core failed to import: {exc}. "
                          "Build it with `pip install -e .`") from exc
    pytest.skip(f"splatcodec._core is not built ({exc}); set SPLATCODEC_REQUIRE_NATIVE=1 to fail instead",
                allow_module_level=True)

FWD_ATOL = 1e-5
FWD_RTOL = 1e-5
GRAD_ATOL = 1e-7
GRAD_RTOL = 3e-5


# ----------------------------------------------------------------------------------------- helpers
def native_render(params: np.ndarray, width: int, height: int, threads: int = 0) -> np.ndarray:
    params = np.ascontiguousarray(params, np.float32)
    out = np.asarray(_core.render(params, width, height, threads))
    assert out.shape == (height, width, params.shape[1] - 5), out.shape
    assert out.dtype == np.float32
    return out


def native_backward(params: np.ndarray, width: int, height: int, grad_image: np.ndarray,
                    threads: int = 0) -> np.ndarray:
    params = np.ascontiguousarray(params, np.float32)
    grad_image = np.ascontiguousarray(grad_image, np.float32)
    out = np.asarray(_core.render_backward(params, width, height, grad_image, threads))
    assert out.shape == params.shape, out.shape
    assert out.dtype == np.float32
    return out


def check_forward(params: np.ndarray, width: int, height: int, threads: int = 0) -> np.ndarray:
    """Native vs reference image; returns the reference (float64)."""
    params = np.ascontiguousarray(params, np.float32)
    ref = render_reference(params, width, height).numpy()
    got = native_render(params, width, height, threads)
    assert np.all(np.isfinite(got)), "native render has non-finite pixels"
    err = np.abs(got - ref)
    bad = err > FWD_ATOL + FWD_RTOL * np.abs(ref)
    if bad.any():
        r, c, ch = np.argwhere(bad)[0]
        pytest.fail(f"forward mismatch at {bad.sum()} of {bad.size} values; max err {err.max():.3g}; "
                    f"first at row {r} col {c} ch {ch}: native {got[r, c, ch]!r} ref {ref[r, c, ch]!r}")
    return ref


def check_backward(params: np.ndarray, width: int, height: int, grad_image: np.ndarray | None = None,
                   seed: int = 0, threads: int = 0) -> np.ndarray:
    """Native vs reference gradient for a random (or given) upstream gradient; returns the native one."""
    params = np.ascontiguousarray(params, np.float32)
    channels = params.shape[1] - 5
    if grad_image is None:
        grad_image = np.random.default_rng(seed).normal(size=(height, width, channels)).astype(np.float32)
    ref = render_backward_reference(params, width, height, grad_image)
    scale = gradient_scale(params, width, height, grad_image)
    got = native_backward(params, width, height, grad_image, threads)
    assert np.all(np.isfinite(got)), "native gradient has non-finite entries"
    err = np.abs(got - ref)
    bad = err > GRAD_ATOL + GRAD_RTOL * scale
    if bad.any():
        i, k = np.argwhere(bad)[0]
        names = ["x", "y", "l11", "l21", "l22"] + [f"c{j}" for j in range(channels)]
        pytest.fail(f"gradient mismatch at {bad.sum()} of {bad.size} entries; first: Gaussian {i} "
                    f"d/d{names[k]}: native {got[i, k]!r} ref {ref[i, k]!r} (scale {scale[i, k]:.3g}); "
                    f"params row {params[i].tolist()}")
    return got






# --------------------------------------------------------------------------------- random scenes
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("width,height", [(37, 23), (16, 16), (50, 33)])
def test_random_mixed_scene(channels: int, width: int, height: int) -> None:
    params = random_scene(100 + channels + width, 60, width, height, channels)
    ref = check_forward(params, width, height)
    assert np.abs(ref).max() > 0.3
    check_backward(params, width, height, seed=channels)


@pytest.mark.parametrize("channels", [1, 3])
def test_tiny_subpixel_gaussians(channels: int) -> None:
    params = random_scene(7, 80, 37, 23, channels, sigma_range=(0.05, 0.6))
    ref = check_forward(params, 37, 23)
    assert np.count_nonzero(ref) > 0  # some land close enough to a pixel centre to show up
    check_backward(params, 37, 23, seed=1)


def test_tiny_gaussian_centred_on_pixel_shows_up() -> None:
    # sigma far below a pixel, but the centre sits exactly on pixel (5, 3)'s centre: w = 1 there.
    params = np.array([[5.5, 3.5, 1e-3, 0.0, 1e-3, 0.75],
                       [9.5, 2.5, 2e-6, 1e-6, 3e-6, -0.5]], np.float32)
    got = native_render(params, 12, 7)
    expected = np.zeros((7, 12, 1), np.float32)
    expected[3, 5, 0] = 0.75
    expected[2, 9, 0] = -0.5
    np.testing.assert_array_equal(got, expected)
    check_backward(params, 12, 7)


@pytest.mark.parametrize("channels", [1, 3])
def test_huge_gaussians_bigger_than_image(channels: int) -> None:
    params = random_scene(8, 12, 37, 23, channels, sigma_range=(30.0, 400.0), centre_margin=2.0)
    check_forward(params, 37, 23)
    check_backward(params, 37, 23, seed=2)


def test_extreme_sizes_and_positions_do_not_crash() -> None:
    params = np.array([[10.0, 10.0, 1e6, 0.0, 1e6, 0.25],      # covers everything, w ~ 1
                       [1e8, -1e8, 3.0, 0.0, 3.0, 1.0],        # far outside
                       [1e30, 1e30, 1e20, 0.0, 1e20, 1.0],     # far outside, astronomically wide
                       [-3e38, 5.0, 2.0, 1.0, 2.0, 1.0],       # near float32 max
                       [3e38, 3e38, 1.0, 0.0, 1.0, 1.0],       # centre near float32 max
                       [5.0, 5.0, 1.0, 3e38, 1.0, 1.0]],       # Sigma_yy overflows float32
                      np.float32)
    ref = check_forward(params, 37, 23)
    np.testing.assert_allclose(ref, 0.25, atol=1e-6)
    check_backward(params, 37, 23)


@pytest.mark.parametrize("row", [
    [12.0, 7.0, 1e20, 0.0, 1e20, 0.5],     # centred on the image, astronomically wide: w == 1
    [12.0, 7.0, 4e6, 0.0, 4e6, 0.5],       # 3 sigma = 1.2e7 px
    [2e7, 7.0, 1e8, 0.0, 1e8, 0.5],        # centre far outside, but wide enough to cover the image
])
def test_very_wide_gaussian_covers_the_image(row: list[float]) -> None:
    # The model has no size limit: a Gaussian far wider than the image adds ~c to every pixel.
    params = np.array([row], np.float32)
    ref = check_forward(params, 37, 23)
    assert ref.min() > 0.45
    check_backward(params, 37, 23)


def test_off_image_partly_and_fully_outside() -> None:
    w, h = 37, 23
    rows = [rotated_gaussian(-3.0, 11.0, 4.0, 2.0, 0.3, [0.9]),          # straddles the left edge
            rotated_gaussian(w + 2.5, 5.0, 3.0, 3.0, 0.0, [0.7]),        # straddles the right edge
            rotated_gaussian(18.0, -4.0, 6.0, 1.5, 1.1, [0.5]),          # straddles the top edge
            rotated_gaussian(20.0, h + 1.0, 2.0, 5.0, -0.7, [-0.4]),     # straddles the bottom edge
            rotated_gaussian(-1.0, -1.0, 2.0, 2.0, 0.0, [1.0]),          # corner
            rotated_gaussian(-20.0, 10.0, 3.0, 3.0, 0.0, [1.0]),         # fully outside (left)
            rotated_gaussian(10.0, h + 40.0, 5.0, 2.0, 0.5, [1.0]),      # fully outside (below)
            rotated_gaussian(w + 9.5, h + 9.5, 3.0, 3.0, 0.0, [1.0])]    # just outside: 3 sigma == 9 px
    params = np.array(rows, np.float32)
    check_forward(params, w, h)
    grad = check_backward(params, w, h)
    np.testing.assert_array_equal(grad[5:], 0.0)
    assert np.all(np.abs(grad[:5, :]).max(axis=1) > 0)


@pytest.mark.parametrize("channels", [1, 3])
def test_off_image_random(channels: int) -> None:
    params = random_scene(9, 60, 37, 23, channels, centre_margin=1.0)
    check_forward(params, 37, 23)
    check_backward(params, 37, 23, seed=3)


def test_thin_rotated_gaussians() -> None:
    # Strongly correlated covariances: the y extent is sqrt(l21^2 + l22^2), far above l22.
    rows = [rotated_gaussian(20.0, 16.0, 14.0, 0.5, math.pi / 4, [1.0, 0.2, -0.3]),
            rotated_gaussian(8.0, 25.0, 10.0, 0.7, -math.pi / 3, [0.3, 0.8, 0.1]),
            rotated_gaussian(30.0, 8.0, 9.0, 1.0, 1.4, [-0.2, 0.5, 0.9]),
            rotated_gaussian(40.0, 30.0, 0.6, 12.0, 0.2, [0.6, 0.6, 0.6])]
    params = np.array(rows, np.float32)
    check_forward(params, 48, 40)
    check_backward(params, 48, 40)


# ----------------------------------------------------------------------------------- tiles/binning
@pytest.mark.parametrize("width,height", [(1, 1), (17, 1), (1, 33), (15, 17), (33, 47), (37, 23)])
def test_image_sizes_not_multiple_of_16(width: int, height: int) -> None:
    params = random_scene(width * 100 + height, 30, width, height, 3, sigma_range=(0.5, 10.0))
    check_forward(params, width, height)
    check_backward(params, width, height)


def test_more_than_256_gaussians_on_one_tile() -> None:
    # 600 Gaussians centred inside tile (0, 0), each 1/600 bright: the sum at the centre is ~1 only if
    # every one of them is counted (a kernel that stops at 256 per tile gives ~0.43).
    rng = np.random.default_rng(12)
    n = 600
    xy = rng.uniform(7.0, 9.0, (n, 2))
    params = np.concatenate([xy, np.full((n, 1), 3.0), np.zeros((n, 1)), np.full((n, 1), 3.0),
                             np.full((n, 1), 1.0 / n)], axis=1).astype(np.float32)
    ref = check_forward(params, 40, 36)
    assert ref[7, 7, 0] > 0.85
    check_backward(params, 40, 36)


@pytest.mark.parametrize("channels", [1, 3])
def test_many_overlapping_random(channels: int) -> None:
    # 400 random Gaussians, all centred on the 16x16 tile at (16..32, 16..32), some spanning tiles.
    rng = np.random.default_rng(13 + channels)
    params = random_gaussians(rng, 400, 48, 48, channels, sigma_range=(0.8, 8.0))
    params[:, 0:2] = rng.uniform(16.0, 32.0, (400, 2))
    params = redraw_ambiguous(params, 48, 48, lambda k: np.concatenate(
        [rng.uniform(16.0, 32.0, (k, 2)), random_gaussians(rng, k, 48, 48, channels, (0.8, 8.0))[:, 2:]],
        axis=1).astype(np.float32))
    check_forward(params, 48, 48)
    check_backward(params, 48, 48, seed=4)


def test_gaussian_straddling_tile_corner() -> None:
    params = np.array([rotated_gaussian(16.0, 16.0, 5.0, 2.0, 0.4, [0.8]),
                       rotated_gaussian(32.1, 15.9, 1.0, 1.0, 0.0, [0.5])], np.float32)
    check_forward(params, 40, 40)
    check_backward(params, 40, 40)


# ------------------------------------------------------------------------------------ edge inputs
@pytest.mark.parametrize("channels", [1, 3])
def test_zero_gaussians(channels: int) -> None:
    params = np.zeros((0, 5 + channels), np.float32)
    np.testing.assert_array_equal(native_render(params, 37, 23), np.zeros((23, 37, channels)))
    grad = native_backward(params, 37, 23, np.ones((23, 37, channels), np.float32))
    assert grad.shape == (0, 5 + channels)


def _with(row: list[float], k: int, value: float) -> list[float]:
    row = list(row)
    row[k] = value
    return row


_GOOD = [rotated_gaussian(12.0, 9.0, 4.0, 2.0, 0.5, [0.8, -0.3, 0.5]),
         rotated_gaussian(25.0, 14.0, 3.0, 3.0, 0.0, [0.2, 0.9, 0.4])]


def _check_degenerate_rows(bad: list[list[float]]) -> None:
    """Good + bad rows: the image equals the good rows' alone, the bad rows get exactly 0 gradient."""
    params = np.array(_GOOD + bad, np.float32)
    ref = check_forward(params, 37, 23)
    np.testing.assert_allclose(ref, render_reference(params[:2], 37, 23).numpy(), atol=1e-15)
    grad = check_backward(params, 37, 23)
    np.testing.assert_array_equal(grad[2:], 0.0)
    # A degenerate row must not disturb the others.
    np.testing.assert_allclose(grad[:2], native_backward(params[:2], 37, 23, _grad_like(37, 23, 3)),
                               rtol=1e-6, atol=1e-9)


def test_degenerate_cholesky() -> None:
    _check_degenerate_rows([_with(_GOOD[0], k, v) for k, v in
                            [(2, 0.0), (4, 0.0), (2, 9e-7), (2, -9e-7), (4, -9e-7), (2, -0.0)]])


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_geometry(value: float) -> None:
    _check_degenerate_rows([_with(_GOOD[0], k, value) for k in range(5)] + [[value] * 8])


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_colour(value: float) -> None:
    # "Any non-finite parameter" includes the colour: such a Gaussian must not poison the image.
    _check_degenerate_rows([_with(_GOOD[0], k, value) for k in range(5, 8)])


def _grad_like(width: int, height: int, channels: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(height, width, channels)).astype(np.float32)


def test_nearly_degenerate_but_valid() -> None:
    # |l11|, |l22| just above 1e-6 are valid Gaussians (tiny and very thin ones).
    params = np.array([[4.5, 3.5, 1.5e-6, 0.0, 2.0, 0.6],      # zero-width in x, on pixel col 4
                       [9.5, 6.5, 3.0, 0.0, 1e-6, 0.4]], np.float32)  # float32(1e-6): not below it
    ref = check_forward(params, 16, 12)
    assert ref[3, 4, 0] == pytest.approx(0.6) and ref[5, 4, 0] == pytest.approx(0.6 * math.exp(-0.5))
    assert ref[6, 9, 0] == pytest.approx(0.4) and ref[6, 11, 0] == pytest.approx(0.4 * math.exp(-2 / 9))


def test_cutoff_is_hard() -> None:
    # sigma 1: pixels at 2.9 sigma get exp(-4.205), at 3.1 sigma get exactly 0 (and no gradient).
    # sigma 1 centred on pixel 0: pixel 3 is at q == 9 exactly (kept: only q > 9 is cut), 4 beyond.
    params = np.array([[0.5, 0.5, 1.0, 0.0, 1.0, 1.0]], np.float32)
    got = native_render(params, 6, 1)[0, :, 0]
    np.testing.assert_allclose(got[:4], np.exp(-0.5 * np.arange(4) ** 2), rtol=1e-6)
    assert got[4] == 0.0 and got[5] == 0.0
    narrow = np.array([[0.5, 0.5, 3.0 / 3.1, 0.0, 1.0, 1.0],
                       [0.5, 0.5, 3.0 / 2.9, 0.0, 1.0, 1.0]], np.float32)
    row = native_render(narrow[:1], 6, 1)[0, :, 0]
    assert row[3] == 0.0 and row[2] > 0.0
    row = native_render(narrow[1:], 6, 1)[0, :, 0]
    assert row[3] == pytest.approx(math.exp(-0.5 * 2.9 ** 2), rel=1e-5)
    g = np.zeros((1, 6, 1), np.float32)
    g[0, 3, 0] = 1.0
    np.testing.assert_array_equal(native_backward(narrow[:1], 6, 1, g), 0.0)
    assert np.abs(native_backward(narrow[1:], 6, 1, g)).max() > 0.0


def test_gradient_of_linear_colour_is_exact_weight_sum() -> None:
    # d/dc of sum(g * I) = sum_p g(p) w(p): with g = 1 it is the Gaussian's mass on the image.
    params = np.array([rotated_gaussian(18.3, 11.7, 3.0, 1.5, 0.8, [0.5, 0.1, 0.9])], np.float32)
    ref = render_reference(np.array([[*params[0, :5], 1.0]]), 37, 23).numpy().sum()
    grad = native_backward(params, 37, 23, np.ones((23, 37, 3), np.float32))
    np.testing.assert_allclose(grad[0, 5:], ref, rtol=1e-5)


# ---------------------------------------------------------------------------------------- threads
def test_threads_deterministic_and_consistent() -> None:
    width, height = 70, 45  # 5 x 3 tiles, the last ones partial
    params = random_scene(21, 250, width, height, 3, sigma_range=(0.5, 12.0))
    g = _grad_like(width, height, 3, seed=5)
    results = {}
    for threads in (1, 2, 3):
        img_a = native_render(params, width, height, threads)
        img_b = native_render(params, width, height, threads)
        np.testing.assert_array_equal(img_a, img_b, err_msg=f"render not deterministic at {threads} threads")
        grad_a = native_backward(params, width, height, g, threads)
        grad_b = native_backward(params, width, height, g, threads)
        np.testing.assert_array_equal(grad_a, grad_b, err_msg=f"backward not deterministic at {threads} threads")
        results[threads] = (img_a, grad_a)
    img0, grad0 = native_render(params, width, height, 0), native_backward(params, width, height, g, 0)
    scale = gradient_scale(params, width, height, g)
    for img, grad in list(results.values()) + [(img0, grad0)]:
        # Different thread counts may sum in a different order: equal up to float32 rounding.
        np.testing.assert_allclose(img, results[1][0], atol=1e-6, rtol=1e-6)
        assert np.all(np.abs(grad - results[1][1]) <= GRAD_ATOL + 2 * GRAD_RTOL * scale)
    check_forward(params, width, height, threads=2)
    check_backward(params, width, height, g, threads=2)


# ------------------------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize("make", [
    lambda: (np.zeros(8, np.float32), 8, 8),                   # 1-D params
    lambda: (np.zeros((3, 7), np.float32), 8, 8),              # C = 2
    lambda: (np.zeros((3, 5), np.float32), 8, 8),              # no colour
    lambda: (np.zeros((3, 8), np.float32), 0, 8),              # empty image
    lambda: (np.zeros((3, 8), np.float32), 8, -1),             # negative size
])
def test_bad_render_inputs_raise_value_error(make) -> None:
    params, width, height = make()
    with pytest.raises(ValueError):
        _core.render(params, width, height)


def test_bad_grad_image_raises_value_error() -> None:
    params = np.zeros((2, 8), np.float32)
    params[:, 2] = params[:, 4] = 1.0
    for shape in [(8, 9, 3), (9, 8, 3), (9, 9, 1), (9, 9)]:
        with pytest.raises(ValueError):
            _core.render_backward(params, 9, 9, np.zeros(shape, np.float32))
