"""One forward/gradient suite for every rasteriser backend present (tests/backends.py): each CPU ISA
build, the CUDA kernels under the emulator, and CUDA on a GPU where there is one. Every backend is held
to the float64 reference of reference.py and, within twice those bounds, to the portable CPU core.

Random scenes redraw Gaussians whose 3-sigma ellipse passes within 1e-4 (relative) of a pixel centre,
where float32 and float64 may legitimately disagree on the hard cutoff. Backend-specific behaviour
(threads, ISA dispatch, CUDA tile-list batches, fitting loops) is tested in the backends' own files.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

try:
    from backends import (GOOD_ROWS, Backend, EmulatedCuda, assert_forward_close, build_cuda_emulator,
                          check_backend, cpu_module, cuda_module, grad_like, module_backend, with_value)
    from reference import random_gaussians, random_scene, redraw_ambiguous, render_reference, rotated_gaussian
except ImportError:  # tests/ imported as a package
    from tests.backends import (GOOD_ROWS, Backend, EmulatedCuda, assert_forward_close, build_cuda_emulator,
                                check_backend, cpu_module, cuda_module, grad_like, module_backend, with_value)
    from tests.reference import (random_gaussians, random_scene, redraw_ambiguous, render_reference,
                                 rotated_gaussian)



def _cuda_present() -> bool:
    try:
        from splatcodec import _core_cuda
    except ImportError:
        return False
    return _core_cuda.device_count() > 0


# CUDA on a GPU joins only where it is present (tests/test_cuda.py says once why it is not); every
# other backend is always a parameter, skipped with its reason where this machine lacks it.
BACKENDS = ["cpu-baseline", "cpu-x86-64-v3", "cpu-x86-64-v4", "cuda-emulator"] + (["cuda"] if _cuda_present() else [])


@pytest.fixture(scope="session")
def cuda_emulator(tmp_path_factory: pytest.TempPathFactory) -> EmulatedCuda:
    folder = tmp_path_factory.mktemp("cuda_emu")
    return EmulatedCuda(build_cuda_emulator(folder), folder)


@pytest.fixture(scope="session")
def baseline() -> Backend:
    return module_backend("cpu-baseline", cpu_module("baseline"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    name = request.param
    if name.startswith("cpu-"):
        return module_backend(name, cpu_module(name[4:]))
    if name == "cuda-emulator":
        return request.getfixturevalue("cuda_emulator").backend()
    return module_backend(name, cuda_module())


@pytest.fixture()
def check(backend: Backend, baseline: Backend):
    """``check(params, width, height, seed=0)``: the backend against the reference and the baseline core."""
    def run(params: np.ndarray, width: int, height: int, seed: int = 0):
        return check_backend(backend, params, width, height, seed=seed, against=baseline)

    return run


# --------------------------------------------------------------------------------- random scenes
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("width,height", [(37, 23), (16, 16), (50, 33), (1, 1), (17, 1), (1, 33), (15, 17),
                                          (33, 47), (70, 45)])
def test_random_scene(check, channels: int, width: int, height: int) -> None:
    params = random_scene(100 + channels + width * 7 + height, 60, width, height, channels)
    ref, _, _ = check(params, width, height, seed=channels)
    if width * height > 100:
        assert np.abs(ref).max() > 0.3


@pytest.mark.parametrize("channels", [1, 3])
def test_tiny_subpixel_gaussians(check, channels: int) -> None:
    ref, _, _ = check(random_scene(7, 80, 37, 23, channels, sigma_range=(0.05, 0.6)), 37, 23, seed=1)
    assert np.count_nonzero(ref) > 0  # some land close enough to a pixel centre to show up


def test_tiny_gaussian_centred_on_pixel_shows_up(check, backend: Backend) -> None:
    # sigma far below a pixel, but the centre sits exactly on pixel (5, 3)'s centre: w = 1 there.
    params = np.array([[5.5, 3.5, 1e-3, 0.0, 1e-3, 0.75],
                       [9.5, 2.5, 2e-6, 1e-6, 3e-6, -0.5]], np.float32)
    expected = np.zeros((7, 12, 1), np.float32)
    expected[3, 5, 0] = 0.75
    expected[2, 9, 0] = -0.5
    np.testing.assert_array_equal(backend.render(params, 12, 7), expected)
    check(params, 12, 7)


@pytest.mark.parametrize("channels", [1, 3])
def test_huge_gaussians_bigger_than_image(check, channels: int) -> None:
    check(random_scene(8, 12, 37, 23, channels, sigma_range=(30.0, 400.0), centre_margin=2.0), 37, 23, seed=2)


def test_extreme_sizes_and_positions(check) -> None:
    params = np.array([[10.0, 10.0, 1e6, 0.0, 1e6, 0.25],      # covers everything, w ~ 1
                       [1e8, -1e8, 3.0, 0.0, 3.0, 1.0],        # far outside
                       [1e30, 1e30, 1e20, 0.0, 1e20, 1.0],     # far outside, astronomically wide
                       [-3e38, 5.0, 2.0, 1.0, 2.0, 1.0],       # near float32 max
                       [3e38, 3e38, 1.0, 0.0, 1.0, 1.0],       # centre near float32 max
                       [5.0, 5.0, 1.0, 3e38, 1.0, 1.0]],       # Sigma_yy overflows float32
                      np.float32)
    ref, img, _ = check(params, 37, 23)
    np.testing.assert_allclose(ref, 0.25, atol=1e-6)
    np.testing.assert_allclose(img, 0.25, atol=1e-6)


@pytest.mark.parametrize("row", [
    [12.0, 7.0, 1e20, 0.0, 1e20, 0.5],     # centred on the image, astronomically wide: w == 1
    [12.0, 7.0, 4e6, 0.0, 4e6, 0.5],       # 3 sigma = 1.2e7 px
    [2e7, 7.0, 1e8, 0.0, 1e8, 0.5],        # centre far outside, but wide enough to cover the image
])
def test_very_wide_gaussian_covers_the_image(check, row: list[float]) -> None:
    # The model has no size limit: a Gaussian far wider than the image adds ~c to every pixel (and to
    # every tile: the box comes from gaussian_math.h's prepare_gaussian, shared by all backends).
    ref, _, _ = check(np.array([row], np.float32), 37, 23)
    assert ref.min() > 0.45


def test_off_image_partly_and_fully_outside(check) -> None:
    w, h = 37, 23
    rows = [rotated_gaussian(-3.0, 11.0, 4.0, 2.0, 0.3, [0.9]),          # straddles the left edge
            rotated_gaussian(w + 2.5, 5.0, 3.0, 3.0, 0.0, [0.7]),        # straddles the right edge
            rotated_gaussian(18.0, -4.0, 6.0, 1.5, 1.1, [0.5]),          # straddles the top edge
            rotated_gaussian(20.0, h + 1.0, 2.0, 5.0, -0.7, [-0.4]),     # straddles the bottom edge
            rotated_gaussian(-1.0, -1.0, 2.0, 2.0, 0.0, [1.0]),          # corner
            rotated_gaussian(-20.0, 10.0, 3.0, 3.0, 0.0, [1.0]),         # fully outside (left)
            rotated_gaussian(10.0, h + 40.0, 5.0, 2.0, 0.5, [1.0]),      # fully outside (below)
            rotated_gaussian(w + 9.5, h + 9.5, 3.0, 3.0, 0.0, [1.0])]    # just outside: 3 sigma == 9 px
    _, _, grad = check(np.array(rows, np.float32), w, h)
    np.testing.assert_array_equal(grad[5:], 0.0)
    assert np.all(np.abs(grad[:5, :]).max(axis=1) > 0)


@pytest.mark.parametrize("channels", [1, 3])
def test_off_image_random(check, channels: int) -> None:
    check(random_scene(9, 60, 37, 23, channels, centre_margin=1.0), 37, 23, seed=3)


def test_thin_rotated_gaussians(check) -> None:
    # Strongly correlated covariances: the y extent is sqrt(l21^2 + l22^2), far above l22.
    rows = [rotated_gaussian(20.0, 16.0, 14.0, 0.5, math.pi / 4, [1.0, 0.2, -0.3]),
            rotated_gaussian(8.0, 25.0, 10.0, 0.7, -math.pi / 3, [0.3, 0.8, 0.1]),
            rotated_gaussian(30.0, 8.0, 9.0, 1.0, 1.4, [-0.2, 0.5, 0.9]),
            rotated_gaussian(40.0, 30.0, 0.6, 12.0, 0.2, [0.6, 0.6, 0.6])]
    check(np.array(rows, np.float32), 48, 40)


def thin_gaussians(rng: np.random.Generator, n: int, width: int, height: int,
                   across: tuple[float, float] = (0.1, 2.0)) -> np.ndarray:
    """Long thin rotated Gaussians (3 channels): sigma 1-40 px along, ``across`` px across."""
    lo, hi = math.log(across[0]), math.log(across[1])
    rows = [rotated_gaussian(rng.uniform(0, width), rng.uniform(0, height), math.exp(rng.uniform(0.0, 3.7)),
                             math.exp(rng.uniform(lo, hi)), rng.uniform(0.0, math.pi),
                             list(rng.uniform(-0.5, 1.0, 3))) for _ in range(n)]
    return np.array(rows, np.float32)


def test_thin_gaussians_across_many_tiles(check) -> None:
    # The CPU core visits, per tile, only the rows the ellipse reaches within that tile's columns
    # (strip_row_span in gaussian_math.h): diagonal, thin Gaussians cross many tiles whose box rows
    # they mostly miss. A span cut by even one row drops pixels the reference has.
    rng = np.random.default_rng(41)
    width, height = 96, 80
    params = redraw_ambiguous(thin_gaussians(rng, 120, width, height), width, height,
                              lambda k: thin_gaussians(rng, k, width, height), rel=1e-3)
    ref, _, _ = check(params, width, height, seed=4)
    assert np.count_nonzero(ref) > 0.3 * ref.size


def needle_gaussians(rng: np.random.Generator, n: int, width: int, height: int) -> np.ndarray:
    """Sheared needles: |l21| 600-1500 times l22 (0.01-0.03 px), 3 channels."""
    l22 = rng.uniform(0.01, 0.03, n)
    geometry = [rng.uniform(0, width, n), rng.uniform(0, height, n),
                rng.uniform(1.0, 10.0, n) * rng.choice([-1, 1], n),
                l22 * rng.uniform(600.0, 1500.0, n) * rng.choice([-1, 1], n), l22]
    return np.column_stack(geometry + [rng.uniform(-0.5, 1.0, (n, 3))]).astype(np.float32)


def test_needle_gaussians_keep_their_box_rows(backend: Backend) -> None:
    # Shears beyond kRowSpanMaxShear (|l21| > 500 |l22|) keep the box's rows (strip_row_span): their
    # renders match the reference within 10x the usual tolerance (float32 q of such needles is that
    # ill-conditioned on every backend, the CUDA kernels' too), far below a dropped pixel's |c| exp(-4.5).
    rng = np.random.default_rng(42)
    width, height = 96, 80
    params = redraw_ambiguous(needle_gaussians(rng, 80, width, height), width, height,
                              lambda k: needle_gaussians(rng, k, width, height), rel=1e-3)
    ref = render_reference(params, width, height).numpy()
    assert np.count_nonzero(ref) > 200
    assert_forward_close(backend.render(params, width, height), ref, 10.0, f"{backend.name} vs reference")


# ----------------------------------------------------------------------------------- tiles/binning
def test_more_than_256_gaussians_on_one_tile(check) -> None:
    # 600 Gaussians centred inside tile (0, 0), each 1/600 bright: the sum at the centre is ~1 only if
    # every one of them is counted (a kernel that stops at 256 per tile gives ~0.43).
    rng = np.random.default_rng(12)
    n = 600
    xy = rng.uniform(7.0, 9.0, (n, 2))
    params = np.concatenate([xy, np.full((n, 1), 3.0), np.zeros((n, 1)), np.full((n, 1), 3.0),
                             np.full((n, 1), 1.0 / n)], axis=1).astype(np.float32)
    _, img, _ = check(params, 40, 36)
    assert img[7, 7, 0] > 0.85


@pytest.mark.parametrize("channels", [1, 3])
def test_many_overlapping_random(check, channels: int) -> None:
    # 400 random Gaussians, all centred on the 16x16 tile at (16..32, 16..32), some spanning tiles.
    rng = np.random.default_rng(13 + channels)
    params = random_gaussians(rng, 400, 48, 48, channels, sigma_range=(0.8, 8.0))
    params[:, 0:2] = rng.uniform(16.0, 32.0, (400, 2))
    params = redraw_ambiguous(params, 48, 48, lambda k: np.concatenate(
        [rng.uniform(16.0, 32.0, (k, 2)), random_gaussians(rng, k, 48, 48, channels, (0.8, 8.0))[:, 2:]],
        axis=1).astype(np.float32))
    check(params, 48, 48, seed=4)


def test_gaussian_straddling_tile_corner(check) -> None:
    params = np.array([rotated_gaussian(16.0, 16.0, 5.0, 2.0, 0.4, [0.8]),
                       rotated_gaussian(32.1, 15.9, 1.0, 1.0, 0.0, [0.5])], np.float32)
    check(params, 40, 40)


# ------------------------------------------------------------------------------------ edge inputs
@pytest.mark.parametrize("channels", [1, 3])
def test_zero_gaussians(backend: Backend, channels: int) -> None:
    params = np.zeros((0, 5 + channels), np.float32)
    np.testing.assert_array_equal(backend.render(params, 37, 23), np.zeros((23, 37, channels)))
    assert backend.backward(params, 37, 23, np.ones((23, 37, channels), np.float32)).shape == (0, 5 + channels)


def _check_degenerate_rows(backend: Backend, check, bad: list[list[float]]) -> None:
    """Good + bad rows: the image equals the good rows' alone, the bad rows get exactly 0 gradient and
    leave the good rows' gradient as it is without them."""
    params = np.array(GOOD_ROWS + bad, np.float32)
    ref, _, grad = check(params, 37, 23)
    np.testing.assert_allclose(ref, render_reference(params[:2], 37, 23).numpy(), atol=1e-15)
    np.testing.assert_array_equal(grad[2:], 0.0)
    np.testing.assert_allclose(grad[:2], backend.backward(params[:2], 37, 23, grad_like(37, 23, 3)),
                               rtol=1e-6, atol=1e-9)


