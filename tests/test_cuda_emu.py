"""The CUDA rasteriser's kernels, run on the CPU under a small CUDA emulator (tests/cuda_emu/), against
the CPU core and the float64 reference: runs on machines without a GPU, so the kernel code
(src_cuda/raster_cuda_kernels.cuh: binning, forward, backward with its warp reductions, fused MSE step)
is exercised in every test run, not only where a GPU is lent. The host side mirrors CudaRasterizer with
std::partial_sum / std::stable_sort in place of CUB's scan / radix sort. tests/test_cuda.py checks
the real thing on a GPU.

Needs a C++17 compiler (``$CXX`` or g++) and splatcodec._core; skipped without either.
"""
from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

try:
    from reference import (gradient_scale, random_gaussians, random_scene, redraw_ambiguous,
                           render_backward_reference, render_reference)
except ImportError:  # tests/ imported as a package
    from tests.reference import (gradient_scale, random_gaussians, random_scene, redraw_ambiguous,
                                 render_backward_reference, render_reference)

try:
    from splatcodec import _core
except ImportError as exc:
    pytest.skip(f"splatcodec._core is not built ({exc})", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
FWD_ATOL, FWD_RTOL = 1e-5, 1e-5
GRAD_ATOL, GRAD_RTOL = 1e-7, 3e-5


@pytest.fixture(scope="module")
def emu(tmp_path_factory) -> Path:
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        pytest.skip(f"no C++ compiler ({cxx}) to build the CUDA emulator")
    exe = tmp_path_factory.mktemp("cuda_emu") / "cuda_emu"
    cmd = [cxx, "-std=c++17", "-O2", "-Wall", "-Wno-unknown-pragmas", f"-I{ROOT / 'src_cuda'}",
           str(ROOT / "tests" / "cuda_emu" / "cuda_emu_main.cpp"), "-o", str(exe)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, f"building the CUDA emulator failed:\n{result.stderr}"
    return exe


class Emu:
    def __init__(self, exe: Path, tmp: Path) -> None:
        self.exe, self.tmp = exe, tmp

    def _run(self, mode: str, params: np.ndarray, width: int, height: int, *paths: Path) -> int:
        params = np.ascontiguousarray(params, np.float32)
        params.tofile(self.tmp / "params.f32")
        channels = params.shape[1] - 5
        cmd = [str(self.exe), mode, str(channels), str(width), str(height), str(params.shape[0]),
               str(self.tmp / "params.f32"), *map(str, paths)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return int(result.stdout.split()[1])

    def render(self, params: np.ndarray, width: int, height: int) -> np.ndarray:
        self._run("render", params, width, height, self.tmp / "out.f32")
        return np.fromfile(self.tmp / "out.f32", np.float32).reshape(height, width, params.shape[1] - 5)

    def backward(self, params: np.ndarray, width: int, height: int, grad_image: np.ndarray) -> np.ndarray:
        np.ascontiguousarray(grad_image, np.float32).tofile(self.tmp / "grad_image.f32")
        self._run("backward", params, width, height, self.tmp / "grad_image.f32", self.tmp / "grad.f32")
        return np.fromfile(self.tmp / "grad.f32", np.float32).reshape(params.shape)

    def mse(self, params: np.ndarray, width: int, height: int, target_hwc: np.ndarray):
        planar = np.ascontiguousarray(np.moveaxis(target_hwc, 2, 0), np.float32)
        planar.tofile(self.tmp / "target.f32")
        self._run("mse", params, width, height, self.tmp / "target.f32", self.tmp / "grad.f32",
                  self.tmp / "error.f32", self.tmp / "loss.f64")
        grad = np.fromfile(self.tmp / "grad.f32", np.float32).reshape(params.shape)
        error = np.fromfile(self.tmp / "error.f32", np.float32).reshape(height, width)
        loss = float(np.fromfile(self.tmp / "loss.f64", np.float64)[0])
        return grad, error, loss


@pytest.fixture()
def gpu(emu: Path, tmp_path: Path) -> Emu:
    return Emu(emu, tmp_path)


def grad_like(width: int, height: int, channels: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(height, width, channels)).astype(np.float32)


def assert_forward(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert np.all(np.isfinite(got)), f"{what}: non-finite pixels"
    err = np.abs(got - want)
    bad = err > FWD_ATOL + FWD_RTOL * np.abs(want)
    assert not bad.any(), f"{what}: {bad.sum()} of {bad.size} values off, max err {err.max():.3g}"


def assert_grad(got: np.ndarray, want: np.ndarray, scale: np.ndarray, what: str) -> None:
    assert np.all(np.isfinite(got)), f"{what}: non-finite gradient"
    err = np.abs(got - want)
    bad = err > GRAD_ATOL + GRAD_RTOL * scale
    if bad.any():
        i, k = np.argwhere(bad)[0]
        pytest.fail(f"{what}: {bad.sum()} of {bad.size} entries off; first Gaussian {i} param {k}: "
                    f"{got[i, k]!r} vs {want[i, k]!r} (scale {scale[i, k]:.3g})")


def check(gpu: Emu, params: np.ndarray, width: int, height: int, seed: int = 0, reference: bool = True,
          backward: bool = True) -> None:
    params = np.ascontiguousarray(params, np.float32)
    img = gpu.render(params, width, height)
    assert_forward(img, np.asarray(_core.render(params, width, height)), "emulated gpu vs cpu")
    if reference:
        assert_forward(img, render_reference(params, width, height).numpy(), "emulated gpu vs reference")
    if not backward:
        return
    g = grad_like(width, height, params.shape[1] - 5, seed)
    grad = gpu.backward(params, width, height, g)
    scale = gradient_scale(params, width, height, g)
    assert_grad(grad, np.asarray(_core.render_backward(params, width, height, g)), scale, "emulated gpu vs cpu")
    if reference:
        assert_grad(grad, render_backward_reference(params, width, height, g), scale,
                    "emulated gpu vs reference")




@pytest.mark.parametrize("channels,width,height", [(1, 37, 23), (3, 37, 23), (3, 1, 1), (1, 17, 1), (3, 1, 33),
                                                  (3, 50, 33)])
def test_random_scene(gpu: Emu, channels: int, width: int, height: int) -> None:
    check(gpu, random_scene(300 + channels + width * 7 + height, 50, width, height, channels), width, height,
          seed=channels)


def test_tiny_huge_and_off_image(gpu: Emu) -> None:
    check(gpu, random_scene(51, 60, 37, 23, 3, sigma_range=(0.05, 0.6)), 37, 23, seed=1)
    check(gpu, random_scene(52, 12, 37, 23, 1, sigma_range=(30.0, 400.0), centre_margin=2.0), 37, 23, seed=2)
    check(gpu, random_scene(53, 40, 37, 23, 3, centre_margin=1.0), 37, 23, seed=3)


def test_more_than_256_gaussians_on_one_tile(gpu: Emu) -> None:
    rng = np.random.default_rng(12)
    n = 600
    xy = rng.uniform(7.0, 9.0, (n, 2))
    params = np.concatenate([xy, np.full((n, 1), 3.0), np.zeros((n, 1)), np.full((n, 1), 3.0),
                             np.full((n, 1), 1.0 / n)], axis=1).astype(np.float32)
    assert gpu.render(params, 40, 36)[7, 7, 0] > 0.85
    check(gpu, params, 40, 36)


@pytest.mark.parametrize("n,backward", [(63, True), (64, True), (65, True), (255, False), (256, False),
                                        (257, False)])
def test_batch_boundaries(gpu: Emu, n: int, backward: bool) -> None:
    # Shared-memory batches: 64 Gaussians in the backward pass, 256 in the forward pass.
    rng = np.random.default_rng(2000 + n)
    params = random_gaussians(rng, n, 32, 32, 1, sigma_range=(0.8, 3.0))
    params[:, 0:2] = rng.uniform(4.0, 12.0, (n, 2))
    params = redraw_ambiguous(params, 32, 32, lambda k: np.concatenate(
        [rng.uniform(4.0, 12.0, (k, 2)), random_gaussians(rng, k, 32, 32, 1, (0.8, 3.0))[:, 2:]],
        axis=1).astype(np.float32))
    check(gpu, params, 32, 32, seed=n, backward=backward)


def _rotated(x: float, y: float, a: float, b: float, theta: float, colour: list[float]) -> list[float]:
    c, s = math.cos(theta), math.sin(theta)
    s11, s12, s22 = a * a * c * c + b * b * s * s, (a * a - b * b) * c * s, a * a * s * s + b * b * c * c
    l11 = math.sqrt(s11)
    l21 = s12 / l11
    return [x, y, l11, l21, math.sqrt(s22 - l21 * l21), *colour]


@pytest.mark.parametrize("value", [math.nan, math.inf, 0.0])
def test_degenerate_and_non_finite_rows(gpu: Emu, value: float) -> None:
    good = [_rotated(12.0, 9.0, 4.0, 2.0, 0.5, [0.8, -0.3, 0.5]),
            _rotated(25.0, 14.0, 3.0, 3.0, 0.0, [0.2, 0.9, 0.4])]
    bad = []
    for k in ((2, 4) if math.isfinite(value) else range(8)):  # geometry and (non-finite) colour
        row = list(good[0])
        row[k] = value
        bad.append(row)
    params = np.array(good + bad, np.float32)
    img = gpu.render(params, 37, 23)
    assert_forward(img, render_reference(params[:2], 37, 23).numpy(), "degenerate rows vs good rows alone")
    g = grad_like(37, 23, 3)
    grad = gpu.backward(params, 37, 23, g)
    np.testing.assert_array_equal(grad[2:], 0.0)
    np.testing.assert_array_equal(grad[:2], gpu.backward(params[:2], 37, 23, g))


@pytest.mark.parametrize("row", [
    [12.0, 7.0, 1e20, 0.0, 1e20, 0.5],     # centred on the image, astronomically wide: w == 1
    [2e7, 7.0, 1e8, 0.0, 1e8, 0.5],        # centre far outside, but wide enough to cover the image
    [10.0, 10.0, 1e6, 0.0, 1e6, 0.25],     # covers everything
])
def test_very_wide_gaussians_cover_every_tile(gpu: Emu, row: list[float]) -> None:
    params = np.array([row], np.float32)
    assert gpu.render(params, 37, 23).min() > 0.2
    check(gpu, params, 37, 23)


def test_cutoff_is_hard(gpu: Emu) -> None:
    # sigma 1 on pixel 0: pixel 3 at q == 9 exactly is kept, pixel 4 is not; at 3.1 sigma pixel 3 is cut,
    # with no gradient either.
    got = gpu.render(np.array([[0.5, 0.5, 1.0, 0.0, 1.0, 1.0]], np.float32), 6, 1)[0, :, 0]
    np.testing.assert_allclose(got[:4], np.exp(-0.5 * np.arange(4) ** 2), rtol=1e-6)
    assert got[4] == 0.0 and got[5] == 0.0
    narrow = np.array([[0.5, 0.5, 3.0 / 3.1, 0.0, 1.0, 1.0]], np.float32)
    assert gpu.render(narrow, 6, 1)[0, 3, 0] == 0.0
    g = np.zeros((1, 6, 1), np.float32)
    g[0, 3, 0] = 1.0
    np.testing.assert_array_equal(gpu.backward(narrow, 6, 1, g), 0.0)


def test_zero_gaussians(gpu: Emu) -> None:
    params = np.zeros((0, 8), np.float32)
    np.testing.assert_array_equal(gpu.render(params, 20, 18), 0.0)
    assert gpu.backward(params, 20, 18, np.ones((18, 20, 3), np.float32)).shape == (0, 8)
    grad, error, loss = gpu.mse(params, 20, 18, np.full((18, 20, 3), 0.5, np.float32))
    assert loss == pytest.approx(20 * 18 * 3 * 0.25)
    np.testing.assert_allclose(error, 0.75)


@pytest.mark.parametrize("channels", [1, 3])
def test_fused_mse_step(gpu: Emu, channels: int) -> None:
    # loss = mean((render - target)^2): gradient = backward of 2 (render - target) / (W H C).
    width, height = 40, 27
    params = random_scene(61 + channels, 70, width, height, channels, sigma_range=(0.5, 8.0))
    target = np.random.default_rng(7).uniform(0, 1, (height, width, channels)).astype(np.float32)
    grad, error, loss = gpu.mse(params, width, height, target)
    render = np.asarray(_core.render(params, width, height))
    resid = render.astype(np.float64) - target
    assert loss == pytest.approx(float((resid ** 2).sum()), rel=1e-5)
    np.testing.assert_allclose(error, (resid ** 2).sum(axis=2), rtol=1e-4, atol=1e-6)
    g = (2.0 / (width * height * channels) * (render - target)).astype(np.float32)
    assert_grad(grad, np.asarray(_core.render_backward(params, width, height, g)),
                gradient_scale(params, width, height, g), "fused mse step vs cpu backward")


def test_fit_loop_matches_cpu_fit(gpu: Emu) -> None:
    # bin + fused MSE step + adam_kernel per iteration (the loop of fit_image_cuda, emulated) from the same
    # Gaussians as a CPU fit with init='given': same losses up to rounding. (Parameters are compared
    # loosely: Adam's first steps are ~lr * sign(gradient), so a gradient that is pure rounding noise may
    # step the other way on either backend.)
    rng = np.random.default_rng(5)
    width, height, iterations = 40, 32, 8
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([0.5 + 0.4 * np.sin(xx / 5.0), 0.5 + 0.4 * np.cos(yy / 4.0), (xx + yy) / 80.0], axis=2)
    image = np.clip(image + rng.normal(0, 0.03, image.shape), 0, 1).astype(np.float32)
    cfg = _core.FitConfig()
    cfg.num_gaussians = 120
    cfg.iterations = 0
    init = np.asarray(_core.initial_gaussians(image, cfg))
    cfg.iterations = iterations
    cfg.init = _core.InitMode.given
    cfg.l1_color = 1e-4
    (cpu_params, stats), = _core.fit_batch([image], [cfg], [init])
    image.tofile(gpu.tmp / "image.f32")
    settings = [cfg.lr_xy, cfg.lr_chol, cfg.lr_color, cfg.lr_final_ratio, cfg.min_chol, cfg.l1_color]
    gpu._run("fit", init, width, height, gpu.tmp / "image.f32", iterations, *map(repr, settings),
             gpu.tmp / "fit.f32", gpu.tmp / "sse.f64")
    params = np.fromfile(gpu.tmp / "fit.f32", np.float32).reshape(init.shape)
    sse = np.fromfile(gpu.tmp / "sse.f64", np.float64)
    psnr = -10 * np.log10(sse / image.size)
    assert len(psnr) == iterations + 1
    np.testing.assert_allclose(psnr[:-1], stats["trace_psnr"], atol=0.02)
    assert psnr[-1] == pytest.approx(stats["final_psnr"], abs=0.02)
    assert psnr[-1] > psnr[0] + 1.0
    far = np.abs(params - cpu_params) > 1e-3 * (1 + np.abs(cpu_params))
    assert far.mean() < 0.02, f"{far.sum()} of {far.size} parameters differ from the CPU fit"
