"""The CUDA path (``splatcodec._core_cuda``) against the CPU core (``splatcodec._core``) and the float64
reference in ``reference.py``: forward and gradients on random and hand-built scenes (> 256 Gaussians
on a tile included), degenerate input, determinism, and a small fit of a Kodak crop.

Skipped unless ``splatcodec._core_cuda`` imports and sees a GPU (``device_count() > 0``); build it with
``SPLATCODEC_CUDA=1 pip install -e .`` (see docs/cuda.md).

Tolerances are those of test_rasterizer.py: forward |gpu - x| <= 1e-5 + 1e-5 |x|; gradients
|gpu - x| <= 1e-7 + rtol * S with S = reference.gradient_scale (the scale of any float32 rounding error).
GPU and CPU evaluate the same formulas (gaussian_math.h) but may differ by rounding (FMA contraction,
summation order), so GPU vs CPU uses twice the reference tolerance.
"""
from __future__ import annotations

import math
from pathlib import Path

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

try:
    from splatcodec import _core_cuda
except ImportError as exc:  # not built (SPLATCODEC_CUDA=1 at install time)
    pytest.skip(f"splatcodec._core_cuda is not built ({exc})", allow_module_level=True)
if _core_cuda.device_count() <= 0:
    pytest.skip("splatcodec._core_cuda is built but no CUDA device is available", allow_module_level=True)
try:
    from splatcodec import _core
except ImportError as exc:
    pytest.skip(f"splatcodec._core (the CPU reference for these tests) is not built ({exc})",
                allow_module_level=True)

FWD_ATOL = 1e-5
FWD_RTOL = 1e-5
GRAD_ATOL = 1e-7
GRAD_RTOL = 3e-5
KODAK = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "kodak"


# ----------------------------------------------------------------------------------------- helpers
def gpu_render(params: np.ndarray, width: int, height: int) -> np.ndarray:
    params = np.ascontiguousarray(params, np.float32)
    out = np.asarray(_core_cuda.render(params, width, height))
    assert out.shape == (height, width, params.shape[1] - 5) and out.dtype == np.float32
    return out


def gpu_backward(params: np.ndarray, width: int, height: int, grad_image: np.ndarray) -> np.ndarray:
    params = np.ascontiguousarray(params, np.float32)
    out = np.asarray(_core_cuda.render_backward(params, width, height,
                                                np.ascontiguousarray(grad_image, np.float32)))
    assert out.shape == params.shape and out.dtype == np.float32
    return out


