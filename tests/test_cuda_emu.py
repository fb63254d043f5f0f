"""The CUDA kernels run on the CPU under a small CUDA emulator (tests/cuda_emu/), so kernel code is exercised
in every test run, not only where a GPU is lent: here the parts only the kernels have (the tile list's
shared-memory batches, the fused MSE step, the fitting loop of fit_image_cuda). The emulator is also a
backend of the forward/gradient suite, tests/test_backends.py (binning, forward, backward with its warp
reductions against the float64 reference). The host side mirrors CudaRasterizer with std::partial_sum /
std::stable_sort in place of CUB's scan / radix sort. tests/test_cuda.py checks the real thing on a GPU.

Needs a C++17 compiler (``$CXX`` or g++) and splatcodec._core; skipped without either.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

try:
    from backends import (EmulatedCuda, assert_forward_close, assert_grad_close, build_cuda_emulator,
                          check_backend, cpu_module, module_backend)
    from reference import gradient_scale, random_gaussians, random_scene, redraw_ambiguous, render_reference
except ImportError:  # tests/ imported as a package
    from tests.backends import (EmulatedCuda, assert_forward_close, assert_grad_close, build_cuda_emulator,
                                check_backend, cpu_module, module_backend)
    from tests.reference import (gradient_scale, random_gaussians, random_scene, redraw_ambiguous,
                                 render_reference)

_core = cpu_module("baseline")


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cuda_emulator(tmp_path_factory.mktemp("cuda_emu"))


@pytest.fixture()
def gpu(emu: Path, tmp_path: Path) -> EmulatedCuda:
    return EmulatedCuda(emu, tmp_path)


@pytest.mark.parametrize("n,backward", [(63, True), (64, True), (65, True), (255, False), (256, False),
                                        (257, False)])
def test_batch_boundaries(gpu: EmulatedCuda, n: int, backward: bool) -> None:
    # Shared-memory batches: 64 Gaussians in the backward pass, 256 in the forward pass.
    rng = np.random.default_rng(2000 + n)
    params = random_gaussians(rng, n, 32, 32, 1, sigma_range=(0.8, 3.0))
    params[:, 0:2] = rng.uniform(4.0, 12.0, (n, 2))
    params = redraw_ambiguous(params, 32, 32, lambda k: np.concatenate(
        [rng.uniform(4.0, 12.0, (k, 2)), random_gaussians(rng, k, 32, 32, 1, (0.8, 3.0))[:, 2:]],
        axis=1).astype(np.float32))
    if backward:
        check_backend(gpu.backend(), params, 32, 32, seed=n, against=module_backend("cpu-baseline", _core))
    else:  # the forward pass's batches (256): its image only, the backward reference is the slow part
        img = gpu.render(params, 32, 32)
        assert_forward_close(img, np.asarray(_core.render(params, 32, 32)), 2.0, "emulated gpu vs cpu")
        assert_forward_close(img, render_reference(params, 32, 32).numpy(), 1.0, "emulated gpu vs reference")


@pytest.mark.parametrize("channels", [1, 3])
def test_uint8_render_converts_every_value_as_to_uint8(gpu: EmulatedCuda, channels: int) -> None:
    """forward_u8 (the GPU decode) writes to_uint8 of the float render: clipped below 0 and above 1,
    rounded half up, every pixel written (the buffer starts at 77)."""
    from splatcodec.render import to_uint8

    rng = np.random.default_rng(90 + channels)
    params = random_gaussians(rng, 300, 40, 36, channels, sigma_range=(0.8, 6.0))
    params[:, 5:] = rng.uniform(-0.6, 1.6, (300, channels))  # sums well outside [0, 1]: both clips
    params[:3, 0:2] = [[-50.0, -50.0], [200.0, 5.0], [5.0, 300.0]]  # off the image
    img = gpu.render(params, 40, 36)
    got = gpu.render_u8(params, 40, 36)
    assert got.dtype == np.uint8 and got.shape == (36, 40, channels)
    np.testing.assert_array_equal(got, to_uint8(img))
    assert (img < 0).any() and (img > 1).any()
    np.testing.assert_array_equal(gpu.render_u8(np.zeros((0, 5 + channels), np.float32), 17, 9), 0)


def test_zero_gaussians(gpu: EmulatedCuda) -> None:
    params = np.zeros((0, 8), np.float32)
    np.testing.assert_array_equal(gpu.render(params, 20, 18), 0.0)
    assert gpu.backward(params, 20, 18, np.ones((18, 20, 3), np.float32)).shape == (0, 8)
    grad, error, loss = gpu.mse(params, 20, 18, np.full((18, 20, 3), 0.5, np.float32))
    assert loss == pytest.approx(20 * 18 * 3 * 0.25)
    np.testing.assert_allclose(error, 0.75)


@pytest.mark.parametrize("channels", [1, 3])
def test_fused_mse_step(gpu: EmulatedCuda, channels: int) -> None:
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
    assert_grad_close(grad, np.asarray(_core.render_backward(params, width, height, g)),
                      gradient_scale(params, width, height, g), 1.0, "fused mse step vs cpu backward")


def test_fit_loop_matches_cpu_fit(gpu: EmulatedCuda) -> None:
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
    gpu.run("fit", init, width, height, gpu.tmp / "image.f32", iterations, *map(repr, settings),
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


def _fit_scene(seed: int = 5):
    rng = np.random.default_rng(seed)
    width, height = 40, 32
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([0.5 + 0.4 * np.sin(xx / 5.0), 0.5 + 0.4 * np.cos(yy / 4.0), (xx + yy) / 80.0], axis=2)
    image = np.clip(image + rng.normal(0, 0.03, image.shape), 0, 1).astype(np.float32)
    cfg = _core.FitConfig()
    cfg.num_gaussians = 60
    cfg.iterations = 0
    return image, cfg, np.asarray(_core.initial_gaussians(image, cfg))


def _emulated_fit(emu: Path, tmp: Path, init: np.ndarray, image: np.ndarray, cfg, iterations: int,
                  *extra) -> subprocess.CompletedProcess:
    """The emulator's fit (the shared loop of fit_loop.h) without asserting success."""
    init.astype(np.float32).tofile(tmp / "params.f32")
    image.tofile(tmp / "image.f32")
    settings = [cfg.lr_xy, cfg.lr_chol, cfg.lr_color, cfg.lr_final_ratio, cfg.min_chol, cfg.l1_color]
    cmd = [str(emu), "fit", str(image.shape[2]), str(image.shape[1]), str(image.shape[0]), str(len(init)),
           str(tmp / "params.f32"), str(tmp / "image.f32"), str(iterations), *map(repr, settings),
           str(tmp / "fit.f32"), str(tmp / "sse.f64"), *map(str, extra)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_shared_fit_loop_refuses_what_the_cpu_loop_refuses(emu: Path, tmp_path: Path) -> None:
    """The CUDA fitter's loop is the CPU's (fit_loop.h): the same budget, cancellation and finiteness
    errors, raised by the same code, here through the emulated kernels (the drift issue 11 found: the
    CUDA loop used to ignore all three)."""
    image, cfg, init = _fit_scene()
    ok = _emulated_fit(emu, tmp_path, init, image, cfg, 4)
    assert ok.returncode == 0, ok.stderr
    entries = int(ok.stdout.split()[1])
    # Render budget on every binning: one entry short fails, exactly enough passes.
    over = _emulated_fit(emu, tmp_path, init, image, cfg, 4, entries - 1)
    assert over.returncode == 2 and "Gaussian-tile entries" in over.stderr, over.stderr
    assert _emulated_fit(emu, tmp_path, init, image, cfg, 4, 10 * entries).returncode == 0
    # Cancellation is polled every iteration: cancelled during step 2, the loop stops before step 3.
    cancelled = _emulated_fit(emu, tmp_path, init, image, cfg, 6, 0, 2)
    assert cancelled.returncode == 2 and "cancelled" in cancelled.stderr, cancelled.stderr
    # A non-finite Gaussian touches no pixel (the loss stays finite) but is refused at the end, as on the CPU.
    bad = init.copy()
    bad[7, 2] = np.nan
    diverged = _emulated_fit(emu, tmp_path, bad, image, cfg, 3)
    assert diverged.returncode == 2 and "diverged" in diverged.stderr, diverged.stderr
    cfg.init = _core.InitMode.given
    cfg.iterations = 3
    with pytest.raises(ValueError, match="diverged"):
        _core.fit_batch([image], [cfg], [bad])


def test_fit_loop_prunes_and_densifies_like_the_cpu(emu: Path, tmp_path: Path) -> None:
    """Pruning and densification as the CUDA fitter runs them (prune_densify.h on a host copy, with the
    error map of the emulated MSE step and the emulated forward pass for the new colours) match the CPU
    fit from the same Gaussians: the same Gaussians pruned and added, the same losses up to rounding."""
    image, cfg, init = _fit_scene()
    init = init.copy()
    init[::6, 5:] = 0.0  # dark: pruned at the first pruning step
    init[3, 0] = -50.0  # touches no pixel: pruned too
    cfg.iterations = 10
    cfg.init = _core.InitMode.given
    cfg.l1_color = 1e-4
    cfg.prune_every, cfg.prune_threshold, cfg.prune_until, cfg.densify = 3, 0.05, 0.7, True
    (cpu_params, stats), = _core.fit_batch([image], [cfg], [init])
    assert stats["gaussians_pruned"] >= 11 and stats["gaussians_added"] == stats["gaussians_pruned"]
    run = _emulated_fit(emu, tmp_path, init, image, cfg, cfg.iterations, 0, -1, cfg.prune_every,
                        repr(cfg.prune_threshold), repr(cfg.prune_until), 1)
    assert run.returncode == 0, run.stderr
    counts = run.stdout.split()
    assert counts[2:] == ["gaussians", str(stats["gaussians_final"]), "pruned", str(stats["gaussians_pruned"]),
                          "added", str(stats["gaussians_added"])], run.stdout
    sse = np.fromfile(tmp_path / "sse.f64", np.float64)
    psnr = -10 * np.log10(sse / image.size)
    np.testing.assert_allclose(psnr[:-1], stats["trace_psnr"], atol=0.02)
    assert psnr[-1] == pytest.approx(stats["final_psnr"], abs=0.02)
    params = np.fromfile(tmp_path / "fit.f32", np.float32).reshape(cpu_params.shape)
    far = np.abs(params - cpu_params) > 1e-3 * (1 + np.abs(cpu_params))  # new Gaussians at the same pixels
    assert far.mean() < 0.02, f"{far.sum()} of {far.size} parameters differ from the CPU fit"
