"""The numba fallback renderer against the native core, and how the backend is chosen.

The native core is required here (the comparison needs it); the fallback itself is exercised in
subprocesses where importing the core is made to fail, as on a machine without a compiler.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import splatcodec
from splatcodec import _native
from splatcodec.errors import InvalidInputError

from kodak import REPO_ROOT, load_kodak

numba_raster = pytest.importorskip("splatcodec.backends.numba_raster",
                                   reason="numba is not installed (pip install splatcodec[numba])")


def random_scene(rng: np.random.Generator, n: int, width: int, height: int, channels: int) -> np.ndarray:
    """Gaussians of every kind the renderer must handle: in and far outside the image, tiny and huge,
    sheared, negative diagonals, negative colours, and some degenerate (NaN, inf, zero diagonal)."""
    p = np.zeros((n, 5 + channels), np.float32)
    p[:, 0] = rng.uniform(-0.3 * width, 1.3 * width, n)
    p[:, 1] = rng.uniform(-0.3 * height, 1.3 * height, n)
    size = np.exp(rng.uniform(np.log(0.05), np.log(0.6 * max(width, height)), n))
    p[:, 2] = size * rng.choice([-1.0, 1.0], n) * rng.uniform(0.3, 1.0, n)
    p[:, 3] = rng.normal(0.0, 0.5, n) * size
    p[:, 4] = size * rng.choice([-1.0, 1.0], n) * rng.uniform(0.3, 1.0, n)
    p[:, 5:] = rng.normal(0.0, 0.4, (n, channels))
    bad = rng.choice(n, size=max(1, n // 50), replace=False)
    p[bad[0::4], 0] = np.nan
    p[bad[1::4], 2] = 0.0
    p[bad[2::4], 4] = 1e-8
    p[bad[3::4], 5] = np.inf
    return p


def baseline_render(params: np.ndarray, width: int, height: int) -> np.ndarray:
    return _native._baseline().render(params, width, height, 0)


@pytest.mark.parametrize("seed, width, height, channels", [
    (0, 64, 48, 3), (1, 97, 33, 1), (2, 1, 1, 3), (3, 300, 17, 3), (4, 16, 160, 1), (5, 255, 257, 3)])
def test_random_scenes_match_native(seed, width, height, channels):
    rng = np.random.default_rng(seed)
    params = random_scene(rng, 600, width, height, channels)
    ours = numba_raster.render(params, width, height)
    assert ours.shape == (height, width, channels) and ours.dtype == np.float32
    # Same arithmetic and summation order as the portable core (no FMA contraction): bit for bit.
    np.testing.assert_array_equal(ours, baseline_render(params, width, height))
    # The core in use (AVX2/AVX-512 builds fuse some multiply-adds): equal to float rounding.
    native = _native.call("render", params, width, height, 0)
    scale = max(1.0, float(np.abs(native).max()))
    assert float(np.abs(ours - native).max()) <= 2e-5 * scale


def test_empty_and_all_degenerate_scenes_are_black():
    empty = np.zeros((0, 8), np.float32)
    assert not numba_raster.render(empty, 20, 10).any()
    degenerate = np.array([[5, 5, 0, 0, 0, 1, 1, 1], [np.nan, 5, 1, 0, 1, 1, 1, 1]], np.float32)
    assert not numba_raster.render(degenerate, 20, 10).any()


def test_threads_do_not_change_the_image():
    params = random_scene(np.random.default_rng(7), 400, 120, 90, 3)
    one = numba_raster.render(params, 120, 90, threads=1)
    np.testing.assert_array_equal(one, numba_raster.render(params, 120, 90, threads=0))


@pytest.mark.parametrize("shape, width, height", [((5, 7), 10, 10), ((5, 8), 0, 10), ((5, 8), 10, 1 << 17)])
def test_bad_arguments_raise_our_error(shape, width, height):
    with pytest.raises(InvalidInputError):
        numba_raster.render(np.zeros(shape, np.float32), width, height)


@pytest.fixture(scope="module")
def real_files() -> list[bytes]:
    """Real encodes: a colour and a gray Kodak crop, and the committed golden file."""
    rgb = np.ascontiguousarray(load_kodak("kodim23")[150:278, 300:460])
    gray = np.ascontiguousarray(load_kodak("kodim01")[:96, :128].mean(axis=2).round().astype(np.uint8))
    golden = (REPO_ROOT / "tests" / "golden" / "tiny.gsplat").read_bytes()
    return [splatcodec.encode(rgb, quality=60, effort=1), splatcodec.encode(gray, quality=40, effort=1), golden]


def test_decoded_files_match_native(real_files):
    from splatcodec.codec.api import decode_splats
    from splatcodec.render import scaled_params

    for data in real_files:
        splats = decode_splats(data)
        for width, height in ((splats.width, splats.height), (splats.width // 3 + 1, splats.height // 3 + 1),
                              (2 * splats.width, 2 * splats.height)):
            params = scaled_params(splats, width, height)
            ours = numba_raster.render(params, width, height)
            np.testing.assert_array_equal(ours, baseline_render(params, width, height))
            native = _native.call("render", params, width, height, 0)
            assert float(np.abs(ours - native).max()) <= 1e-5


def _run(script: str, **env: str) -> subprocess.CompletedProcess:
    """Runs ``script`` in a fresh interpreter in which importing splatcodec's native modules fails."""
    blocker = textwrap.dedent("""
        import importlib.abc, sys
        class _NoNativeCore(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.startswith("splatcodec._core"):
                    raise ImportError(f"{name} blocked for this test")
                return None
        sys.meta_path.insert(0, _NoNativeCore())
    """)
    environment = {k: v for k, v in os.environ.items() if k not in ("SPLATCODEC_BACKEND", "SPLATCODEC_ISA")}
    environment.update(PYTHONPATH=str(REPO_ROOT), **env)
    return subprocess.run([sys.executable, "-c", blocker + textwrap.dedent(script)], capture_output=True,
                          text=True, env=environment, timeout=300)


