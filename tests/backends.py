"""Every rasteriser backend behind one interface, and the checks that hold each to the float64 reference.

A :class:`Backend` renders and back-propagates packed parameter rows ``(N, 5 + C)``. Those present here:

* ``cpu-<level>``: each ISA build of the CPU core this machine runs (``_core`` = baseline,
  ``_core_x86_64_v3``, ``_core_x86_64_v4``);
* ``cuda-emulator``: the CUDA kernels (src_cuda/raster_cuda_kernels.cuh) compiled for the CPU under the
  small emulator in tests/cuda_emu/ (needs a C++17 compiler), so kernel code is checked without a GPU;
* ``cuda``: ``splatcodec._core_cuda`` on a real GPU, where one is built and present.

Tolerances (float32 backends vs the float64 reference of reference.py):

* forward: ``|got - ref| <= 1e-5 + 1e-5 |ref|`` per pixel and channel;
* gradients: ``|got - ref| <= 1e-7 + GRAD_RTOL * S``, where S (:func:`reference.gradient_scale`) is the
  sum of ``|grad_image| * |d term / d theta|`` over the terms a gradient entry adds up: the scale of any
  float32 implementation's rounding error, meaningful even when the terms cancel to ~0. A wrong formula,
  a dropped pixel or a dropped Gaussian errs by O(S), far above GRAD_RTOL * S.

Two float32 backends may each be off the reference in opposite directions, so backend vs backend uses
twice these bounds.
"""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

try:
    from reference import gradient_scale, render_backward_reference, render_reference, rotated_gaussian
except ImportError:  # tests/ imported as a package
    from tests.reference import gradient_scale, render_backward_reference, render_reference, rotated_gaussian

ROOT = Path(__file__).resolve().parents[1]
FWD_ATOL = 1e-5
FWD_RTOL = 1e-5
GRAD_ATOL = 1e-7
GRAD_RTOL = 3e-5
PARAM_NAMES = ["x", "y", "l11", "l21", "l22"]

#: Two well-formed Gaussians that degenerate rows are mixed with (3 channels, inside a 37x23 image).
GOOD_ROWS = [rotated_gaussian(12.0, 9.0, 4.0, 2.0, 0.5, [0.8, -0.3, 0.5]),
             rotated_gaussian(25.0, 14.0, 3.0, 3.0, 0.0, [0.2, 0.9, 0.4])]


def require_native() -> bool:
    """Whether SPLATCODEC_REQUIRE_NATIVE asks a missing extension to fail the run instead of skipping."""
    return os.environ.get("SPLATCODEC_REQUIRE_NATIVE", "") not in ("", "0")


def with_value(row: list[float], k: int, value: float) -> list[float]:
    """A copy of ``row`` with entry ``k`` replaced."""
    row = list(row)
    row[k] = value
    return row


def grad_like(width: int, height: int, channels: int, seed: int = 0) -> np.ndarray:
    """A seeded random upstream gradient of an image's shape."""
    return np.random.default_rng(seed).normal(size=(height, width, channels)).astype(np.float32)


# ----------------------------------------------------------------------------------------- assertions
def assert_forward_close(got: np.ndarray, want: np.ndarray, factor: float = 1.0, what: str = "") -> None:
    """``got`` within ``factor`` times the forward tolerance of ``want``, and finite."""
    assert np.all(np.isfinite(got)), f"{what}: non-finite pixels"
    err = np.abs(got - want)
    bad = err > factor * (FWD_ATOL + FWD_RTOL * np.abs(want))
    if bad.any():
        r, c, ch = np.argwhere(bad)[0]
        pytest.fail(f"{what}: forward mismatch at {bad.sum()} of {bad.size} values, max err {err.max():.3g}; "
                    f"first at row {r} col {c} ch {ch}: {got[r, c, ch]!r} vs {want[r, c, ch]!r}")


