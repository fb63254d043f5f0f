"""The `splatcodec` command: encode/decode/info, outputs, overwrite rules and one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from splatcodec.cli import main

ROOT = Path(__file__).resolve().parents[1]
FAST = ["-e", "1", "--threads", "1", "--gaussians", "60"]


def run(*args: str, input: bytes | None = None):
    # click's runner sees SystemExit from our group's main(); catch_exceptions=False shows real bugs.
    runner = CliRunner()
    return runner.invoke(main, list(args), input=input, catch_exceptions=False)


@pytest.fixture()
def image_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    base = np.linspace(0, 255, 32 * 24).reshape(24, 32)
    for k in range(2):
        arr = np.clip(np.stack([base, base[::-1], np.full_like(base, 90)], -1) + rng.normal(0, 5, (24, 32, 3)), 0, 255)
        Image.fromarray(arr.astype(np.uint8)).save(tmp_path / f"img{k}.png")
    return tmp_path


def test_encode_decode_info_round_trip(image_dir: Path):
    src = image_dir / "img0.png"
    r = run("encode", str(src), *FAST)
    assert r.exit_code == 0, r.output
    out = image_dir / "img0.gsplat"
    assert out.exists() and "bpp" in r.stderr
    r = run("decode", str(out), "-o", str(image_dir / "back.png"))
    assert r.exit_code == 0, r.output
    assert Image.open(image_dir / "back.png").size == (32, 24)
    r = run("decode", str(out), "-o", str(image_dir / "big.jpg"), "--scale", "2")
    assert r.exit_code == 0 and Image.open(image_dir / "big.jpg").size == (64, 48)
    r = run("decode", str(out), "-o", str(image_dir / "p.png"), "--max-gaussians", "10", "--width", "16")
    assert r.exit_code == 0 and Image.open(image_dir / "p.png").size == (16, 12)
    r = run("info", str(out), "--json")
    facts = json.loads(r.stdout)
    # On small images the stage pruning may store fewer Gaussians than asked for (--gaussians' help).
    assert 0 < facts["num_gaussians"] <= 60 and facts["width"] == 32 and facts["bytes"] == out.stat().st_size
    assert "position" in facts["bits_per_gaussian"]
    r = run("info", str(out))
    assert "bits per Gaussian" in r.stdout
    r = run("info", str(out), "--header-only", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["bits_per_gaussian"] is None
    assert "bits per Gaussian" not in run("info", str(out), "--header-only").stdout


def test_directory_and_several_inputs(image_dir: Path, tmp_path_factory):
    dest = tmp_path_factory.mktemp("out")
    r = run("encode", str(image_dir), "-o", str(dest), *FAST, "--quiet")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in dest.iterdir()) == ["img0.gsplat", "img1.gsplat"]
    r = run("encode", str(image_dir / "img0.png"), str(image_dir / "img1.png"), "-o", str(dest / "x.gsplat"), *FAST)
    assert r.exit_code == 2 and "directory" in r.stderr


def test_refuses_overwrite_without_force(image_dir: Path):
    src = image_dir / "img0.png"
    dst = image_dir / "o.gsplat"
    dst.write_bytes(b"precious")
    r = run("encode", str(src), "-o", str(dst), *FAST)
    assert r.exit_code != 0 and "--force" in r.stderr
    assert dst.read_bytes() == b"precious"
    r = run("encode", str(src), "-o", str(dst), *FAST, "--force")
    assert r.exit_code == 0 and dst.read_bytes()[:2] == b"\x89G"


def test_stdin_and_stdout(image_dir: Path):
    png = (image_dir / "img0.png").read_bytes()
    r = run("encode", "-", "-o", "-", *FAST, input=png)
    assert r.exit_code == 0
    data = r.stdout_bytes
    assert data[:2] == b"\x89G"
    r = run("decode", "-", "-o", "-", input=data)
    assert r.exit_code == 0 and r.stdout_bytes[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, code, needle", [
    (["encode", "/nonexistent.png"], 1, "no such file"),
    (["decode", "/nonexistent.gsplat"], 1, "no such file"),
    (["info", "/nonexistent.gsplat"], 1, "no such file"),
    (["encode", "IMG", "-q", "150"], 2, "quality"),
    (["encode", "IMG", "-q", "50", "--target-bpp", "1"], 2, "one of"),
    (["encode", "IMG", "--effort", "0"], 2, "effort"),
    (["decode", "IMG", "-o", "x.png"], 1, "signature"),
    (["decode", "GS", "-o", "OUT.nope"], 2, "format"),
    (["decode", "GS", "--scale", "2", "--width", "3"], 2, "scale"),
    (["bogus"], 2, "No such command"),
])
def test_user_mistakes_are_one_line(image_dir: Path, args, code, needle):
    gs = image_dir / "g.gsplat"
    if not gs.exists():
        assert run("encode", str(image_dir / "img0.png"), "-o", str(gs), *FAST).exit_code == 0
    args = [a.replace("IMG", str(image_dir / "img0.png")).replace("GS", str(gs)).replace("OUT", str(image_dir / "o"))
            for a in args]
    r = run(*args)
    assert r.exit_code == code, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("splatcodec: error:"), r.stderr
    assert needle.lower() in lines[0].lower()
    assert "Traceback" not in r.output


def test_corrupt_file_is_an_error_without_traceback(image_dir: Path):
    gs = image_dir / "c.gsplat"
    assert run("encode", str(image_dir / "img0.png"), "-o", str(gs), *FAST).exit_code == 0
    data = bytearray(gs.read_bytes())
    data[len(data) // 2] ^= 0x10
    gs.write_bytes(bytes(data))
    for cmd in (["decode", str(gs), "-o", str(image_dir / "c.png")], ["info", str(gs)]):
        r = run(*cmd)
        assert r.exit_code == 1 and "CRC" in r.stderr and "Traceback" not in r.output
    assert not (image_dir / "c.png").exists()


def test_console_entry_point_runs_as_a_module(image_dir: Path):
    """`python -m splatcodec.cli` (what the console script calls) exits non-zero with one line."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-m", "splatcodec.cli", "info", str(image_dir / "img0.png")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "signature" in p.stderr


def test_bench_rd_forwards_to_the_benchmark_script(capsys):
    from splatcodec import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "rd", "--help"])
    assert exit_info.value.code == 0
    assert "usage" in capsys.readouterr().out.lower()
