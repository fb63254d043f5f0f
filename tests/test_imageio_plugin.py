"""The imageio v3 plugin with the real imageio: read/iter/write/properties/metadata, bytes, garbage."""
from __future__ import annotations

import io

import numpy as np
import pytest

import splatcodec
from splatcodec.codec import container
from splatcodec.plugins._common import CorruptFileError, TruncatedFileError

from kodak import KODAK_DIR, REPO_ROOT, load_kodak

iio = pytest.importorskip("imageio.v3", reason="imageio is not installed (pip install splatcodec[plugins])")
from imageio.config import known_extensions, known_plugins  # noqa: E402
from imageio.core.request import InitializationError, Request  # noqa: E402

splatcodec.register_imageio()
GOLDEN = REPO_ROOT / "tests" / "golden" / "tiny.gsplat"


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    return np.ascontiguousarray(load_kodak("kodim15")[200:264, 300:396])


@pytest.fixture(scope="module")
def gsplat_path(tmp_path_factory, crop):
    path = tmp_path_factory.mktemp("imageio") / "crop.gsplat"
    iio.imwrite(path, crop, quality=60, effort=1)
    return path


def test_register_is_idempotent():
    splatcodec.register_imageio()
    splatcodec.register_imageio()
    assert known_plugins["splatcodec"].class_name == "GsplatPlugin"
    assert sum("splatcodec" in fmt.priority for fmt in known_extensions[".gsplat"]) == 1


def test_write_and_read_a_file(gsplat_path, crop):
    data = gsplat_path.read_bytes()
    assert data == splatcodec.encode(crop, quality=60, effort=1)
    pixels = iio.imread(gsplat_path)
    np.testing.assert_array_equal(pixels, splatcodec.decode(data))
    assert pixels.shape == (64, 96, 3) and pixels.dtype == np.uint8
    assert splatcodec.psnr(pixels, crop) > 24
    np.testing.assert_array_equal(iio.imread(str(gsplat_path), plugin="splatcodec"), pixels)


def test_read_at_another_size(gsplat_path):
    data = gsplat_path.read_bytes()
    assert iio.imread(gsplat_path, width=256).shape == (171, 256, 3)
    np.testing.assert_array_equal(iio.imread(gsplat_path, width=256), splatcodec.decode(data, width=256))
    assert iio.imread(gsplat_path, height=32).shape == (32, 48, 3)
    assert iio.imread(gsplat_path, scale=0.5).shape == (32, 48, 3)
    coarse = iio.imread(gsplat_path, max_gaussians=10)
    np.testing.assert_array_equal(coarse, splatcodec.decode(data, max_gaussians=10))


def test_gray_images_are_two_dimensional(crop):
    gray = np.ascontiguousarray(crop[..., 1])
    data = iio.imwrite("<bytes>", gray, extension=".gsplat", num_gaussians=60, effort=1)
    assert iio.imread(data).shape == (64, 96)
    assert iio.improps(data).shape == (64, 96)


def test_write_to_bytes(crop):
    data = iio.imwrite("<bytes>", crop, extension=".gsplat", quality=40, effort=1)
    assert isinstance(data, bytes) and data == splatcodec.encode(crop, quality=40, effort=1)
    np.testing.assert_array_equal(iio.imread(data), splatcodec.decode(data))
    np.testing.assert_array_equal(iio.imread(io.BytesIO(data)), splatcodec.decode(data))


def test_batches_and_indices(gsplat_path):
    single = iio.imread(gsplat_path)
    np.testing.assert_array_equal(iio.imread(gsplat_path, index=...), single[None])
    frames = list(iio.imiter(gsplat_path))
    assert len(frames) == 1 and np.array_equal(frames[0], single)
    with pytest.raises(splatcodec.InvalidInputError):
        iio.imread(gsplat_path, index=1)
    props = iio.improps(gsplat_path, index=...)
    assert props.shape == (1, 64, 96, 3) and props.is_batch and props.n_images == 1
    with pytest.raises(splatcodec.InvalidInputError, match="one image"):
        iio.imwrite("<bytes>", np.stack([single, single]), extension=".gsplat", is_batch=True)
    with pytest.raises(splatcodec.InvalidInputError, match="unknown"):
        iio.imwrite("<bytes>", single, extension=".gsplat", qualty=50)


def test_properties_come_from_the_header_alone(gsplat_path):
    from splatcodec.codec.api import decode_splats, encode_splats

    data = encode_splats(decode_splats(gsplat_path.read_bytes()))  # 1.0: a header with its own CRC
    broken = bytearray(data)
    broken[-10] ^= 0xFF  # body corrupt, header intact
    props = iio.improps(bytes(broken))
    assert props.shape == (64, 96, 3) and props.dtype == np.uint8 and not props.is_batch
    with pytest.raises(CorruptFileError):
        iio.imread(bytes(broken))
    with pytest.raises(TruncatedFileError):
        iio.imread(data[:-5])


def test_metadata(gsplat_path):
    meta = iio.immeta(GOLDEN)
    assert meta["comment"] == "splatcodec golden file"  # the golden file's META entry
    assert (meta["width"], meta["height"], meta["channels"], meta["version"]) == (24, 16, 3, "1.0")
    assert iio.immeta(gsplat_path)["num_gaussians"] == splatcodec.info(gsplat_path.read_bytes()).num_gaussians


def test_non_gsplat_input_is_rejected_fast_and_others_still_open(tmp_path):
    from splatcodec.plugins.imageio_plugin import GsplatPlugin

    png = KODAK_DIR / "kodim15.png"
    with pytest.raises(InitializationError):
        GsplatPlugin(Request(str(png), "r"))
    with pytest.raises(InitializationError):
        GsplatPlugin(Request("<bytes>", "w", extension=".png"))
    np.testing.assert_array_equal(iio.imread(png), load_kodak("kodim15"))  # Pillow's plugin, as before
    disguised = tmp_path / "png_inside.gsplat"
    disguised.write_bytes(png.read_bytes())
    np.testing.assert_array_equal(iio.imread(disguised), load_kodak("kodim15"))  # we decline, pillow opens it
    with pytest.raises(OSError):
        iio.imread(png, plugin="splatcodec")


@pytest.mark.parametrize("data", [b"", b"garbage" * 20, container.SIGNATURE + b"\0" * 60,
                                  np.random.default_rng(0).bytes(5000)])
def test_garbage_input(data, tmp_path):
    with pytest.raises(OSError):  # imageio: no plugin can read it (ours raised InitializationError or
        iio.imread(data)           # a CorruptFileError, both ending in OSError)
    path = tmp_path / "garbage.gsplat"
    path.write_bytes(data)
    with pytest.raises(OSError):
        iio.imread(path)
