"""Smoke test of the rate-distortion benchmark (benchmarks.rd): 2 small images x 2 rate points for every reference codec, for real.

splatcodec's own codec is left out (it is benchmarked only by the full run); what this checks is the
harness: real encodes, the CompressAI-style JSON shape, sensible finite numbers, CSV, plot, resume, and
the BD-rate sign convention.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
KODAK = REPO.parent / "shared" / "data" / "kodak"


from benchmarks import rd  # noqa: E402  (the repository root is on sys.path: pyproject's pytest pythonpath)


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


def test_per_image_gains_against_interpolated_anchor() -> None:
    """Gains are PSNR differences at equal bpp on each image, with the anchor interpolated in log bpp."""
    rows = []
    for image, offset in (("a.png", 1.0), ("b.png", -0.5)):
        for q, bpp, psnr in ((10, 0.2, 26.0), (50, 0.8, 32.0)):  # anchor: +3 dB per doubling of bpp
            rows.append({"codec": "jpeg-420", "image": image, "value": q, "bpp": bpp, "psnr": psnr})
        rows.append({"codec": "splatcodec", "image": image, "value": 60, "bpp": 0.4, "psnr": 29.0 + offset})
        rows.append({"codec": "splatcodec", "image": image, "value": 90, "bpp": 1.6, "psnr": 40.0})  # beyond it
    low, high = rd.per_image_gains(rows, "splatcodec", "jpeg-420")
    assert (low["value"], low["n"], low["wins"]) == (60, 2, 1)
    assert low["mean"] == pytest.approx(0.25) and low["worst"] == pytest.approx(-0.5)
    assert low["best"] == pytest.approx(1.0) and low["bpp"] == pytest.approx(0.4)
    assert high["n"] == 0 and math.isnan(high["mean"])  # outside the anchor's sweep: not compared
    table = rd.format_per_image_table("t", [low, high], "quality")
    assert "| 60 | 0.400 | 2 | +0.25 | -0.50 | +1.00 | 1/2 |" in table


# ------------------------------------------------------------------------------------ benchmarks.speed


def _load_speed():
    from benchmarks import speed

    return speed


def _numbers(node, path=""):
    """(path, value) of every number in a JSON tree (booleans excluded)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _numbers(v, f"{path}[{i}]")
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path, node


def _fake_rd_results(folder: Path) -> None:
    """rd.py-style JSON for a reference codec and splatcodec (the codecs section only reads them)."""
    (folder / "json").mkdir(parents=True)
    curves = {"jpeg-420": ("JPEG 4:2:0", [0.2, 0.5, 1.0], [2.0, 2.5, 3.0], [1.0, 1.5, 2.0]),
              "splatcodec": ("splatcodec", [0.3, 0.6, 2.0], [3e5, 3e5, 4e5], [50.0, 60.0, 70.0])}
    for key, (name, bpp, enc, dec) in curves.items():
        doc = {"name": name, "description": "fake", "results": {"bpp": bpp, "psnr-rgb": [28.0, 31.0, 34.0],
                                                               "encoding_time": enc, "decoding_time": dec}}
        (folder / "json" / f"{key}.json").write_text(json.dumps(doc))


@pytest.mark.usefixtures("kodak_available")
def test_speed_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """speed.py --quick runs every section on tiny inputs; checks the JSON shape, not the speed."""
    speed = _load_speed()
    rd_results = tmp_path / "rd"
    _fake_rd_results(rd_results)
    out_json = tmp_path / "speed.json"
    speed.main(["--quick", "--json", str(out_json), "--out", str(tmp_path / "cache"), "--rd-results", str(rd_results)])
    printed = capsys.readouterr().out
    report = json.loads(out_json.read_text())  # strict JSON: no NaN / Infinity
    assert set(report["sections"]) == set(speed.SECTIONS)
    machine = report["machine"]
    assert machine["logical_cpus"] >= 1 and machine["cpu"] and "isa" in machine and "cuda" in machine
    assert printed.count("machine: ") == len(speed.SECTIONS)  # every section names the machine
    sections = report["sections"]

    codecs = sections["codecs"]
    assert {r["codec"] for r in codecs["ratios"]} == {"jpeg-420"}
    by_bpp = {r["bpp"]: r for r in codecs["ratios"]}
    assert by_bpp[2.0]["encode_ratio"] is None  # outside JPEG's fake sweep
    assert by_bpp[0.3]["decode_ratio"] == pytest.approx(50.0 / (1.0 * (1.5 / 1.0) ** (math.log(1.5) / math.log(2.5))))

    decode = sections["decode"]
    assert len(decode["images"]) == 1 and set(decode["median_ratio"]) == {"jpeg-420", "webp", "avif"}
    image = decode["images"][0]
    for ref in image["references"].values():  # bisection matched the file size to within 35 %
        assert abs(ref["bytes"] / image["bytes"] - 1) < 0.35, ref
    # (no ordering between the separately timed parse and full decode: under load either median may win)

    batch = sections["batch"]
    if "skipped" not in batch:
        assert [r["gaussians"] for r in batch["cpu"]] == [40, 160]
        assert batch["paper"]["ms_per_image"] == pytest.approx(7.2)
    scaling = sections["scaling"]
    assert [r["gaussians"] for r in scaling["by_gaussians"]] == [50, 200]
    assert [(r["width"], r["height"]) for r in scaling["by_size"]] == [(32, 32), (64, 64)]
    assert sections["fit"]["splatcodec_ms_per_iteration"] > 0

    # every figure is finite (JSON null stands for "not reached" / "not applicable") and, growth
    # exponents aside, positive
    numbers = list(_numbers(sections))
    assert len(numbers) > 80
    for path, value in numbers:
        assert math.isfinite(value), path
        if path.endswith(".quality"):  # a reference codec's matched quality may be its lowest, 0
            assert value >= 0, (path, value)  # (1.1 files of small images are below AVIF q0's size)
        elif "growth" not in path.rsplit(".", 1)[-1]:
            assert value > 0, (path, value)
    assert set(report["section_seconds"]) == set(speed.SECTIONS)

    # the .gsplat file is cached: a second decode run does not encode again
    speed.main(["decode", "--quick", "--out", str(tmp_path / "cache"), "--skip-torch"])
    assert "encoding" not in capsys.readouterr().out


