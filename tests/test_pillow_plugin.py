"""The Pillow plugin with the real Pillow: open/load/save, draft and thumbnail, errors, other formats."""
from __future__ import annotations

import io
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image, ImageFile, UnidentifiedImageError

import splatcodec
from splatcodec.codec import container
from splatcodec.codec.api import decode_splats, encode_splats
from splatcodec.plugins._common import CorruptFileError, TruncatedFileError, UnsupportedModeError
from splatcodec.plugins.pillow_plugin import LimitError

from kodak import KODAK_DIR, REPO_ROOT, load_kodak

splatcodec.register_pillow()


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    return np.ascontiguousarray(load_kodak("kodim23")[180:244, 330:426])  # 96x64, real content


@pytest.fixture(scope="module")
def gsplat(crop) -> bytes:
    """A real encode; at this size the encoder writes the compact 1.1 layout."""
    data = splatcodec.encode(crop, quality=60, effort=1)
    assert splatcodec.info(data).version == "1.1"
    return data


@pytest.fixture(scope="module")
def gsplat_v10(gsplat) -> bytes:
    """The same Gaussians in the 1.0 layout (fixed header with its own CRC, CRC-checked sections)."""
    data = encode_splats(decode_splats(gsplat), quality=60)
    assert splatcodec.info(data).version == "1.0"
    return data


def header_only(width: int, height: int, channels: int = 3, gaussians: int = 10) -> bytes:
    """A CRC-valid header (and nothing else) declaring the given size."""
    return container.write_file(container.Header(1, 0, width, height, channels, 0 if channels == 1 else 1,
                                                  gaussians, 0), [])


