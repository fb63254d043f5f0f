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
        "kodim23/quality": "d107dbd0d9c3feac2136d57f3f6502a934735a9794d4f4958852c0e2f20d89c6",
        "kodim23/target_bpp": "5b2b9dcb8edc7a462c619832d82c762dbad35d230db47cbd886b259ed35c696b",
        "kodim23/target_psnr": "a4468a1444aa97c28483449afef0064093e714b1310609de4e3e82b20efaaa18",
        "kodim23/q40_levels1_meta": "bf1e5b7e794de336dc652770c2e49ea433e1358f7a4ddfbfd83ccb19ba9e1545",
        "kodim01/quality": "8b068457dc64b3f6bdf1316cf3a1ef2e1a3fca4d1f034ff3c81ccef9de565cb3",
        "kodim01/target_bpp": "79230a0fd47ddf0f011d999328a48723ff2211645aba3617e4ab468fc4be58da",
        "kodim01/target_psnr": "af31a7197185a4f026a7f0888986d0a3fc897e8509d17ce72e2fa20246827a12",
        "kodim01/q40_levels1_meta": "eb622a9010cad4873a000ecf87a41f34934396ee8a1056443a2e698eb93b465d",
    },
    "x86-64-v3": {
        "kodim23/quality": "3ba138873974201a72764f88d98964de229e071ac4751aa7b42ba19fc0d90dba",
        "kodim23/target_bpp": "54003d7b8c75988eb3dd8504c300518fd433a667477ce19866eb0c0bbccc41f1",
        "kodim23/target_psnr": "5178888ba0d8d92a8239b32c339568f4b4c6e426e4de987133ae857d380a1387",
        "kodim23/q40_levels1_meta": "a92ef593724a914ffa499674027308c00eb7441b279cf9bc86c94933b9b9d651",
        "kodim01/quality": "1f83643d312c05cc273fdfabfa66f3eb70aa1ba15431929dca317b528c782b95",
        "kodim01/target_bpp": "1660ff991fea7605f7ff371081ec7723d3bbdbf875dc6e0b180fdc58e72c94a4",
        "kodim01/target_psnr": "c366e422ea420ffad896a4911fddc164657a754934af669bc79a1e176435656b",
        "kodim01/q40_levels1_meta": "6f849a8ef9266e74025dd977350b742de933ec7fd925ef2635a47473417e0e10",
    },
    "x86-64-v4": {
        "kodim23/quality": "6e5e750091546881ab2ce8fa421c59c6298454c3eb27cccf9c70d49a524c573b",
        "kodim23/target_bpp": "70d053d7a3185df648b4706ca1a3aaa6afa7f7f5422c3cb9817c34871ab66100",
        "kodim23/target_psnr": "8cd5ff78c4ec34964054203ef0d22d11b71b6e9adac942d0f7cf85a8b3c71f11",
        "kodim23/q40_levels1_meta": "2d06b5a3637c1cbc173a62413b2ab1dcd7b9929d20c441ec38c482a240281ee4",
        "kodim01/quality": "9348c201e6192dc26062e16c5d091f240afdb2e93139cbf0330af518458e1f82",
        "kodim01/target_bpp": "91707813a9ba78f40e84e6dc2ea2179226475bec6ed4f6bc7e92b314bd4ca23e",
        "kodim01/target_psnr": "84ad8d0ec4e6507b5fce5551aa8e5f97510807136f3bcd60a1ddef0c8e20ae80",
        "kodim01/q40_levels1_meta": "1ca38587d073e3330fc2257a9b192ded584c8d504ec5f1a176c6ca674918c269",
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
