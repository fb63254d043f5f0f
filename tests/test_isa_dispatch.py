"""Runtime choice of the native module by instruction set (``splatcodec._native.core``).

setup.py builds the core once per ISA level on x86-64 (``_core`` baseline, ``_core_x86_64_v3``,
``_core_x86_64_v4``). Every variant this CPU can run must compute what the baseline computes (forward
and gradients within float rounding, fits within a hair), and the loader must pick the best one, honour
``SPLATCODEC_ISA`` and refuse a forced level that is not built or not supported.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import platform
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest

try:
    from backends import assert_forward_close, assert_grad_close
    from reference import gradient_scale, random_scene
except ImportError:  # tests/ imported as a package
    from tests.backends import assert_forward_close, assert_grad_close
    from tests.reference import gradient_scale, random_scene

_REQUIRE = os.environ.get("SPLATCODEC_REQUIRE_NATIVE", "") not in ("", "0")
try:
    from splatcodec import _core
except ImportError as exc:
    if _REQUIRE:
        raise ImportError(f"SPLATCODEC_REQUIRE_NATIVE is set but splatcodec._core failed to import: {exc}") from exc
    pytest.skip(f"splatcodec._core is not built ({exc})", allow_module_level=True)

from splatcodec import NativeExtensionError, _native  # noqa: E402

LEVELS = list(_native.ISA_MODULES)  # slowest first
FEATURES = _core.cpu_features()
BUILT = tuple(_core.ISA_VARIANTS)
USABLE = [level for level in BUILT if FEATURES.get(level)]
BEST = USABLE[-1] if USABLE else "baseline"
X86_64 = platform.machine().lower() in ("x86_64", "amd64")

needs_variant = pytest.mark.parametrize(
    "level", USABLE or [pytest.param(None, marks=pytest.mark.skip(reason="no ISA variant this CPU runs is built"))])


def variant(level: str):
    return importlib.import_module(f"splatcodec.{_native.ISA_MODULES[level]}")


def run_python(code: str, isa: str | None) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter (core() is cached per process) with SPLATCODEC_ISA=isa."""
    env = dict(os.environ)
    env.pop(_native.ISA_ENV, None)
    if isa is not None:
        env[_native.ISA_ENV] = isa
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=120)


