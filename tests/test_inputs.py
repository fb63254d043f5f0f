"""One input policy (splatcodec.images): fit and encode accept and refuse exactly the same inputs."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import splatcodec as sc
from splatcodec.codec import api
from splatcodec.errors import InvalidInputError, LimitExceededError


def _pil(mode: str, size: tuple[int, int] = (8, 6), **kw: object) -> Image.Image:
    return Image.new(mode, size, **kw)


def _exif_jpeg() -> bytes:
    """An 8x6 JPEG whose EXIF orientation says: rotate 90 degrees clockwise to display (6x8)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(buf, format="JPEG", exif=exif.tobytes(), quality=100)
    return buf.getvalue()


def _exif_rotated() -> Image.Image:
    return Image.open(io.BytesIO(_exif_jpeg()))


def _i16(values: list[list[int]]) -> Image.Image:
    return Image.fromarray(np.array(values, np.int32), mode="I")


INPUTS = {
    "uint8 gray": np.full((6, 8), 100, np.uint8),
    "uint8 rgb": np.full((6, 8, 3), 100, np.uint8),
    "uint8 hxwx1": np.full((6, 8, 1), 100, np.uint8),
    "uint16": np.full((6, 8, 3), 30000, np.uint16),
    "bool": np.eye(6, 8, dtype=bool),
    "float in range": np.full((6, 8, 3), 0.5, np.float64),
    "float out of range": np.full((6, 8), 3.0, np.float32),
    "float16": np.full((6, 8), 0.25, np.float16),
    "nan": np.full((6, 8), np.nan, np.float32),
    "inf": np.full((6, 8), np.inf, np.float32),
    "rgba array": np.zeros((6, 8, 4), np.uint8),
    "2 channels": np.zeros((6, 8, 2), np.uint8),
    "4-d": np.zeros((1, 6, 8, 3), np.uint8),
    "empty": np.zeros((0, 8), np.uint8),
    "int64": np.zeros((6, 8), np.int64),
    "complex": np.zeros((6, 8), np.complex64),
    "string": "not an image",
    "list": [[0, 1], [2, 3]],
    "PIL RGB": _pil("RGB", color=(10, 200, 30)),
    "PIL RGBA": _pil("RGBA", color=(10, 200, 30, 128)),
    "PIL LA": _pil("LA", color=(100, 50)),
    "PIL La": _pil("LA", color=(100, 50)).convert("La"),
    "PIL P": _pil("P"),
    "PIL 1": _pil("1"),
    "PIL CMYK": _pil("CMYK"),
    "PIL I 16-bit": _i16([[0, 65535, 30000, 1]] * 3),
    "PIL I out of range": _i16([[0, 70000, -5, 1]] * 3),
    "PIL F": _pil("F"),
    "PIL empty": _pil("RGB", (0, 0)),
    "PIL EXIF-rotated": _exif_rotated(),
}


def _outcome(call) -> str:
    try:
        result = call()
    except LimitExceededError:
        return "limit"
    except InvalidInputError:
        return "refused"
    return f"accepted {result}"


@pytest.mark.parametrize("name", list(INPUTS))
def test_fit_and_encode_accept_and_refuse_the_same_inputs(name: str) -> None:
    image = INPUTS[name]
    fitted = _outcome(lambda: sc.fit(image, 2, 2).width)
    with pytest.warns(RuntimeWarning) if name == "float out of range" else _no_warning():
        encoded = _outcome(lambda: api.decode(api.encode(image, num_gaussians=2, effort=1, levels=1)).shape[1])
    assert fitted == encoded, (fitted, encoded)


class _no_warning:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_pixel_limit_is_the_same_for_fit_and_encode() -> None:
    image = np.zeros((10, 10), np.uint8)
    with pytest.raises(LimitExceededError):
        sc.fit(image, 2, 1, max_pixels=99)
    with pytest.raises(LimitExceededError):
        api.encode(image, max_pixels=99)


def test_exif_orientation_is_applied_by_api_and_cli_alike(tmp_path) -> None:
    from splatcodec.image_io import read_image

    im = _exif_rotated()
    assert sc.fit(im, 2, 1).width == 6 and sc.fit(im, 2, 1).height == 8
    assert api.decode(api.encode(im, num_gaussians=2, effort=1)).shape[:2] == (8, 6)
    path = tmp_path / "rot.jpg"
    path.write_bytes(_exif_jpeg())
    pixels, _ = read_image(path)
    assert pixels.shape[:2] == (8, 6)


def test_16_bit_gray_keeps_its_precision_when_fitting() -> None:
    from splatcodec.images import to_float_image, to_uint8_image

    im = _i16([[0, 65535, 257, 1]])
    floats = to_float_image(im)
    assert floats.shape == (1, 4, 1)
    np.testing.assert_allclose(floats[0, :, 0], np.array([0, 65535, 257, 1]) / 65535, rtol=1e-6)
    assert to_uint8_image(im).tolist() == [[0, 255, 1, 0]]