def assert_grad_close(got: np.ndarray, want: np.ndarray, scale: np.ndarray, factor: float = 1.0,
                      what: str = "", params: np.ndarray | None = None) -> None:
    """``got`` within ``factor`` times the gradient tolerance (relative to ``scale``) of ``want``."""
    assert np.all(np.isfinite(got)), f"{what}: non-finite gradient"
    err = np.abs(got - want)
    bad = err > factor * (GRAD_ATOL + GRAD_RTOL * scale)
    if bad.any():
        i, k = np.argwhere(bad)[0]
        name = PARAM_NAMES[k] if k < 5 else f"c{k - 5}"
        row = f"; params row {params[i].tolist()}" if params is not None else ""
        pytest.fail(f"{what}: gradient mismatch at {bad.sum()} of {bad.size} entries; first: Gaussian {i} "
                    f"d/d{name}: {got[i, k]!r} vs {want[i, k]!r} (scale {scale[i, k]:.3g}){row}")


# ------------------------------------------------------------------------------------------- backends
@dataclass
class Backend:
    """A rasteriser: ``render(params, width, height) -> (H, W, C) float32`` and
    ``backward(params, width, height, grad_image) -> (N, 5 + C) float32``."""

    name: str
    render: Callable[[np.ndarray, int, int], np.ndarray]
    backward: Callable[[np.ndarray, int, int, np.ndarray], np.ndarray]


def module_backend(name: str, module, threads: int = 0) -> Backend:
    """A backend over a native module's ``render`` / ``render_backward`` (any ISA build, or CUDA)."""
    def render(params: np.ndarray, width: int, height: int) -> np.ndarray:
        params = np.ascontiguousarray(params, np.float32)
        args = (threads,) if threads else ()
        out = np.asarray(module.render(params, width, height, *args))
        assert out.shape == (height, width, params.shape[1] - 5) and out.dtype == np.float32, out.shape
        return out

    def backward(params: np.ndarray, width: int, height: int, grad_image: np.ndarray) -> np.ndarray:
        params = np.ascontiguousarray(params, np.float32)
        args = (threads,) if threads else ()
        out = np.asarray(module.render_backward(params, width, height,
                                                np.ascontiguousarray(grad_image, np.float32), *args))
        assert out.shape == params.shape and out.dtype == np.float32, out.shape
        return out

    return Backend(name, render, backward)


def cpu_levels() -> list[str]:
    """ISA levels of the CPU core, slowest first (``baseline`` and the variant levels)."""
    from splatcodec import _native

    return list(_native.ISA_MODULES)


def cpu_module(level: str):
    """The CPU core module of ``level``, or skip (fail for the baseline under SPLATCODEC_REQUIRE_NATIVE)."""
    from splatcodec import _native

    try:
        base = importlib.import_module("splatcodec._core")
    except ImportError as exc:
        if require_native():
            raise ImportError(f"SPLATCODEC_REQUIRE_NATIVE is set but splatcodec._core failed to import: {exc}")
        pytest.skip(f"splatcodec._core is not built ({exc})", allow_module_level=True)
    if level == "baseline":
        return base
    if level not in tuple(base.ISA_VARIANTS):
        pytest.skip(f"the {level} build of the core is not built here", allow_module_level=True)
    if not base.cpu_features().get(level):
        pytest.skip(f"this CPU cannot run the {level} build", allow_module_level=True)
    return importlib.import_module(f"splatcodec.{_native.ISA_MODULES[level]}")


def cuda_module():
    """``splatcodec._core_cuda`` when it is built and sees a GPU, else skip."""
    try:
        module = importlib.import_module("splatcodec._core_cuda")
    except ImportError as exc:
        pytest.skip(f"splatcodec._core_cuda is not built ({exc}); see docs/cuda.md", allow_module_level=True)
    if module.device_count() <= 0:
        pytest.skip("splatcodec._core_cuda is built but no CUDA device is available", allow_module_level=True)
    return module