# ------------------------------------------------------------------------------------- what is built
def test_cpu_features_are_consistent() -> None:
    if not X86_64:
        assert not any(FEATURES.get(level) for level in LEVELS[1:])
        return
    assert {"x86-64-v2", "x86-64-v3", "x86-64-v4", "avx2", "fma", "avx512f"} <= set(FEATURES)
    assert all(isinstance(v, bool) for v in FEATURES.values())
    if FEATURES["x86-64-v4"]:
        assert FEATURES["x86-64-v3"] and FEATURES["avx512f"] and FEATURES["avx512bw"] and FEATURES["avx512vl"]
    if FEATURES["x86-64-v3"]:
        assert FEATURES["x86-64-v2"] and FEATURES["avx2"] and FEATURES["fma"] and FEATURES["bmi2"]
    try:  # the kernel lists what it enabled (OS support included); the core must agree
        flags = next(line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags"))
    except (OSError, StopIteration):
        return
    for name, flag in (("avx2", "avx2"), ("fma", "fma"), ("avx512f", "avx512f"), ("avx512bw", "avx512bw"),
                       ("bmi2", "bmi2"), ("sse4.2", "sse4_2")):
        assert FEATURES[name] == (flag in flags), name


def test_built_variants_belong_to_this_build() -> None:
    assert _core.ISA in ("baseline", "native")
    assert set(BUILT) <= set(LEVELS[1:])
    if _core.ISA == "native":
        assert BUILT == ()  # a -march=native build has no variants
    for level in BUILT:
        assert importlib.util.find_spec(f"splatcodec.{_native.ISA_MODULES[level]}") is not None, level
    for level in USABLE:
        module = variant(level)
        assert module.ISA == level
        assert module.BUILD_ID == _core.BUILD_ID
        assert module.SIMD_LANES == {"x86-64-v3": 8, "x86-64-v4": 16}[level]
        # One FitConfig / InitMode type for all modules: a config made with one works with any.
        assert module.FitConfig is _core.FitConfig and module.InitMode is _core.InitMode


# ------------------------------------------------------------------------------- same results as baseline
SCENES = [  # seed, Gaussians, width, height, channels, threads
    (1, 300, 67, 45, 3, 0),
    (2, 120, 33, 70, 1, 1),
    (3, 500, 96, 72, 3, 2),
    (4, 40, 17, 5, 3, 0),
]


@functools.lru_cache(maxsize=None)
def baseline_results(seed: int, n: int, width: int, height: int, channels: int, threads: int) -> tuple:
    """(params, grad_image, gradient scale, baseline image, baseline gradient), shared by the variants."""
    params = random_scene(seed, n, width, height, channels)
    image = np.asarray(_core.render(params, width, height, threads))
    grad_image = np.random.default_rng(seed).normal(size=image.shape).astype(np.float32)
    scale = gradient_scale(params, width, height, grad_image)
    grad = np.asarray(_core.render_backward(params, width, height, grad_image, threads))
    return params, grad_image, scale, image, grad


@needs_variant
@pytest.mark.parametrize("scene", SCENES, ids=lambda s: "{}x{}x{}-n{}-t{}".format(*s[2:5], s[1], s[5]))
def test_variant_matches_baseline(level: str, scene: tuple) -> None:
    module = variant(level)
    seed, n, width, height, channels, threads = scene
    params, grad_image, scale, want_image, want_grad = baseline_results(*scene)
    # The variants differ from the baseline by float rounding only (FMA contraction, lane-grouped sums),
    # never by which pixels a Gaussian covers: the reference's bounds, at several thread counts.
    assert_forward_close(np.asarray(module.render(params, width, height, threads)), want_image, 1.0,
                         f"{level} forward")
    assert_grad_close(np.asarray(module.render_backward(params, width, height, grad_image, threads)), want_grad,
                      scale, 1.0, f"{level} backward")


@needs_variant
def test_variant_fits_like_baseline(level: str, kodim23_crop: np.ndarray) -> None:
    module = variant(level)
    image = np.ascontiguousarray(kodim23_crop[:96, :112], np.float32) / 255.0
    config = _core.FitConfig()
    config.num_gaussians, config.iterations, config.threads = 300, 40, 2
    start = np.asarray(_core.initial_gaussians(image, config))
    np.testing.assert_allclose(np.asarray(module.initial_gaussians(image, config)), start, atol=1e-5, rtol=1e-5)
    config.init = _core.InitMode.given
    (want, want_stats), = _core.fit_batch([image], [config], [start])
    (got, got_stats), = module.fit_batch([image], [config], [start])
    assert got_stats["iterations"] == want_stats["iterations"] == 40
    assert abs(got_stats["final_psnr"] - want_stats["final_psnr"]) < 0.01  # measured: ~1e-5 dB
    want, got = np.asarray(want), np.asarray(got)
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 0.01  # measured: ~6e-4 after 50 iterations
    assert np.abs(np.asarray(module.render(got, 112, 96)) - np.asarray(_core.render(want, 112, 96))).max() < 5e-3


# ---------------------------------------------------------------------------------------------- loader
@pytest.mark.parametrize("forced", [None, "auto", "baseline", *USABLE])
def test_loader_picks_and_honours_the_environment(forced: str | None) -> None:
    expected = BEST if forced in (None, "auto") else forced
    result = run_python("""
        from splatcodec import _native
        import splatcodec as sc, numpy as np
        print(_native.core().__name__, _native.isa(), _native.core().SIMD_LANES)
        # The public API runs on the chosen module.
        splats = sc.fit(np.full((16, 16, 3), 128, np.uint8), 4, 3)
        print(sc.render(splats).shape)
    """, forced)
    assert result.returncode == 0, result.stderr
    name, isa, _lanes = result.stdout.split("\n")[0].split()
    assert name == f"splatcodec.{_native.ISA_MODULES[expected]}"
    assert isa == (_core.ISA if expected == "baseline" else expected)
    assert result.stdout.split("\n")[1] == "(16, 16, 3)"


@pytest.mark.parametrize("forced", [level for level in LEVELS[1:] if level not in USABLE] + ["x86-64-v9"])
def test_forcing_an_unusable_level_fails_clearly(forced: str) -> None:
    result = run_python("""
        from splatcodec import _native, NativeExtensionError
        try:
            _native.core()
        except NativeExtensionError as exc:
            print("NativeExtensionError:", exc)
    """, forced)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("NativeExtensionError: SPLATCODEC_ISA="), result.stdout
    assert ("not built" in result.stdout or "not supported" in result.stdout
            or "is not one of" in result.stdout), result.stdout


def _fake_base(**overrides) -> SimpleNamespace:
    base = dict(__name__="splatcodec._core", ISA="baseline", BUILD_ID=_core.BUILD_ID,
                ISA_VARIANTS=("x86-64-v3", "x86-64-v4"), cpu_features=lambda: {}, SIMD_LANES=4)
    base.update(overrides)
    return SimpleNamespace(**base)


@pytest.mark.parametrize("base, forced, message", [
    (_fake_base(), "x86-64-v4", "not supported by this CPU"),
    (_fake_base(), "x86-64-v3", "not supported by this CPU"),
    (_fake_base(ISA_VARIANTS=(), cpu_features=lambda: {"x86-64-v3": True, "x86-64-v4": True}), "x86-64-v4",
     "not built"),
])
def test_loader_refuses_unsupported_or_unbuilt(monkeypatch: pytest.MonkeyPatch, base: SimpleNamespace,
                                               forced: str, message: str) -> None:
    """The loader's decisions against a pretend _core: a CPU without the instructions, a build without
    the variant (the real module may exist: a leftover must not be used)."""
    monkeypatch.setattr(_native, "_baseline", lambda: base)
    _native.core.cache_clear()
    try:
        monkeypatch.setenv(_native.ISA_ENV, forced)
        with pytest.raises(NativeExtensionError, match=message):
            _native.core()
        _native.core.cache_clear()
        monkeypatch.delenv(_native.ISA_ENV)
        assert _native.core() is base  # automatic choice: falls back to the baseline
    finally:
        _native.core.cache_clear()


@needs_variant
def test_loader_refuses_a_variant_of_another_build(monkeypatch: pytest.MonkeyPatch, level: str) -> None:
    base = _fake_base(BUILD_ID="bother", cpu_features=lambda: {level: True})
    monkeypatch.setattr(_native, "_baseline", lambda: base)
    _native.core.cache_clear()
    try:
        monkeypatch.setenv(_native.ISA_ENV, level)
        with pytest.raises(NativeExtensionError, match="another build"):
            _native.core()
    finally:
        _native.core.cache_clear()


def test_isa_report_names_the_loaded_module() -> None:
    report = _native.isa_report()
    assert list(report)[:3] == LEVELS
    loaded = [level for level, status in report.items() if status.startswith("loaded")]
    forced = os.environ.get(_native.ISA_ENV, "").strip().lower()  # the whole suite may run forced
    assert loaded == [BEST if forced in ("", "auto") else forced]
    for level in LEVELS[1:]:
        if level not in BUILT:
            assert report[level].startswith("not built"), report
    assert _native.describe().startswith(f"splatcodec native core: {_native.core().__name__}")


@pytest.mark.parametrize("forced", ["baseline", *USABLE])
def test_cancel_reaches_the_module_in_use(forced: str) -> None:
    """A token cancels through the module in use: it must stop a fit running on whichever module that is."""
    result = run_python("""
        import threading, time
        import numpy as np, splatcodec as sc
        from splatcodec import _native
        image = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
        outcome = {}
        token = sc.CancelToken()
        def work():
            with token:
                try:
                    sc.fit(image, 300, 10_000_000)  # hours if not cancelled
                except sc.CancelledError as exc:
                    outcome["error"] = str(exc)
        worker = threading.Thread(target=work, daemon=True)
        start = time.perf_counter()
        worker.start()
        time.sleep(0.3)
        token.cancel()
        worker.join(30)
        print(_native.isa(), outcome.get("error"), worker.is_alive(), time.perf_counter() - start < 30)
    """, forced)
    assert result.returncode == 0, result.stderr
    isa = _core.ISA if forced == "baseline" else forced
    assert result.stdout.split() == [isa, "cancelled", "False", "True"], result.stdout
