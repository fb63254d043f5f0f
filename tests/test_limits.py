"""The limits of splatcodec.limits bound what is really allocated and evaluated, in every entry point.

Bombs are built small here (a few hundred bytes) and must be refused before anything large is
allocated; a memory failure surfaces as MemoryError, never as "invalid input".
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import splatcodec as sc
from splatcodec import _native, limits
from splatcodec.codec import api
from splatcodec.errors import InvalidInputError, LimitExceededError

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=300)


def test_native_maxima_match_the_python_ones() -> None:
    core = _native.core()
    assert core.MAX_SIDE == limits.MAX_DIMENSION
    assert core.MAX_PIXELS == limits.NATIVE_MAX_PIXELS
    assert core.MAX_GAUSSIANS == limits.NATIVE_MAX_GAUSSIANS
    from splatcodec.codec import container
    assert container.MAX_DIMENSION == limits.MAX_DIMENSION  # the format and the core agree


def test_work_is_counted_in_16_column_chunks() -> None:
    """A 1-pixel-wide, 100-row Gaussian costs 16 x 100 evaluations on every build (the widest SIMD
    chunk), not the 2-3 columns of its box."""
    params = np.array([[5.5, 50.0, 0.05, 0.0, 100.0 / 6, 1.0]], np.float32)  # 3 sigma = 50 rows each way
    box_rows = 100
    work = 16 * box_rows
    _native.call("render", params, 64, 100, 1, max_work=float(work))
    with pytest.raises(LimitExceededError, match="evaluate"):
        _native.call("render", params, 64, 100, 1, max_work=float(work - 1))


def test_tile_entries_are_capped_before_binning() -> None:
    params = np.array([[32.0, 32.0, 20.0, 0.0, 20.0, 1.0]] * 4, np.float32)  # 4 x 16 tiles
    _native.call("render", params, 64, 64, 1, max_entries=64)
    with pytest.raises(LimitExceededError, match="Gaussian-tile entries"):
        _native.call("render", params, 64, 64, 1, max_entries=63)


def _bomb(n: int, size: int, chol: tuple[float, float, float], channels: int = 3) -> sc.Splats:
    return sc.Splats(np.full((n, 2), size / 2), np.tile(chol, (n, 1)), np.full((n, channels), 0.001), size, size)


def test_gaussians_per_byte_cap_refuses_tiny_files_declaring_millions() -> None:
    data = api.encode_splats(_bomb(200_000, 4096, (1.0, 0.0, 700.0)), levels=1)
    assert len(data) < 2000
    with pytest.raises(LimitExceededError, match="per byte"):
        api.decode(data)
    with pytest.raises(LimitExceededError, match="per byte"):
        api.decode_splats(data)
    with pytest.raises(LimitExceededError, match="per byte"):
        api.info(data)


def test_real_encodes_are_far_below_the_per_byte_caps(kodim23_crop: np.ndarray) -> None:
    data, stats = api.encode(kodim23_crop, 90, effort=1, return_stats=True)
    per_byte = stats.num_gaussians / len(data)
    assert per_byte < limits.DEFAULT_MAX_GAUSSIANS_PER_BYTE / 4
    assert len(data) / stats.num_gaussians < limits.DEFAULT_MAX_BYTES_PER_GAUSSIAN / 4


@pytest.mark.parametrize("entry", ["render", "render_float", "fit_init"])
def test_render_budget_applies_to_every_entry(entry: str) -> None:
    """200k image-sized Gaussians: refused at once, not a MemoryError after seconds of binning."""
    splats = _bomb(200_000, 4096, (800.0, 0.0, 800.0))
    with pytest.raises(LimitExceededError, match="Gaussian-tile entries"):
        if entry == "render":
            sc.render(splats)
        elif entry == "render_float":
            sc.render_float(splats)
        else:
            sc.fit(np.full((4096, 4096), 10, np.uint8), init=_bomb(200_000, 4096, (800.0, 0.0, 800.0), 1),
                   iterations=1)


def test_memory_failure_is_memory_error_not_invalid_input() -> None:
    """Under a 1.5 GB address-space cap, a render whose tile lists do not fit raises MemoryError."""
    result = _run("""
        import resource
        import numpy as np, splatcodec as sc
        n = 12_500  # x 16384 tiles each: 2e8 entries, 2.4 GB of tile lists
        s = sc.Splats(np.full((n, 2), 1024.0), np.tile([400.0, 0.0, 400.0], (n, 1)), np.full((n, 1), 1e-3), 2048, 2048)
        sc.render(sc.Splats(s.xy[:1], s.chol[:1], s.color[:1], 2048, 2048), threads=1)  # warm-up: load the core
        resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))
        try:
            sc.render(s, max_pixels=None, threads=1)
        except MemoryError as exc:
            print("MemoryError", isinstance(exc, sc.InvalidInputError))
        except sc.SplatcodecError as exc:
            print("ours", type(exc).__name__, exc)
    """)
    assert result.stdout.split()[:2] == ["MemoryError", "False"], result.stdout + result.stderr


@pytest.mark.parametrize("bad", [float("nan"), "x", 0, -5, 2.5, True])
def test_limits_cannot_be_switched_off_by_malformed_values(bad: object) -> None:
    data = api.encode_splats(_bomb(4, 64, (3.0, 0.0, 3.0)), levels=1)
    with pytest.raises(InvalidInputError):
        api.decode(data, max_pixels=bad)
    with pytest.raises(InvalidInputError):
        api.decode(data, gaussian_limit=bad)
    with pytest.raises(InvalidInputError):
        sc.render(api.decode_splats(data), max_pixels=bad)


def test_decode_peak_memory_is_a_small_multiple_of_the_output(tmp_path: Path) -> None:
    """8192x4096 RGB from one Gaussian: a 96 MiB result; float -> uint8 happens in the core, tile by tile."""
    path = tmp_path / "wide.gsplat"
    splats = sc.Splats([[4096.0, 2048.0]], [[900.0, 0.0, 900.0]], [[0.5, 0.3, 0.8]], 8192, 4096)
    path.write_bytes(api.encode_splats(splats, levels=1))
    result = _run(f"""
        from splatcodec.codec import api

        def peak():  # this process's RSS high-water mark (ru_maxrss would include the parent's)
            return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))

        data = open({str(path)!r}, "rb").read()
        api.decode(data, width=64)  # warm-up: imports and the core loaded before measuring
        before = peak()
        pixels = api.decode(data)
        print(pixels.nbytes, peak() - before)
    """)
    assert result.returncode == 0, result.stderr
    output, growth = map(int, result.stdout.split())
    assert output == 8192 * 4096 * 3
    assert growth < 1.5 * output, f"peak grew by {growth / 2**20:.0f} MiB for a {output / 2**20:.0f} MiB image"


def test_degenerate_inputs_are_refused_up_front() -> None:
    from PIL import Image

    with pytest.raises(InvalidInputError):
        api.encode(Image.new("RGB", (0, 0)))
    with pytest.raises(InvalidInputError, match="diverged"):
        sc.fit(np.full((32, 32), 100, np.uint8), 20, 50, lr_scale=1e30)
    nan_init = sc.Splats([[1.0, 1.0]], [[float("nan"), 0.0, 1.0]], [[0.5]], 8, 8)
    with pytest.raises(InvalidInputError, match="NaN"):
        sc.fit(np.zeros((8, 8), np.uint8), init=nan_init, iterations=2)


def test_writers_refuse_what_readers_refuse() -> None:
    for width in (1 << 21, 1 << 32, (1 << 16) + 1):
        splats = sc.Splats([[1.0, 1.0]], [[1.0, 0.0, 1.0]], [[0.5]], width, 4)
        with pytest.raises(InvalidInputError, match="each side"):
            api.encode_splats(splats)
    wide = sc.Splats([[1.0, 1.0]], [[1.0, 0.0, 1.0]], [[0.5]], 1 << 16, 2)
    data = api.encode_splats(wide)
    assert api.info(data).width == 1 << 16
    assert api.decode(data, width=64).shape == (1, 64, 1)


def test_junk_after_the_entropy_models_is_refused() -> None:
    """Issue 12, item 10: bytes after the QUNT models were accepted (and unpacked 8x)."""
    import struct

    from splatcodec.codec import bitstream, container
    from splatcodec.errors import FormatError

    data = api.encode_splats(_bomb(40, 64, (3.0, 0.0, 3.0)), levels=1)
    header = container.read_header(data)
    sections = container.read_sections(data, header, bitstream.KNOWN_SECTIONS)
    qunt = sections[0].payload
    # QUNT: depths (4 + C bytes), ranges (8 (5 + C)), u16 group count, u32 sizes, u32 blob length, blob.
    channels = header.channels
    at = 4 + channels + 8 * (5 + channels)
    (groups,) = struct.unpack_from("<H", qunt, at)
    at += 2 + 4 * groups
    (blob_len,) = struct.unpack_from("<I", qunt, at)
    assert at + 4 + blob_len == len(qunt)
    assert api.decode_splats(data).num_gaussians == 40
    for junk in (b"\x00", b"\x00" * 64, b"\xff" * 1000):
        payload = qunt[:at] + struct.pack("<I", blob_len + len(junk)) + qunt[at + 4:] + junk
        parts = [(s.type, s.required, payload if k == 0 else s.payload) for k, s in enumerate(sections)]
        with pytest.raises(FormatError, match="trailing"):
            api.decode_splats(container.write_file(header, parts))