class CountingReader(io.BytesIO):
    """A file object that records how many bytes were read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def test_import_registers_nothing_and_the_plugin_module_registers():
    code = ("import splatcodec\nfrom PIL import Image\nImage.init()\nprint('GSPLAT' in Image.OPEN)\n"
            "import splatcodec.plugins.GsplatImagePlugin\nprint('GSPLAT' in Image.OPEN, "
            "Image.registered_extensions()['.gsplat'], Image.MIME['GSPLAT'])\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": str(REPO_ROOT), "PATH": ""})
    assert result.stdout.split() == ["False", "True", "GSPLAT", "image/x-gsplat"]


def test_register_is_idempotent():
    splatcodec.register_pillow()
    splatcodec.register_pillow()
    assert Image.ID.count("GSPLAT") == 1
    assert Image.registered_extensions()[".gsplat"] == "GSPLAT"


def test_open_reads_only_the_header(gsplat_v10):
    fp = CountingReader(gsplat_v10)
    im = Image.open(fp)
    assert (im.format, im.mode, im.size) == ("GSPLAT", "RGB", (96, 64))
    assert fp.bytes_read <= 64 < len(gsplat_v10)
    assert im.info["gsplat_gaussians"] == decode_splats(gsplat_v10).num_gaussians
    assert im.info["gsplat_version"] == "1.0"
    np.testing.assert_array_equal(np.asarray(im), splatcodec.decode(gsplat_v10))


def test_compact_files_open_with_their_size_before_decoding(gsplat):
    # 1.1's header is covered only by the CRC at the end: the (small) file is read and checked, not decoded.
    im = Image.open(io.BytesIO(gsplat))
    assert (im.format, im.mode, im.size, im.info["gsplat_version"]) == ("GSPLAT", "RGB", (96, 64), "1.1")
    np.testing.assert_array_equal(np.asarray(im), splatcodec.decode(gsplat))
    gray = splatcodec.encode(np.ascontiguousarray(splatcodec.decode(gsplat)[..., 0]),
                             num_gaussians=40, effort=1)
    assert Image.open(io.BytesIO(gray)).mode == "L"


def test_round_trip_through_save(tmp_path, crop):
    path = tmp_path / "crop.gsplat"
    Image.fromarray(crop).save(path, quality=60, effort=1)  # format from the extension
    data = path.read_bytes()
    assert data == splatcodec.encode(crop, quality=60, effort=1)  # same options, same bytes
    with Image.open(path) as im:
        assert im.format == "GSPLAT"
        pixels = np.asarray(im)
    np.testing.assert_array_equal(pixels, splatcodec.decode(data))
    assert splatcodec.psnr(pixels, crop) > 24


def test_save_rate_options(crop):
    out = io.BytesIO()
    Image.fromarray(crop).save(out, format="GSPLAT", target_bpp=1.5, effort=1)
    bpp = 8 * len(out.getvalue()) / crop.shape[0] / crop.shape[1]
    assert 0.5 < bpp <= 1.5 * 1.05
    low, high = io.BytesIO(), io.BytesIO()
    Image.fromarray(crop).save(low, format="GSPLAT", quality=20, effort=1)
    Image.fromarray(crop).save(high, format="GSPLAT", quality=80, effort=1)
    assert len(low.getvalue()) < len(high.getvalue())
    with pytest.raises(splatcodec.InvalidInputError):
        Image.fromarray(crop).save(io.BytesIO(), format="GSPLAT", quality=101)


@pytest.mark.parametrize("mode, stored", [("L", "L"), ("1", "L"), ("P", "RGB"), ("I;16", "L"), ("CMYK", "RGB")])
def test_save_converts_modes_as_the_cli(crop, mode, stored):
    source = Image.fromarray(crop)
    image = source.convert("I;16") if mode == "I;16" else source.convert(mode)
    out = io.BytesIO()
    image.save(out, format="GSPLAT", num_gaussians=50, effort=1)
    with Image.open(out) as im:
        assert im.mode == stored and im.size == (96, 64)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA"])
def test_save_composites_alpha_over_white_like_encode(crop, mode):
    # The package's one input policy (splatcodec.images): what encode(PIL image) and the CLI do.
    rgba = Image.fromarray(crop).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    image = rgba.convert(mode)
    out = io.BytesIO()
    image.save(out, format="GSPLAT", num_gaussians=50, effort=1)
    assert out.getvalue() == splatcodec.encode(image, num_gaussians=50, effort=1)
    with Image.open(out) as im:
        assert im.mode == ("L" if mode == "LA" else "RGB")


def test_save_refuses_float_images(crop):
    image = Image.fromarray(crop[..., 0].astype(np.float32) / 255, mode="F")
    with pytest.raises(UnsupportedModeError, match="mode F") as info:
        image.save(io.BytesIO(), format="GSPLAT")
    assert isinstance(info.value, OSError) and isinstance(info.value, splatcodec.InvalidInputError)


def test_icc_profile_round_trips(crop):
    profile = b"not a real profile, but bytes that must come back"
    out = io.BytesIO()
    image = Image.fromarray(crop)
    image.info["icc_profile"] = profile
    image.save(out, format="GSPLAT", num_gaussians=50, effort=1)
    with Image.open(out) as im:
        im.load()
        assert im.info["icc_profile"] == profile


def test_convert_and_copy(gsplat):
    decoded = splatcodec.decode(gsplat)
    with Image.open(io.BytesIO(gsplat)) as im:
        gray = im.convert("L")
    np.testing.assert_array_equal(np.asarray(gray), np.asarray(Image.fromarray(decoded).convert("L")))


def test_draft_decodes_at_the_smaller_size(gsplat):
    with Image.open(io.BytesIO(gsplat)) as im:
        mode, box = im.draft(None, (30, 10))
        assert im.size == (30, 20) and box == (0, 0, 30.0, 20.0)  # both sides >= the request, aspect kept
        np.testing.assert_array_equal(np.asarray(im), splatcodec.decode(gsplat, width=30, height=20))
        assert im.draft(None, (10, 10)) is None  # already loaded: no effect
    with Image.open(io.BytesIO(gsplat)) as im:
        assert im.draft(None, (500, 500)) is None and im.size == (96, 64)  # never upscales


def test_thumbnail_never_renders_the_full_size():
    # A real encode scaled onto a canvas over splatcodec's pixel limit (8192x5461 > 2**25 pixels):
    # loading it at full size is refused, so a thumbnail that works was rendered small.
    splats = decode_splats(REPO_ROOT.joinpath("tests", "golden", "tiny.gsplat").read_bytes())
    factor = 8192 / splats.width
    big = splatcodec.Splats(splats.xy * factor, splats.chol * factor, splats.color, 8192, round(splats.height * factor))
    data = encode_splats(big, quality=90)
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (8192, 5461)
        with pytest.raises(LimitError) as info:
            im.load()
        assert isinstance(info.value, Image.DecompressionBombError)
    with Image.open(io.BytesIO(data)) as im:
        im.thumbnail((256, 256))  # Pillow asks draft() for >= 512x512, then resizes to the final size
        assert im.size == (256, 171)
        thumb = np.asarray(im)
    rendered = splatcodec.decode(data, width=768, height=512, max_pixels=None)
    reference = Image.fromarray(rendered).resize((256, 171), Image.Resampling.BICUBIC, reducing_gap=2.0)
    np.testing.assert_array_equal(thumb, np.asarray(reference))


def test_garbage_gives_unidentified_image_error():
    rng = np.random.default_rng(0)
    for data in (b"", b"x" * 100, rng.bytes(4096), container.SIGNATURE, container.SIGNATURE + rng.bytes(200)):
        with pytest.raises(UnidentifiedImageError):
            Image.open(io.BytesIO(data))


def test_corrupt_header_fields_give_unidentified_image_error(gsplat, gsplat_v10):
    bad_crc = bytearray(gsplat_v10)
    bad_crc[12] ^= 1  # width, CRC no longer matches
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(bytes(bad_crc)))
    for damaged in (gsplat[:-3], gsplat[:5] + bytes([gsplat[5] ^ 4]) + gsplat[6:]):  # 1.1: CRC at the end
        with pytest.raises(UnidentifiedImageError):
            Image.open(io.BytesIO(damaged))


def test_broken_body_raises_oserror_on_load(gsplat_v10):
    broken = bytearray(gsplat_v10)
    broken[-10] ^= 0xFF  # inside the last section: its CRC fails
    with Image.open(io.BytesIO(bytes(broken))) as im:
        assert im.size == (96, 64)  # the header is fine
        with pytest.raises(CorruptFileError) as info:
            im.load()
    assert isinstance(info.value, OSError) and isinstance(info.value, splatcodec.FormatError)


@pytest.mark.parametrize("load_truncated", [False, True])
def test_truncated_file_is_refused_whatever_load_truncated_images_says(gsplat_v10, monkeypatch, load_truncated):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", load_truncated)
    with Image.open(io.BytesIO(gsplat_v10[: len(gsplat_v10) // 2])) as im:
        with pytest.raises(TruncatedFileError, match="truncated"):
            im.load()


def test_bomb_sized_headers_get_pillows_checks():
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(header_only(65_536, 65_536)))
    with pytest.warns(Image.DecompressionBombWarning):
        im = Image.open(io.BytesIO(header_only(10_000, 10_000)))
    with pytest.raises(LimitError):  # 10^8 pixels: over splatcodec's own limit, refused before decoding
        im.load()
    im = Image.open(io.BytesIO(header_only(300, 200)))
    with pytest.raises(CorruptFileError):  # a header and no sections
        im.load()


def test_other_formats_open_as_before(tmp_path):
    png = KODAK_DIR / "kodim23.png"
    with Image.open(png) as im:
        assert im.format == "PNG"
        pixels = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(pixels, load_kodak("kodim23"))
    disguised = tmp_path / "really_a_png.gsplat"
    disguised.write_bytes(png.read_bytes())
    with Image.open(disguised) as im:
        assert im.format == "PNG"
    jpeg = io.BytesIO()
    Image.fromarray(pixels).save(jpeg, format="JPEG")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Image.open(jpeg).format == "JPEG"


def test_incremental_parser_and_file_closing(tmp_path, gsplat_v10):
    parser = ImageFile.Parser()
    for start in range(0, len(gsplat_v10), 100):
        parser.feed(gsplat_v10[start:start + 100])
    image = parser.close()
    assert image.format == "GSPLAT"
    np.testing.assert_array_equal(np.asarray(image), splatcodec.decode(gsplat_v10))
    path = tmp_path / "x.gsplat"
    path.write_bytes(gsplat_v10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        im = Image.open(path)
        im.load()
        assert im.fp is None  # a file Pillow opened itself is closed once the pixels are in memory


def test_import_splatcodec_loads_no_optional_backend():
    code = "import sys, splatcodec\nprint(sorted(m for m in ('numba', 'imageio', 'PIL.Image') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": str(REPO_ROOT), "PATH": ""})
    assert "numba" not in result.stdout and "imageio" not in result.stdout