def test_degenerate_cholesky(backend: Backend, check) -> None:
    _check_degenerate_rows(backend, check, [with_value(GOOD_ROWS[0], k, v) for k, v in
                                            [(2, 0.0), (4, 0.0), (2, 9e-7), (2, -9e-7), (4, -9e-7), (2, -0.0)]])


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_geometry(backend: Backend, check, value: float) -> None:
    _check_degenerate_rows(backend, check, [with_value(GOOD_ROWS[0], k, value) for k in range(5)] + [[value] * 8])


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_colour(backend: Backend, check, value: float) -> None:
    # "Any non-finite parameter" includes the colour: such a Gaussian must not poison the image.
    _check_degenerate_rows(backend, check, [with_value(GOOD_ROWS[0], k, value) for k in range(5, 8)])


def test_nearly_degenerate_but_valid(check) -> None:
    # |l11|, |l22| just above 1e-6 are valid Gaussians (tiny and very thin ones).
    params = np.array([[4.5, 3.5, 1.5e-6, 0.0, 2.0, 0.6],      # zero-width in x, on pixel col 4
                       [9.5, 6.5, 3.0, 0.0, 1e-6, 0.4]], np.float32)  # float32(1e-6): not below it
    ref, _, _ = check(params, 16, 12)
    assert ref[3, 4, 0] == pytest.approx(0.6) and ref[5, 4, 0] == pytest.approx(0.6 * math.exp(-0.5))
    assert ref[6, 9, 0] == pytest.approx(0.4) and ref[6, 11, 0] == pytest.approx(0.4 * math.exp(-2 / 9))