def cpu_render(params: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(_core.render(np.ascontiguousarray(params, np.float32), width, height))


def cpu_backward(params: np.ndarray, width: int, height: int, grad_image: np.ndarray) -> np.ndarray:
    return np.asarray(_core.render_backward(np.ascontiguousarray(params, np.float32), width, height,
                                            np.ascontiguousarray(grad_image, np.float32)))


def grad_like(width: int, height: int, channels: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(height, width, channels)).astype(np.float32)


def assert_forward_close(got: np.ndarray, want: np.ndarray, factor: float = 1.0, what: str = "") -> None:
    assert np.all(np.isfinite(got)), f"{what}: non-finite pixels"
    err = np.abs(got - want)
    bad = err > factor * (FWD_ATOL + FWD_RTOL * np.abs(want))
    if bad.any():
        r, c, ch = np.argwhere(bad)[0]
        pytest.fail(f"{what}: forward mismatch at {bad.sum()} of {bad.size} values, max err {err.max():.3g}; "
                    f"first at row {r} col {c} ch {ch}: gpu {got[r, c, ch]!r} vs {want[r, c, ch]!r}")


def assert_grad_close(got: np.ndarray, want: np.ndarray, scale: np.ndarray, factor: float = 1.0,
                      what: str = "") -> None:
    assert np.all(np.isfinite(got)), f"{what}: non-finite gradient"
    err = np.abs(got - want)
    bad = err > factor * (GRAD_ATOL + GRAD_RTOL * scale)
    if bad.any():
        i, k = np.argwhere(bad)[0]
        pytest.fail(f"{what}: gradient mismatch at {bad.sum()} of {bad.size} entries; first: Gaussian {i} "
                    f"param {k}: gpu {got[i, k]!r} vs {want[i, k]!r} (scale {scale[i, k]:.3g})")


def check_all(params: np.ndarray, width: int, height: int, seed: int = 0, reference: bool = True) -> None:
    """GPU forward + backward vs the CPU core, and vs the float64 reference if ``reference``."""
    params = np.ascontiguousarray(params, np.float32)
    channels = params.shape[1] - 5
    g = grad_like(width, height, channels, seed)
    img = gpu_render(params, width, height)
    assert_forward_close(img, cpu_render(params, width, height), 2.0, "gpu vs cpu")
    grad = gpu_backward(params, width, height, g)
    scale = gradient_scale(params, width, height, g)
    assert_grad_close(grad, cpu_backward(params, width, height, g), scale, 2.0, "gpu vs cpu")
    if reference:
        assert_forward_close(img, render_reference(params, width, height).numpy(), 1.0, "gpu vs reference")
        assert_grad_close(grad, render_backward_reference(params, width, height, g), scale, 1.0,
                          "gpu vs reference")






# --------------------------------------------------------------------------------- random scenes
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("width,height", [(37, 23), (16, 16), (50, 33), (1, 1), (17, 1), (1, 33), (70, 45)])
def test_random_scene_matches_cpu_and_reference(channels: int, width: int, height: int) -> None:
    check_all(random_scene(200 + channels + width * 7 + height, 80, width, height, channels), width, height,
              seed=channels)


@pytest.mark.parametrize("channels", [1, 3])
def test_tiny_and_huge_gaussians(channels: int) -> None:
    check_all(random_scene(31, 80, 37, 23, channels, sigma_range=(0.05, 0.6)), 37, 23, seed=1)
    check_all(random_scene(32, 12, 37, 23, channels, sigma_range=(30.0, 400.0), centre_margin=2.0), 37, 23, seed=2)


def test_off_image_and_thin_rotated() -> None:
    check_all(random_scene(33, 60, 37, 23, 3, centre_margin=1.0), 37, 23, seed=3)
    rows = [rotated_gaussian(20.0, 16.0, 14.0, 0.5, math.pi / 4, [1.0, 0.2, -0.3]),
            rotated_gaussian(8.0, 25.0, 10.0, 0.7, -math.pi / 3, [0.3, 0.8, 0.1]),
            rotated_gaussian(40.0, 30.0, 0.6, 12.0, 0.2, [0.6, 0.6, 0.6]),
            rotated_gaussian(-3.0, 11.0, 4.0, 2.0, 0.3, [0.9, 0.1, 0.1]),
            rotated_gaussian(16.0, 16.0, 5.0, 2.0, 0.4, [0.8, 0.5, 0.2])]
    check_all(np.array(rows, np.float32), 48, 40)


# ------------------------------------------------------------------------------ crowded tiles
def test_more_than_256_gaussians_on_one_tile() -> None:
    # As in test_rasterizer: 600 Gaussians on tile (0, 0), each 1/600 bright; a kernel that stops at
    # 256 per tile gives ~0.43 at the centre instead of ~1.
    rng = np.random.default_rng(12)
    n = 600
    xy = rng.uniform(7.0, 9.0, (n, 2))
    params = np.concatenate([xy, np.full((n, 1), 3.0), np.zeros((n, 1)), np.full((n, 1), 3.0),
                             np.full((n, 1), 1.0 / n)], axis=1).astype(np.float32)
    img = gpu_render(params, 40, 36)
    assert img[7, 7, 0] > 0.85
    check_all(params, 40, 36)


@pytest.mark.parametrize("n", [63, 64, 65, 255, 256, 257, 1000])
def test_batch_boundaries_of_the_tile_list(n: int) -> None:
    # The kernels stage a tile's list in shared-memory batches (64 in the backward pass, 256 forward):
    # counts around those sizes, all Gaussians on one 16x16 tile (plus spill-over into neighbours).
    rng = np.random.default_rng(1000 + n)
    params = random_gaussians(rng, n, 48, 48, 3, sigma_range=(0.8, 6.0))
    params[:, 0:2] = rng.uniform(16.0, 32.0, (n, 2))
    params = redraw_ambiguous(params, 48, 48, lambda k: np.concatenate(
        [rng.uniform(16.0, 32.0, (k, 2)), random_gaussians(rng, k, 48, 48, 3, (0.8, 6.0))[:, 2:]],
        axis=1).astype(np.float32))
    check_all(params, 48, 48, seed=n, reference=n <= 300)


def test_larger_scene_matches_cpu() -> None:
    # Many tiles and entries (no dense reference: too big); GPU vs CPU with the gradient scale bound.
    width, height = 160, 112
    params = random_scene(41, 1500, width, height, 3, sigma_range=(0.5, 15.0))
    check_all(params, width, height, seed=5, reference=False)


# ------------------------------------------------------------------------------------ edge inputs
@pytest.mark.parametrize("channels", [1, 3])
def test_zero_gaussians(channels: int) -> None:
    params = np.zeros((0, 5 + channels), np.float32)
    np.testing.assert_array_equal(gpu_render(params, 37, 23), 0.0)
    assert gpu_backward(params, 37, 23, np.ones((23, 37, channels), np.float32)).shape == (0, 5 + channels)


def test_extreme_sizes_and_positions() -> None:
    params = np.array([[10.0, 10.0, 1e6, 0.0, 1e6, 0.25],      # covers everything, w ~ 1
                       [1e8, -1e8, 3.0, 0.0, 3.0, 1.0],        # far outside
                       [1e30, 1e30, 1e20, 0.0, 1e20, 1.0],     # far outside, astronomically wide
                       [-3e38, 5.0, 2.0, 1.0, 2.0, 1.0],       # near float32 max
                       [3e38, 3e38, 1.0, 0.0, 1.0, 1.0],       # centre near float32 max
                       [5.0, 5.0, 1.0, 3e38, 1.0, 1.0]],       # Sigma_yy overflows float32
                      np.float32)
    np.testing.assert_allclose(gpu_render(params, 37, 23), 0.25, atol=1e-6)
    check_all(params, 37, 23)


@pytest.mark.parametrize("row", [
    [12.0, 7.0, 1e20, 0.0, 1e20, 0.5],     # centred on the image, astronomically wide: w == 1
    [12.0, 7.0, 4e6, 0.0, 4e6, 0.5],       # 3 sigma = 1.2e7 px
    [2e7, 7.0, 1e8, 0.0, 1e8, 0.5],        # centre far outside, but wide enough to cover the image
])
def test_very_wide_gaussian_covers_the_image(row: list[float]) -> None:
    # The model has no size limit (test_rasterizer.py has the same case for the CPU core); the box comes
    # from gaussian_math.h's prepare_gaussian, shared with the CPU. Compared with the reference only.
    params = np.array([row], np.float32)
    img = gpu_render(params, 37, 23)
    assert_forward_close(img, render_reference(params, 37, 23).numpy(), 1.0, "gpu vs reference")
    assert img.min() > 0.45
    g = grad_like(37, 23, 1)
    assert_grad_close(gpu_backward(params, 37, 23, g), render_backward_reference(params, 37, 23, g),
                      gradient_scale(params, 37, 23, g), 1.0, "gpu vs reference")


_GOOD = [rotated_gaussian(12.0, 9.0, 4.0, 2.0, 0.5, [0.8, -0.3, 0.5]),
         rotated_gaussian(25.0, 14.0, 3.0, 3.0, 0.0, [0.2, 0.9, 0.4])]


def _with(row: list[float], k: int, value: float) -> list[float]:
    row = list(row)
    row[k] = value
    return row


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0.0, 9e-7])
def test_degenerate_and_non_finite_rows_contribute_nothing(value: float) -> None:
    # Geometry: degenerate/non-finite Cholesky or centre; colour: non-finite (the model says "any
    # non-finite parameter contributes nothing"; compared with the reference, not the CPU core).
    bad = [_with(_GOOD[0], k, value) for k in ((2, 4) if math.isfinite(value) else range(8))]
    params = np.array(_GOOD + bad, np.float32)
    g = grad_like(37, 23, 3)
    img = gpu_render(params, 37, 23)
    good_img = gpu_render(params[:2], 37, 23)
    np.testing.assert_array_equal(img, good_img)
    assert_forward_close(img, render_reference(params[:2], 37, 23).numpy(), 1.0, "gpu vs reference")
    grad = gpu_backward(params, 37, 23, g)
    np.testing.assert_array_equal(grad[2:], 0.0)
    np.testing.assert_array_equal(grad[:2], gpu_backward(params[:2], 37, 23, g))


