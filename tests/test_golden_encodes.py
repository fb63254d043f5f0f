"""Encoder output pinned byte for byte: SHA-256 of ``splatcodec.encode`` on two Kodak crops.

Encodes are deterministic (same image, options, seed -> same bytes, whatever the thread count), so any
change to what the encoder writes -- the fitting strategy, rate mapping or search, quantization,
entropy coding, the container -- changes a digest here. The digests were recorded before the codec
API was split into modules (issue 11) and still match after it.

The native core's ISA builds round floats differently (tests/test_isa_dispatch.py: fits "within a
hair"), so each build has its own digests; a core without pinned digests (a ``native`` build, a
non-x86 machine) skips. A change that alters the bytes on purpose (or a new compiler) needs new pins:

    for isa in baseline x86-64-v3 x86-64-v4; do SPLATCODEC_ISA=$isa python tests/test_golden_encodes.py; done
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from kodak import load_kodak

#: (Kodak image, top, left) of the 128x128 crops: kodim23 is the crop of conftest's kodim23_crop.
CROPS = {"kodim23": (150, 300), "kodim01": (200, 300)}
SIZE = 128
#: Option sets: default quality (one attempt); target bpp at a low rate (2 attempts, half-resolution
#: coarse stages, compact 1.1 file); target PSNR (up to 4 attempts); metadata and one group (1.0 file).
OPTIONS = {
    "quality": {},
    "target_bpp": {"target_bpp": 0.25},
    "target_psnr": {"target_psnr": 30.0},
    "q40_levels1_meta": {"quality": 40, "levels": 1, "metadata": {"comment": "golden"}},
}
#: SHA-256 of the encoded bytes per ISA build of the core, then per "image/options".
PINNED = {
    "baseline": {
        "kodim23/quality": "8bb175e56f12d7a70565e216261a249ef774cdb0ff8cae9d9c84ae9eda608a5a",
        "kodim23/target_bpp": "aa65bbf1833ca2919ab113183ff856a4f1a46c3acac88a637b97f2c1e99f6df8",
        "kodim23/target_psnr": "67bc1c392e3eddedf18bd8819fc8c40cfc05a066473094210fdca5b9e0a2dfe9",
        "kodim23/q40_levels1_meta": "cac8d31facd369b8b5d5ca613972b06aaf1c4c3a7a8606771dae1780dcd4a3e5",
        "kodim01/quality": "ce54a1903c75da9c5cf1a8381247747c4f795d3cf67b8d60edd1e1b7692393bb",
        "kodim01/target_bpp": "4ab6d98ef6ceb0afcd06dfb2fb3c79a5e6e7784324a82ef3dac2798d92c0d295",
        "kodim01/target_psnr": "9db31c8a09fe90f9ef002131cf9828e8956afbe1eb047f1a44d05570743470cc",
        "kodim01/q40_levels1_meta": "cb535f9d9d495669fa3d15954133cabf86f489213141aa7c305a940c9f84a57d",
    },
    "x86-64-v3": {
        "kodim23/quality": "9f23917afcce6166ae7d4e3bcd50dc661245238c0ef0dca356a9a4915551274b",
        "kodim23/target_bpp": "0a8c6cb39cef9da405b1a83fc960c7222aef15f78503927f060d9ebbc3d51327",
        "kodim23/target_psnr": "cb89cf7384148fe4872ade523bd5a0a457fc53b46d0e4c598d057414045d63ab",
        "kodim23/q40_levels1_meta": "52261abc83e2bb8fbca5130b4cb572a52bc8a922b592afbf3c5c0a06423b719f",
        "kodim01/quality": "31b63024eb308c021ce230452d741c4cbcdf159b096efe347e86d59986964350",
        "kodim01/target_bpp": "1ceb93fed797ea94aac4e7852acf29985b22908e2431fd353cd4f48e1a634dbe",
        "kodim01/target_psnr": "3226af31eab9515513bd60a4ef3be4d2b946f9c097eb2e195101bbb12625b05f",
        "kodim01/q40_levels1_meta": "4524626fb84ab3f7d27585793a18e052ac5e61484e58f9c27caf67f685754a1d",
    },
    "x86-64-v4": {
        "kodim23/quality": "8a1bd6968ac1ff69c61e11ccbf7325a49ab2037a77f7effc5847afc1e09a4b9a",
        "kodim23/target_bpp": "117a111b25a40f1a09af94963a9495de2ea81010e8803f84dfac6614d47f858d",
        "kodim23/target_psnr": "60ac5f0156d8c196257e3bca587fb123484f27d528fb53862a49ed4958b7b3a5",
        "kodim23/q40_levels1_meta": "0806d4957f2e4cf6f171714b594079918567f29409882c3cf4c2471698b718c2",
        "kodim01/quality": "667c43cdbaa7ee4521d6177ae0a8533ac6daa4f6d26e680b38187760bfdc9c26",
        "kodim01/target_bpp": "1115b7984ce746f68bef32dd2cc7f0acc3635245e8bad4a0bea698d5abe3b0f3",
        "kodim01/target_psnr": "4c673dc5b3d828bfa5cd02ca9744269c40552c7e51a9901364dc331df36f57dd",
        "kodim01/q40_levels1_meta": "7b2ade4395e7cfcab411c5d595e1a5e4ad3710dbb791a2ab88e6904bf93ee4f6",
    },
}


def crop(name: str) -> np.ndarray:
    top, left = CROPS[name]
    return np.ascontiguousarray(load_kodak(name)[top:top + SIZE, left:left + SIZE])


def digest(name: str, options: str) -> str:
    import splatcodec

    data = splatcodec.encode(crop(name), threads=1, **OPTIONS[options])
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("options", list(OPTIONS))
@pytest.mark.parametrize("name", list(CROPS))
def test_encoder_output_is_byte_identical_to_the_pinned_digest(name: str, options: str) -> None:
    from splatcodec import _native

    isa = _native.isa()
    if isa not in PINNED:
        pytest.skip(f"no digests pinned for the {isa} build of the core")
    assert digest(name, options) == PINNED[isa][f"{name}/{options}"], (
        f"encode({name} crop, {OPTIONS[options]}) changed its bytes on the {isa} core; if on purpose, "
        "re-pin (see the module docstring)")


if __name__ == "__main__":
    from splatcodec import _native

    print(json.dumps({_native.isa(): {f"{n}/{o}": digest(n, o) for n in CROPS for o in OPTIONS}}, indent=1))