def build_cuda_emulator(folder: Path) -> Path:
    """Compile tests/cuda_emu/cuda_emu_main.cpp (the CUDA kernels on the CPU) into ``folder``; skip
    without a C++ compiler."""
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        pytest.skip(f"no C++ compiler ({cxx}) to build the CUDA emulator", allow_module_level=True)
    exe = folder / "cuda_emu"
    cmd = [cxx, "-std=c++17", "-O2", "-Wall", "-Wno-unknown-pragmas", f"-I{ROOT / 'src_cuda'}",
           str(ROOT / "tests" / "cuda_emu" / "cuda_emu_main.cpp"), "-o", str(exe)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, f"building the CUDA emulator failed:\n{result.stderr}"
    return exe


class EmulatedCuda:
    """The CUDA kernels run by the emulator executable; arrays travel through files in ``tmp``."""

    def __init__(self, exe: Path, tmp: Path) -> None:
        self.exe, self.tmp = exe, tmp

    def run(self, mode: str, params: np.ndarray, width: int, height: int, *args) -> int:
        """Run one emulator command; returns the count it prints (entries binned)."""
        params = np.ascontiguousarray(params, np.float32)
        params.tofile(self.tmp / "params.f32")
        channels = params.shape[1] - 5
        cmd = [str(self.exe), mode, str(channels), str(width), str(height), str(params.shape[0]),
               str(self.tmp / "params.f32"), *map(str, args)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return int(result.stdout.split()[1])

    def render(self, params: np.ndarray, width: int, height: int) -> np.ndarray:
        self.run("render", params, width, height, self.tmp / "out.f32")
        return np.fromfile(self.tmp / "out.f32", np.float32).reshape(height, width, params.shape[1] - 5)

    def render_u8(self, params: np.ndarray, width: int, height: int) -> np.ndarray:
        self.run("render_u8", params, width, height, self.tmp / "out.u8")
        return np.fromfile(self.tmp / "out.u8", np.uint8).reshape(height, width, params.shape[1] - 5)

    def backward(self, params: np.ndarray, width: int, height: int, grad_image: np.ndarray) -> np.ndarray:
        np.ascontiguousarray(grad_image, np.float32).tofile(self.tmp / "grad_image.f32")
        self.run("backward", params, width, height, self.tmp / "grad_image.f32", self.tmp / "grad.f32")
        return np.fromfile(self.tmp / "grad.f32", np.float32).reshape(params.shape)

    def mse(self, params: np.ndarray, width: int, height: int, target_hwc: np.ndarray):
        """The fused MSE step: (gradient, per-pixel squared error, loss)."""
        planar = np.ascontiguousarray(np.moveaxis(target_hwc, 2, 0), np.float32)
        planar.tofile(self.tmp / "target.f32")
        self.run("mse", params, width, height, self.tmp / "target.f32", self.tmp / "grad.f32",
                 self.tmp / "error.f32", self.tmp / "loss.f64")
        grad = np.fromfile(self.tmp / "grad.f32", np.float32).reshape(params.shape)
        error = np.fromfile(self.tmp / "error.f32", np.float32).reshape(height, width)
        loss = float(np.fromfile(self.tmp / "loss.f64", np.float64)[0])
        return grad, error, loss

    def backend(self) -> Backend:
        return Backend("cuda-emulator", self.render, self.backward)


# ------------------------------------------------------------------------------------------- checks
_REFERENCE_CACHE: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def reference_results(params: np.ndarray, width: int, height: int,
                      grad_image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float64 reference image, reference gradient, gradient scale), cached: every backend is checked
    against the same scenes."""
    key = b"|".join([params.tobytes(), str(params.shape).encode(), str((width, height)).encode(),
                     grad_image.tobytes()])
    if key not in _REFERENCE_CACHE:
        _REFERENCE_CACHE[key] = (render_reference(params, width, height).numpy(),
                                 render_backward_reference(params, width, height, grad_image),
                                 gradient_scale(params, width, height, grad_image))
    return _REFERENCE_CACHE[key]


def check_backend(backend: Backend, params: np.ndarray, width: int, height: int, *, seed: int = 0,
                  grad_image: np.ndarray | None = None,
                  against: Backend | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``backend``'s forward and gradient against the float64 reference (and, within twice the bounds,
    against the backend ``against``). Returns (reference image, backend image, backend gradient)."""
    params = np.ascontiguousarray(params, np.float32)
    if grad_image is None:
        grad_image = grad_like(width, height, params.shape[1] - 5, seed)
    ref_img, ref_grad, scale = reference_results(params, width, height, grad_image)
    img = backend.render(params, width, height)
    assert_forward_close(img, ref_img, 1.0, f"{backend.name} vs reference")
    grad = backend.backward(params, width, height, grad_image)
    assert_grad_close(grad, ref_grad, scale, 1.0, f"{backend.name} vs reference", params)
    if against is not None and against.name != backend.name:
        assert_forward_close(img, against.render(params, width, height), 2.0, f"{backend.name} vs {against.name}")
        assert_grad_close(grad, against.backward(params, width, height, grad_image), scale, 2.0,
                          f"{backend.name} vs {against.name}", params)
    return ref_img, img, grad
