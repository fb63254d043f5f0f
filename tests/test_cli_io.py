"""The CLI's input and output policy (splatcodec.cli_io): bounded reads, safe targets, clear errors."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import splatcodec as sc
from splatcodec.codec import api

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
CLI = [sys.executable, "-m", "splatcodec.cli"]


def _cli(*args: str, stdin: object = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env=ENV, stdin=stdin, capture_output=True, timeout=timeout)


@pytest.fixture(scope="module")
def small_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli_io") / "small.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def small_gsplat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli_io") / "small.gsplat"
    path.write_bytes(api.encode_splats(sc.Splats([[4.0, 4.0]], [[2.0, 0.0, 2.0]], [[0.5, 0.2, 0.1]], 8, 8)))
    return path


@pytest.mark.parametrize("command", [["info", "/dev/zero"], ["decode", "/dev/zero", "-o", "-"]])
def test_endless_files_end_quickly_with_a_format_error(command: list[str]) -> None:
    start = time.perf_counter()
    result = _cli(*command, timeout=60)
    assert result.returncode == 1 and b"not a .gsplat file" in result.stderr
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize("command", [["decode", "-", "-o", "-"], ["info", "-"], ["encode", "-", "-o", "-"]])
def test_endless_stdin_ends_quickly(command: list[str]) -> None:
    """`yes | splatcodec ...`: the header (or the image signature) is refused before more is read."""
    yes = subprocess.Popen(["yes"], stdout=subprocess.PIPE)
    try:
        result = _cli(*command, stdin=yes.stdout, timeout=60)
    finally:
        yes.kill()
        yes.wait()
    assert result.returncode == 1, result.stderr
    assert b"error:" in result.stderr and b"Traceback" not in result.stderr


def test_stdin_is_read_to_the_declared_length(small_gsplat: Path) -> None:
    data = small_gsplat.read_bytes()
    ok = _cli("info", "-", "--json", stdin=open(small_gsplat, "rb"))
    assert ok.returncode == 0 and b'"width": 8' in ok.stdout
    for bad, message in ((data + b"x", b"trailing bytes"), (data[:-3], b"truncated")):
        result = subprocess.run([*CLI, "info", "-"], env=ENV, input=bad, capture_output=True, timeout=60)
        assert result.returncode == 1 and message in result.stderr


def test_force_refuses_non_regular_targets(small_png: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    target = tmp_path / "real.gsplat"
    target.write_bytes(b"old")
    link = tmp_path / "link.gsplat"
    link.symlink_to(target)
    for dst, message in ((fifo, b"not a regular file"), (link, b"symbolic link")):
        result = _cli("encode", str(small_png), "-e", "1", "-o", str(dst), "--force", "--quiet")
        assert result.returncode == 1 and message in result.stderr, result.stderr
    assert fifo.is_fifo() and link.is_symlink() and target.read_bytes() == b"old"


def test_force_refuses_a_character_device(small_png: Path, tmp_path: Path) -> None:
    device = tmp_path / "null"
    try:
        os.mknod(device, 0o666 | 0o020000, os.makedev(1, 3))  # a second /dev/null, private to the test
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot create a device node here: {exc}")
    result = _cli("encode", str(small_png), "-e", "1", "-o", str(device), "--force", "--quiet")
    assert result.returncode == 1 and b"not a regular file" in result.stderr
    assert device.is_char_device()


def test_errors_name_the_output_not_the_temporary_file(small_png: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "out.gsplat"
    result = _cli("encode", str(small_png), "-e", "1", "-o", str(missing), "--quiet")
    assert result.returncode == 1 and str(missing).encode() in result.stderr
    assert b".splatcodec-" not in result.stderr
    with pytest.raises(FileNotFoundError) as info:
        api.atomic_write(missing, b"data")
    assert info.value.filename == str(missing)


def test_absurd_targets_are_refused_before_fitting(small_png: Path, tmp_path: Path) -> None:
    start = time.perf_counter()
    result = _cli("encode", str(small_png), "--target-psnr", "3000", "-o", str(tmp_path / "x.gsplat"))
    assert result.returncode == 1 and b"target_psnr" in result.stderr and b"Traceback" not in result.stderr
    assert time.perf_counter() - start < 60


def test_tiny_images_encode_with_defaults(tmp_path: Path) -> None:
    for size in ((1, 1), (1, 2), (2, 2)):
        src = tmp_path / f"{size[0]}x{size[1]}.png"
        Image.new("RGB", size, (200, 30, 90)).save(src)
        result = _cli("encode", str(src), "-o", str(tmp_path / "out.gsplat"), "--force", "--quiet")
        assert result.returncode == 0, result.stderr
        assert api.decode((tmp_path / "out.gsplat").read_bytes()).shape[:2] == (size[1], size[0])


def test_load_reads_header_first() -> None:
    from splatcodec.errors import FormatError

    start = time.perf_counter()
    with pytest.raises(FormatError, match="bad signature"):
        api.load("/dev/zero")
    assert time.perf_counter() - start < 10


def test_gaussians_help_promises_no_exact_count() -> None:
    """On small images the stage pruning may store fewer Gaussians (issue 12, item 8): the help says so."""
    result = _cli("encode", "--help")
    text = b" ".join(result.stdout.split())  # click wraps the help text
    assert result.returncode == 0 and b"exactly" not in text and b"may store fewer" in text
