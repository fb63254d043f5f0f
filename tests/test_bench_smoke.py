"""Smoke test of benchmarks/rd.py: 2 small images x 2 rate points for every reference codec, for real.

splatcodec's own codec is left out (it is benchmarked only by the full run); what this checks is the
harness: real encodes, the CompressAI-style JSON shape, sensible finite numbers, CSV, plot, resume, and
the BD-rate sign convention.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
KODAK = REPO.parent / "shared" / "data" / "kodak"


def _load_rd():
    spec = importlib.util.spec_from_file_location("bench_rd", REPO / "benchmarks" / "rd.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_rd"] = mod  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(mod)
    return mod


rd = _load_rd()


def _make_images(folder: Path) -> None:
    """Two 192x176 crops of Kodak images (>160 px so MS-SSIM applies), or textured stand-ins without Kodak."""
    folder.mkdir()
    for k, (name, box) in enumerate((("kodim01.png", (300, 200, 492, 376)), ("kodim23.png", (250, 150, 442, 326)))):
        if (KODAK / name).exists():
            Image.open(KODAK / name).convert("RGB").crop(box).save(folder / f"img{k}.png")
        else:
            rng = np.random.default_rng(k)
            i, j = np.mgrid[0:176, 0:192]
            base = 128 + 70 * np.sin(i[..., None] / (5 + k) + np.arange(3)) * np.cos(j[..., None] / 9)
            img = (base + rng.normal(0, 12, base.shape)).clip(0, 255).astype(np.uint8)
            Image.fromarray(img).save(folder / f"img{k}.png")


def test_rd_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images, out = tmp_path / "imgs", tmp_path / "out"
    _make_images(images)
    refs = [c for c in rd.reference_codecs() if c.available()[0]]
    names = [c.name for c in refs]
    assert {"jpeg-420", "jpeg-444", "webp", "avif"} <= set(names)  # Pillow here must have these
    low_high = {"jpeg-420": "20,80", "jpeg-444": "20,80", "webp": "20,80", "avif": "30,70", "jxl": "20,80"}
    argv = [str(images), "--out", str(out), "--codecs", ",".join(names), "--repeats", "1", "-q"]
    for n in names:
        argv += ["--values", f"{n}={low_high[n]}"]

    assert rd.main(argv + ["--plot", str(tmp_path / "rd.png")]) == 0
    first = capsys.readouterr().out
    assert f"0 measurements cached, {len(names) * 4} to run" in first

    for n in names:
        doc = json.loads((out / "json" / f"{n}.json").read_text())
        assert set(doc) == {"name", "description", "results"} and doc["name"] and doc["description"]
        res = doc["results"]
        for key in ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time", "quality"):
            assert len(res[key]) == 2, (n, key)
            assert all(isinstance(v, float) and math.isfinite(v) for v in res[key]), (n, key, res[key])
        assert all(0.02 < b < 12 for b in res["bpp"]), (n, res["bpp"])
        assert all(18 < p < 60 for p in res["psnr-rgb"]), (n, res["psnr-rgb"])
        assert all(0.5 < m <= 1.0 for m in res["ms-ssim-rgb"]), (n, res["ms-ssim-rgb"])
        assert all(t > 0 for t in res["encoding_time"] + res["decoding_time"])
        # the higher quality setting must cost more bits and give better quality
        assert res["quality"][0] < res["quality"][1]
        assert res["bpp"][0] < res["bpp"][1] and res["psnr-rgb"][0] < res["psnr-rgb"][1], (n, res)

    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(names) * 2 * 2
    for r in rows:  # bpp is 8 * real bytes / pixels
        assert float(r["bpp"]) == pytest.approx(8 * int(r["bytes"]) / (int(r["width"]) * int(r["height"])))
    assert (tmp_path / "rd.png").stat().st_size > 10_000
    assert "Sanity check" in first and "WebP" in first
    if rd.SplatCodec().available()[0] is False:
        assert "splatcodec" not in names
        rd.main([str(images), "--out", str(out), "--codecs", "jpeg-420,splatcodec", "--values", "jpeg-420=20,80",
                 "--repeats", "1", "-q", "--no-plot"])
        msg = capsys.readouterr().out
        assert "splatcodec: UNAVAILABLE" in msg and "BD table for splatcodec: NOT COMPUTED" in msg

    # a second run resumes from the cache and reproduces the same curves
    before = (out / "json" / "jpeg-420.json").read_text()
    assert rd.main(argv + ["--no-plot"]) == 0
    assert f"{len(names) * 4} measurements cached, 0 to run" in capsys.readouterr().out
    assert json.loads((out / "json" / "jpeg-420.json").read_text())["results"]["bpp"] == json.loads(before)["results"]["bpp"]


def test_bd_rate_sign_and_value() -> None:
    """A codec needing 20% fewer bits at every quality has BD-rate -20% against the original."""
    codec = rd.reference_codecs()[0]
    bpp = [0.2, 0.4, 0.7, 1.0, 1.4]
    psnr = [26.0, 28.5, 30.6, 32.0, 33.4]
    anchor = rd.Curve(codec, 1, values=[1] * 5, bpp=bpp, psnr=psnr, ms_ssim=[0.9, 0.94, 0.96, 0.97, 0.98])
    test = rd.Curve(codec, 1, values=[1] * 5, bpp=[0.8 * b for b in bpp], psnr=psnr, ms_ssim=anchor.ms_ssim)
    r = rd.bd_metrics(anchor, test)
    assert r["bd_rate"] == pytest.approx(-20.0, abs=1e-9)
    assert r["bd_rate_msssim"] == pytest.approx(-20.0, abs=1e-9)
    assert r["bd_psnr"] > 0