def test_cutoff_is_hard() -> None:
    params = np.array([[0.5, 0.5, 1.0, 0.0, 1.0, 1.0]], np.float32)
    got = gpu_render(params, 6, 1)[0, :, 0]
    np.testing.assert_allclose(got[:4], np.exp(-0.5 * np.arange(4) ** 2), rtol=1e-6)
    assert got[4] == 0.0 and got[5] == 0.0
    narrow = np.array([[0.5, 0.5, 3.0 / 3.1, 0.0, 1.0, 1.0]], np.float32)  # pixel 3 at 3.1 sigma
    assert gpu_render(narrow, 6, 1)[0, 3, 0] == 0.0
    g = np.zeros((1, 6, 1), np.float32)
    g[0, 3, 0] = 1.0
    np.testing.assert_array_equal(gpu_backward(narrow, 6, 1, g), 0.0)


def test_deterministic() -> None:
    width, height = 70, 45
    params = random_scene(21, 250, width, height, 3, sigma_range=(0.5, 12.0))
    g = grad_like(width, height, 3, seed=5)
    np.testing.assert_array_equal(gpu_render(params, width, height), gpu_render(params, width, height))
    np.testing.assert_array_equal(gpu_backward(params, width, height, g), gpu_backward(params, width, height, g))


@pytest.mark.parametrize("make", [
    lambda: (np.zeros(8, np.float32), 8, 8),
    lambda: (np.zeros((3, 7), np.float32), 8, 8),
    lambda: (np.zeros((3, 8), np.float32), 0, 8),
    lambda: (np.zeros((3, 8), np.float32), 8, -1),
])
def test_bad_render_inputs_raise_value_error(make) -> None:
    params, width, height = make()
    with pytest.raises(ValueError):
        _core_cuda.render(params, width, height)
    p = np.zeros((2, 8), np.float32)
    with pytest.raises(ValueError):
        _core_cuda.render_backward(p, 9, 9, np.zeros((9, 8, 3), np.float32))


