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
        "kodim23/quality": "50687f089ea9c63179f525b1ea362c5155c62414526eeb9051390e8f2fd23317",
        "kodim23/target_bpp": "7a8f0b4bf817c136865c084bbb7e66eeed804baeffb527fbaac0db9bd7e394b8",
        "kodim23/target_psnr": "9c766ddf1b94956c1890ecd457c1f96f1337319c01288138c0ba74ced8402a2d",
        "kodim23/q40_levels1_meta": "c77ac8ce0aa8382e6cb43a76062ad2e2a973c722bdf9b9c2c202decab253c640",
        "kodim01/quality": "8a8d22a17522887f2ed97304b9fa87951f30f73971e0ac807a1350d5931c037d",
        "kodim01/target_bpp": "afca7d25a788e10f2202b37059719f88cfa5eb7f831614c973c16a2502684b41",
        "kodim01/target_psnr": "83903ad54dd2ff4a3278075dee5b3b26545742c97ccd77956076b87ed0f8b9d3",
        "kodim01/q40_levels1_meta": "2fbf4db20e070ea7046b45b6f29efdde969beb7b67fedc5bcca2eedae473e706",
    },
    "x86-64-v3": {
        "kodim23/quality": "73281d2c9f84d684c1c186017576bc50533652f5545d44912d63df7d33a7d447",
        "kodim23/target_bpp": "778d494de4b648814b1393525bb28764209f219e0ba24c1d36610399997ae66f",
        "kodim23/target_psnr": "85339664a144dd652d4010b709951349af6ea37f065ee6e9c706243f1770ea72",
        "kodim23/q40_levels1_meta": "ec412442f3c5679c0dcbd51ccae275e542850d68a334022e85ec4eb9f46d075f",
        "kodim01/quality": "7b42baa0b02d5850f68f0424617e32af1aba06e4d75b2c7034d0e853bfb14c8d",
        "kodim01/target_bpp": "6c01f02428bc2322bc0c09409f642cd609bfc5515782193631a2c9e7824fd9ff",
        "kodim01/target_psnr": "db215877c6ff172ddd93aa05650110efbeb1a66bd862544635ffe4374636df4c",
        "kodim01/q40_levels1_meta": "d7a9ff3602ab788a2950c5c57d9b1e351d8d5e2cffe49b24e80b66aed9315965",
    },
    "x86-64-v4": {
        "kodim23/quality": "2f35c22c9160304308ce1e82497429c8090aa0f153d311542bd4985f0658fcd9",
        "kodim23/target_bpp": "7167c980474ba4dce40283fb6e90f081bf43831ddb2e2db049afb8cd070b0eea",
        "kodim23/target_psnr": "89b76ebccc837de62a349863476b81de268ea4586c6d570a312493772c09b2c5",
        "kodim23/q40_levels1_meta": "718767ffe56ab8b2fda14e219806f30b312a0a186a698a69f0e46664f1e68dd0",
        "kodim01/quality": "9873533b936df5f524633097ef9d14a455caaa163428dcb18ac914b24217f170",
        "kodim01/target_bpp": "6bdd7bfe1dad3b96f1e990028fc15be271461dd2173d87adaa939e1edf704ca9",
        "kodim01/target_psnr": "a5ce05801dc21436f8954a2cb656c35cf71f8fde92040c0468a09b16171e31b1",
        "kodim01/q40_levels1_meta": "c017c7b75b5fc4db978da82ddde8e509e0448440881d634871b07840c54eb570",
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