def test_speed_codecs_without_rd_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    speed = _load_speed()
    report = speed.main(["codecs", "--rd-results", str(tmp_path / "none")])
    assert "skipped" in report["sections"]["codecs"] and "run benchmarks.rd" in capsys.readouterr().out


@pytest.mark.usefixtures("kodak_available")
def test_speed_gpu_path_with_a_stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU rows of batch and scaling, driven through a stand-in with _core_cuda's signatures (the CPU
    core's fit_batch), so the code path is exercised where there is no GPU."""
    import types

    from splatcodec import _native

    speed = _load_speed()
    fake = types.SimpleNamespace(fit_batch=_native.core().fit_batch, device_count=lambda: 1)
    monkeypatch.setattr(speed.machine, "cuda_module", lambda: (fake, ""))
    monkeypatch.setattr(speed.machine, "gpu_name", lambda: "stand-in")
    report = speed.main(["batch", "scaling", "--quick", "--skip-torch", "--json", str(tmp_path / "g.json")])
    assert report["machine"]["cuda"] == {"available": True, "devices": 1, "name": "stand-in"}
    batch, scaling = report["sections"]["batch"], report["sections"]["scaling"]
    if "skipped" not in batch:
        assert [r["gaussians"] for r in batch["cuda"]["runs"]] == [40, 160]
        assert all(r["images_per_s"] > 0 and r["mean_psnr"] > 10 for r in batch["cuda"]["runs"])
    assert all(r["gpu_ms_per_iteration"] >= 0 for r in scaling["by_gaussians"] + scaling["by_size"])


# ------------------------------------------------------------------------------------ benchmarks.rd.check


@pytest.mark.usefixtures("kodak_available")
def test_rd_check_prints_a_row_per_image_and_quality(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The quick check encodes for real and compares with JPEG at the same bpp (a finite gain)."""
    from benchmarks.rd import check

    path = tmp_path / "crop.png"
    Image.open(KODAK / "kodim23.png").convert("RGB").crop((300, 150, 396, 246)).save(path)
    assert check.main([str(path), "--quality", "50", "--effort", "1", "--threads", "1"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert len(rows) == 1 and rows[0][0] == "crop.png" and rows[0][1] == "50"
    bpp, splat_psnr, jpeg_psnr = float(rows[0][3]), float(rows[0][4]), float(rows[0][5])
    assert bpp > 0 and 15 < splat_psnr < 60
    assert math.isnan(jpeg_psnr) or 15 < jpeg_psnr < 60


def test_jpeg_psnr_at_interpolates_inside_the_sweep_only() -> None:
    from benchmarks.rd.check import jpeg_psnr_at

    rng = np.random.default_rng(0)
    image = (128 + 60 * np.sin(np.arange(64)[:, None, None] / 6 + np.arange(3)) + rng.normal(0, 8, (64, 64, 3)))
    image = image.clip(0, 255).astype(np.uint8)
    assert math.isnan(jpeg_psnr_at(image, 1e-4)) and math.isnan(jpeg_psnr_at(image, 1e3))
    low, high = jpeg_psnr_at(image, 0.7), jpeg_psnr_at(image, 1.5)  # inside its 0.64-1.9 bpp sweep
    assert 15 < low < high < 60  # more bits, more PSNR