GOLDEN = str(REPO_ROOT / "tests" / "golden" / "tiny.gsplat")


def test_decode_without_native_core_falls_back_to_numba_with_one_warning(tmp_path):
    out = tmp_path / "decoded.npy"
    result = _run(f"""
        import warnings, numpy as np, splatcodec
        from splatcodec import backends
        data = open({GOLDEN!r}, "rb").read()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image = splatcodec.decode(data)
            splatcodec.decode(data, width=40)
        print(backends.backend(), len(caught), caught[0].category.__name__)
        try:
            splatcodec.encode(np.zeros((16, 16), np.uint8), effort=1)
        except splatcodec.NativeExtensionError as exc:
            print("encode refused:", exc)
        np.save({str(out)!r}, image)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("numba 1 RuntimeWarning"), result.stdout
    assert "encode refused: splatcodec's native core is not available" in result.stdout
    np.testing.assert_array_equal(np.load(out), splatcodec.decode(open(GOLDEN, "rb").read()))


def test_backend_env_forces_one():
    forced = _run("""
        import warnings, splatcodec
        from splatcodec import backends
        warnings.simplefilter("error")  # forcing numba is a choice: no warning
        splatcodec.decode(open(%r, "rb").read())
        print(backends.backend())
    """ % GOLDEN, SPLATCODEC_BACKEND="numba")
    assert forced.returncode == 0 and forced.stdout.strip() == "numba", forced.stderr
    native = _run("""
        import splatcodec
        try:
            splatcodec.decode(open(%r, "rb").read())
        except splatcodec.NativeExtensionError as exc:
            print("refused:", exc)
    """ % GOLDEN, SPLATCODEC_BACKEND="native")
    assert native.returncode == 0 and native.stdout.startswith("refused:"), native.stderr
    bad = _run("""
        import splatcodec
        try:
            splatcodec.decode(open(%r, "rb").read())
        except splatcodec.NativeExtensionError as exc:
            print("refused:", exc)
    """ % GOLDEN, SPLATCODEC_BACKEND="cuda")
    assert "is not one of auto, native, numba" in bad.stdout, bad.stderr


def test_uncacheable_location_still_renders(tmp_path):
    # Only numba's user-provided locator, pointed at a file: no cache directory can be made.
    blocked = tmp_path / "not_a_directory"
    blocked.write_text("")
    result = _run("""
        import warnings, splatcodec
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image = splatcodec.decode(open(%r, "rb").read())
        print(image.shape, [str(w.message) for w in caught if "cannot be cached" in str(w.message)] != [])
    """ % GOLDEN, SPLATCODEC_BACKEND="numba", NUMBA_CACHE_DIR=str(blocked),
        NUMBA_CACHE_LOCATOR_CLASSES="numba.core.caching.UserProvidedCacheLocator")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("True")


def test_cli_decodes_without_native_core(tmp_path):
    out = tmp_path / "decoded.png"
    result = _run(f"""
        import sys
        from splatcodec.cli import main
        sys.argv = ["splatcodec", "decode", {GOLDEN!r}, "-o", {str(out)!r}, "--width", "48"]
        main()
    """)
    assert result.returncode == 0, result.stderr
    assert "numba renderer" in result.stderr  # the one-time warning
    from PIL import Image

    with Image.open(out) as im:
        np.testing.assert_array_equal(np.asarray(im), splatcodec.decode(open(GOLDEN, "rb").read(), width=48))


def test_budget_is_counted_like_the_native_core():
    # One Gaussian 1 px wide and the image's height: 1 tile column x 4 tile rows, and a 16-column chunk
    # per evaluated row (64 rows): what the native bin() counts.
    params = np.array([[8.5, 32.0, 0.2, 0.0, 12.0, 1.0]], np.float32)
    image = numba_raster.render(params, 64, 64, max_entries=4, max_work=16 * 64)
    assert image.any()
    with pytest.raises(splatcodec.LimitExceededError, match="Gaussian-tile entries"):
        numba_raster.render(params, 64, 64, max_entries=3)
    with pytest.raises(splatcodec.LimitExceededError, match="16-column chunks"):
        numba_raster.render(params, 64, 64, max_work=16 * 64 - 1)


def test_budget_verdicts_match_the_native_core():
    rng = np.random.default_rng(11)
    params = random_scene(rng, 300, 200, 150, 3)
    index, *_, x0, x1, y0, y1 = numba_raster.prepare(params, 200, 150)
    for max_entries, max_work in ((50, 0.0), (10**9, 1e4), (10**9, 1e9)):
        try:
            _native.run("render", params, 200, 150, 0, max_entries=max_entries, max_work=max_work)
            native = "ok"
        except splatcodec.LimitExceededError as exc:
            native = str(exc)
        try:
            numba_raster.render(params, 200, 150, max_entries=max_entries, max_work=max_work)
            ours = "ok"
        except splatcodec.LimitExceededError as exc:
            ours = str(exc)
        assert ours == native
