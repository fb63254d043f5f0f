"""``device="cpu" | "cuda" | "auto"`` on every public call that fits or renders, and ``--device`` on the CLI.

Runs everywhere. Where ``splatcodec._core_cuda`` is missing (or built but sees no GPU) ``device="cuda"``
must raise our DeviceUnavailableError saying which, from every entry point, and ``device="auto"`` must
give exactly the CPU's bytes and pixels. With a GPU those checks skip; tests/test_cuda.py then checks
the GPU results through the same calls. Nothing here stands in for a native module.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import splatcodec as sc
from splatcodec import _native
from splatcodec.cli import main
from splatcodec.codec.api import decode_splats
from splatcodec.errors import DeviceError, DeviceUnavailableError, InvalidInputError, SplatcodecError

GPU_USABLE = _native.cuda_status()[0] is not None
CUDA_BUILT = importlib.util.find_spec("splatcodec._core_cuda") is not None
no_gpu = pytest.mark.skipif(GPU_USABLE, reason="a GPU is usable here: device='cuda' works (tests/test_cuda.py)")
FAST = dict(effort=1, num_gaussians=40, threads=1)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(3)
    base = np.linspace(0, 255, 24 * 32).reshape(24, 32)
    pixels = np.stack([base, base[::-1], np.full_like(base, 90)], -1) + rng.normal(0, 6, (24, 32, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def gsplat(image: np.ndarray) -> bytes:
    return sc.encode(image, **FAST)


def entry_points(image: np.ndarray, gsplat: bytes, tmp_path) -> dict:
    """Every public call taking ``device=``, as name -> call(device)."""
    splats = decode_splats(gsplat)
    path = tmp_path / "img.gsplat"
    path.write_bytes(gsplat)
    return {
        "fit": lambda d: sc.fit(image, 20, 5, device=d),
        "fit_batch": lambda d: sc.fit_batch([image, image[:8]], 20, 5, device=d),
        "render": lambda d: sc.render(splats, device=d),
        "render_float": lambda d: sc.render_float(splats, width=40, device=d),
        "encode": lambda d: sc.encode(image, device=d, **FAST),
        "encode_batch": lambda d: sc.encode_batch([image], device=d, effort=1, num_gaussians=40),
        "encode_batch_return": lambda d: sc.encode_batch([image], device=d, errors="return", effort=1),
        "decode": lambda d: sc.decode(gsplat, device=d),
        "load": lambda d: sc.load(path, device=d),
        "save": lambda d: sc.save(tmp_path / "out.gsplat", image, device=d, **FAST),
    }


NAMES = ["fit", "fit_batch", "render", "render_float", "encode", "encode_batch", "encode_batch_return", "decode",
         "load", "save"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("device", ["gpu", "CUDA", "cuda:0", "", None, 0, "cpu "])
def test_unknown_device_is_invalid_input(image, gsplat, tmp_path, name: str, device) -> None:
    with pytest.raises(InvalidInputError, match="device must be one of 'cpu', 'cuda', 'auto'"):
        entry_points(image, gsplat, tmp_path)[name](device)
    assert not (tmp_path / "out.gsplat").exists()


def _unavailable_message() -> str:
    """What DeviceUnavailableError must say here: not built (how to build it), or built without a GPU."""
    if not CUDA_BUILT:
        return r"_core_cuda is not built; build it .*SPLATCODEC_CUDA=1 pip install -e \..*docs/cuda\.md"
    return r"_core_cuda is built but sees no CUDA device"


@no_gpu
@pytest.mark.parametrize("name", NAMES)
def test_cuda_without_a_gpu_says_why(image, gsplat, tmp_path, name: str) -> None:
    with pytest.raises(DeviceUnavailableError, match=_unavailable_message()) as caught:
        entry_points(image, gsplat, tmp_path)[name]("cuda")
    assert isinstance(caught.value, DeviceError) and isinstance(caught.value, SplatcodecError)
    assert isinstance(caught.value, RuntimeError) and not isinstance(caught.value, ValueError)
    assert not (tmp_path / "out.gsplat").exists()


@no_gpu
def test_auto_without_a_gpu_is_the_cpu_bit_for_bit(image, gsplat, tmp_path) -> None:
    assert _native.resolve_device("auto") == "cpu"
    calls = entry_points(image, gsplat, tmp_path)
    for name in ("encode", "encode_batch", "decode", "load", "render", "render_float", "fit"):
        got, want = calls[name]("auto"), calls[name]("cpu")
        if isinstance(want, np.ndarray):
            np.testing.assert_array_equal(got, want, err_msg=name)
        elif isinstance(want, sc.Splats):
            np.testing.assert_array_equal(got.packed(), want.packed(), err_msg=name)
        else:
            assert got == want, name
    stats_auto = sc.encode(image, device="auto", return_stats=True, target_bpp=2.0, effort=1, threads=1)
    stats_cpu = sc.encode(image, device="cpu", return_stats=True, target_bpp=2.0, effort=1, threads=1)
    assert stats_auto[0] == stats_cpu[0] and stats_auto[1].attempts == stats_cpu[1].attempts


def test_default_device_is_the_cpu(image, gsplat) -> None:
    assert sc.encode(image, **FAST) == sc.encode(image, device="cpu", **FAST) == gsplat
    np.testing.assert_array_equal(sc.decode(gsplat), sc.decode(gsplat, device="cpu"))


def test_resolve_device() -> None:
    assert _native.resolve_device("cpu") == "cpu"
    assert _native.resolve_device("auto") == ("cuda" if GPU_USABLE else "cpu")
    assert _native.module_for("cpu") is _native.core()
    line = _native.describe().splitlines()[-1]
    assert line.startswith("  cuda: ") and (line.endswith(")") if GPU_USABLE else "_core_cuda" in line)


def test_fit_kwargs_cannot_choose_the_device(image) -> None:
    with pytest.raises(InvalidInputError, match="fit_kwargs cannot set device"):
        sc.encode(image, fit_kwargs={"device": "cpu"}, **FAST)


# ---------------------------------------------------------------------------------------------- CLI
def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture()
def png(image: np.ndarray, tmp_path):
    path = tmp_path / "img.png"
    Image.fromarray(image).save(path)
    return path


@no_gpu
def test_cli_cuda_without_a_gpu_is_one_line(png, gsplat, tmp_path) -> None:
    (tmp_path / "in.gsplat").write_bytes(gsplat)
    for args in (["encode", str(png), "-o", str(tmp_path / "out.gsplat"), "--device", "cuda"],
                 ["decode", str(tmp_path / "in.gsplat"), "-o", str(tmp_path / "out.png"), "--device", "cuda"]):
        r = run(*args)
        assert r.exit_code == 1, r.output
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("splatcodec: error: device='cuda' is not available: "), lines
        assert "Traceback" not in r.output and ("docs/cuda.md" in lines[0] or "no CUDA device" in lines[0])
    assert not (tmp_path / "out.gsplat").exists() and not (tmp_path / "out.png").exists()


def test_cli_unknown_device_is_a_usage_error(png, tmp_path) -> None:
    r = run("encode", str(png), "-o", str(tmp_path / "out.gsplat"), "--device", "gpu")
    assert r.exit_code == 2 and "--device" in r.stderr and "Traceback" not in r.output


@no_gpu
def test_cli_auto_is_the_cpu_bit_for_bit(png, tmp_path) -> None:
    common = ["-e", "1", "--threads", "1", "--gaussians", "40", "--quiet"]
    for device in ("cpu", "auto"):
        assert run("encode", str(png), "-o", str(tmp_path / f"{device}.gsplat"), "--device", device,
                   *common).exit_code == 0
        assert run("decode", str(tmp_path / "cpu.gsplat"), "-o", str(tmp_path / f"{device}.png"), "--scale", "1.5",
                   "--device", device).exit_code == 0
    assert (tmp_path / "cpu.gsplat").read_bytes() == (tmp_path / "auto.gsplat").read_bytes()
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "cpu.png")),
                                  np.asarray(Image.open(tmp_path / "auto.png")))