def test_cutoff_is_hard(backend: Backend) -> None:
    # sigma 1 centred on pixel 0: pixel 3 is at q == 9 exactly (kept: only q > 9 is cut), 4 beyond;
    # at 3.1 sigma pixel 3 gets exactly 0 and no gradient, at 2.9 sigma exp(-4.205).
    got = backend.render(np.array([[0.5, 0.5, 1.0, 0.0, 1.0, 1.0]], np.float32), 6, 1)[0, :, 0]
    np.testing.assert_allclose(got[:4], np.exp(-0.5 * np.arange(4) ** 2), rtol=1e-6)
    assert got[4] == 0.0 and got[5] == 0.0
    narrow = np.array([[0.5, 0.5, 3.0 / 3.1, 0.0, 1.0, 1.0],
                       [0.5, 0.5, 3.0 / 2.9, 0.0, 1.0, 1.0]], np.float32)
    row = backend.render(narrow[:1], 6, 1)[0, :, 0]
    assert row[3] == 0.0 and row[2] > 0.0
    assert backend.render(narrow[1:], 6, 1)[0, 3, 0] == pytest.approx(math.exp(-0.5 * 2.9 ** 2), rel=1e-5)
    g = np.zeros((1, 6, 1), np.float32)
    g[0, 3, 0] = 1.0
    np.testing.assert_array_equal(backend.backward(narrow[:1], 6, 1, g), 0.0)
    assert np.abs(backend.backward(narrow[1:], 6, 1, g)).max() > 0.0


def test_gradient_of_linear_colour_is_exact_weight_sum(backend: Backend) -> None:
    # d/dc of sum(g * I) = sum_p g(p) w(p): with g = 1 it is the Gaussian's mass on the image.
    params = np.array([rotated_gaussian(18.3, 11.7, 3.0, 1.5, 0.8, [0.5, 0.1, 0.9])], np.float32)
    mass = render_reference(np.array([[*params[0, :5], 1.0]]), 37, 23).numpy().sum()
    grad = backend.backward(params, 37, 23, np.ones((23, 37, 3), np.float32))
    np.testing.assert_allclose(grad[0, 5:], mass, rtol=1e-5)