# ------------------------------------------------------------------------------------------ fitting
def _kodak_crop() -> np.ndarray:
    path = KODAK / "kodim23.png"
    if not path.is_file():
        pytest.fail(f"test data missing: {path}")
    from PIL import Image

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    return np.ascontiguousarray(rgb[150:278, 300:428], np.float32) / 255.0  # the crop of conftest.py


def _config(**kw) -> "_core.FitConfig":
    c = _core.FitConfig()
    c.num_gaussians = 600
    c.iterations = 250
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def test_fit_kodak_crop_close_to_cpu() -> None:
    image = _kodak_crop()
    config = _config()
    (cpu_params, cpu_stats), = _core.fit_batch([image], [config], [None])
    (gpu_params, gpu_stats), = _core_cuda.fit_batch([image], [config], [None])
    assert gpu_stats["iterations"] == 250 and gpu_params.shape == cpu_params.shape == (600, 8)
    assert gpu_stats["gaussians_final"] == 600 and gpu_stats["gaussians_pruned"] == 0
    # The CPU reaches ~32.5 dB here (test_fit.py); the GPU runs the same steps up to rounding.
    assert gpu_stats["final_psnr"] > 31.0, gpu_stats["final_psnr"]
    assert abs(gpu_stats["final_psnr"] - cpu_stats["final_psnr"]) < 0.5, (gpu_stats, cpu_stats)
    assert gpu_stats["trace_psnr"][-1] > gpu_stats["trace_psnr"][0] + 3.0
    # The reported PSNR is that of the returned Gaussians, rendered by either backend.
    render = cpu_render(gpu_params, 128, 128)
    mse = float(np.mean((render.astype(np.float64) - image) ** 2))
    assert -10 * math.log10(mse) == pytest.approx(gpu_stats["final_psnr"], abs=0.01)


def test_fit_deterministic_batched_and_given_init() -> None:
    image = _kodak_crop()
    gray = np.ascontiguousarray(image[:80, :96].mean(axis=2, keepdims=True), np.float32)
    configs = [_config(iterations=60), _config(iterations=60, num_gaussians=300, init=_core.InitMode.grid)]
    single = [_core_cuda.fit_batch([img], [cfg], [None])[0] for img, cfg in zip([image, gray], configs)]
    batch = _core_cuda.fit_batch([image, gray], configs, [None, None], 2)  # two streams at once
    for (p1, s1), (p2, s2) in zip(single, batch):
        np.testing.assert_array_equal(p1, p2)
        assert s1["final_psnr"] == s2["final_psnr"]
    assert batch[1][0].shape == (300, 6)
    # Given init: starting from the CPU's initial Gaussians is the same fit as initialising on the GPU.
    init = np.asarray(_core.initial_gaussians(image, configs[0]))
    (params, stats), = _core_cuda.fit_batch([image], [_config(iterations=60, init=_core.InitMode.given)],
                                            [init])
    np.testing.assert_array_equal(params, batch[0][0])
    assert stats["final_psnr"] == batch[0][1]["final_psnr"]


def test_fit_target_psnr_stops_early() -> None:
    image = _kodak_crop()
    (_, stats), = _core_cuda.fit_batch([image], [_config(iterations=2000, target_psnr=28.0)], [None])
    assert stats["reached_target"] and stats["iterations"] < 2000
    assert stats["final_psnr"] >= 27.5


def test_fit_refuses_pruning_and_bad_input() -> None:
    image = _kodak_crop()
    with pytest.raises(ValueError, match="prune"):
        _core_cuda.fit_batch([image], [_config(prune_every=10, prune_threshold=0.01)], [None])
    with pytest.raises(ValueError):
        _core_cuda.fit_batch([image], [_config(num_gaussians=0)], [None])
    with pytest.raises(ValueError):
        _core_cuda.fit_batch([image[..., :2]], [_config()], [None])
    with pytest.raises(ValueError):
        _core_cuda.fit_batch([image], [_config(init=_core.InitMode.given)], [None])
    assert _core_cuda.fit_batch([], [], []) == []
