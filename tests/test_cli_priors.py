"""`--priors FILE` of `splatcodec encode / decode / info`: dataset priors usable from the command line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from splatcodec.cli import main
from splatcodec.codec import api, compact
from splatcodec.codec.priors import Priors, builtin

FAST = ["--gaussians", "12", "-e", "1", "--threads", "1", "--levels", "1"]


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _variant(seed: int) -> Priors:
    """A valid priors set other than the built-in one (the built-in tables, reweighted)."""
    rng = np.random.default_rng(seed)
    base = builtin()
    tables = [np.clip(t * rng.uniform(0.5, 1.5, t.shape), 1, 0xFFFF).astype(np.int64) for t in base.tables]
    return Priors(tables, base.gap.copy())


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(3)
    img = np.clip(rng.normal(0, 12, (16, 16, 3)) + np.linspace(30, 220, 16)[None, :, None], 0, 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    (tmp_path / "p.bin").write_bytes(_variant(1).to_bytes())
    (tmp_path / "other.bin").write_bytes(_variant(2).to_bytes())
    (tmp_path / "junk.bin").write_bytes(b"GSPR" + b"\0" * 10)
    return {"img": tmp_path / "a.png", "priors": tmp_path / "p.bin", "other": tmp_path / "other.bin",
            "junk": tmp_path / "junk.bin", "dir": tmp_path}


def test_encode_decode_info_with_priors(files):
    gs = files["dir"] / "a.gsplat"
    r = run("encode", str(files["img"]), "-o", str(gs), "--priors", str(files["priors"]), *FAST)
    assert r.exit_code == 0, r.output
    data = gs.read_bytes()
    assert compact.is_compact(data) and data[3] & 0x20  # names its dataset priors
    expect = api.decode(data, priors=files["priors"])
    r = run("decode", str(gs), "-o", str(files["dir"] / "back.png"), "--priors", str(files["priors"]))
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(np.asarray(Image.open(files["dir"] / "back.png")), expect)
    r = run("info", str(gs), "--json", "--priors", str(files["priors"]))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["num_gaussians"] == api.info(data, priors=files["priors"]).num_gaussians > 0


@pytest.mark.parametrize("cmd", ["decode", "info"])
def test_missing_or_wrong_priors_are_one_line_errors(files, cmd):
    gs = files["dir"] / "a.gsplat"
    assert run("encode", str(files["img"]), "-o", str(gs), "--priors", str(files["priors"]), *FAST).exit_code == 0
    ident = _variant(1).ident().hex()
    extra = ["-o", str(files["dir"] / "x.png")] if cmd == "decode" else []
    for priors, needle in (([], f"dataset priors {ident}"), (["--priors", str(files["other"])], "needs dataset priors"),
                           (["--priors", str(files["junk"])], "not a splatcodec priors file"),
                           (["--priors", str(files["dir"] / "none.bin")], "cannot read priors file")):
        r = run(cmd, str(gs), *extra, *priors)
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 1 and len(lines) == 1 and needle in lines[0], r.output
        assert "Traceback" not in r.output
    assert not (files["dir"] / "x.png").exists()
    if cmd == "decode":
        assert "--priors FILE" in run(cmd, str(gs), *extra).stderr


def test_encode_refuses_a_bad_priors_file_before_writing(files):
    out = files["dir"] / "b.gsplat"
    r = run("encode", str(files["img"]), "-o", str(out), "--priors", str(files["junk"]), *FAST)
    assert r.exit_code == 1 and "not a splatcodec priors file" in r.stderr and not out.exists()


def test_files_without_dataset_priors_ignore_the_option(files):
    gs = files["dir"] / "plain.gsplat"
    assert run("encode", str(files["img"]), "-o", str(gs), *FAST).exit_code == 0
    r = run("decode", str(gs), "-o", str(files["dir"] / "p.png"), "--priors", str(files["priors"]))
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(np.asarray(Image.open(files["dir"] / "p.png")), api.decode(gs.read_bytes()))
