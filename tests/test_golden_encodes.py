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
        "kodim23/quality": "e79574e541cf05cfc8715cc0d941ddd77aaf868b30c10cc085ec284ec2b5ba98",
        "kodim23/target_bpp": "ae4cd52108b7c9c717966ae365f1a3bd8e27be755926fa866f103769e288d855",
        "kodim23/target_psnr": "6240b9245f2979eca2b5d0b8cadcc97cd263627adf1c156ce42d1fdd16a98a68",
        "kodim23/q40_levels1_meta": "fd21b3286b4aece481f1af1df6b80c4f8add70e2d73c69c5a4ae14b56df5f023",
        "kodim01/quality": "00e4db5a517722bde0b65230df35c65d7fd109cba2048d5dcb709a2a1a97964f",
        "kodim01/target_bpp": "c38e0ec3a163a38eacf11d07caa595b4279090e667edfb188baa1b9708be7217",
        "kodim01/target_psnr": "e15b36be474b6a84196823a24a705249c93400de1b0a24d0939696c4187e7f06",
        "kodim01/q40_levels1_meta": "9a25ef7f0b18309170acbc99d21daed0308b03e82af0ece526efb6e0d5ae42be",
    },
    "x86-64-v3": {
        "kodim23/quality": "b96b4ffb7fee209ef2b623b300da9ed171685b74f0787138e5cf0c1a4567b7a4",
        "kodim23/target_bpp": "c44db41dc993abd4722fee563ab0d7caf421ce89b106e33cb6169eba5f65aee0",
        "kodim23/target_psnr": "a0cda709d7056238cd50b2934977222a2f2bdfad8e5c9bed9d4beb2dd43df3fb",
        "kodim23/q40_levels1_meta": "c8588b3e75dc2dcd5da368d02a171f579c7a087a41393b949ff06ec77d55b804",
        "kodim01/quality": "114ae0b6e6362a569f41610fa3313666b9d5af38398291149764b2d6d72df7d7",
        "kodim01/target_bpp": "230709583d082a218f103e4344c4822efd216cd41a3445cdcd3c4f3a682776e3",
        "kodim01/target_psnr": "12e331d0fe2bb8f0b0b7e45164afd8000a8e6061ec459472500f76d940840c5e",
        "kodim01/q40_levels1_meta": "a87e7c2d0188521c6dc752cdc61c37c34310b8324705d78c556e41aa4789b10b",
    },
    "x86-64-v4": {
        "kodim23/quality": "89aa99aa3603e365ffbd67d8dba06d89dce36bbdc098a0340e0e0717751a4be7",
        "kodim23/target_bpp": "ef0fae2e969c90003b591282ab00b8a8b0e89fa2acf0c6202d90bf9ef2e106d4",
        "kodim23/target_psnr": "b268fc203d5631e13b35e9490e30501ed0bd28778eeb4e0417cc35464372d8be",
        "kodim23/q40_levels1_meta": "f99fca2a2a4726b5a411895d61d6c96e47a74d2cf7b11b9a4c7780037ae598de",
        "kodim01/quality": "cd1471314f0cf98f8544d3a1462e2a98e4f308053627e62e2f25d83ed064c3c6",
        "kodim01/target_bpp": "738f8504da0cc8864e0532a1ac2aa92282c9a0b5cb5a06e5b7bffd002db6d726",
        "kodim01/target_psnr": "eb55587e4742324fa57d846d04d6db16afeded88283e867ed217aab8495c63bb",
        "kodim01/q40_levels1_meta": "13fa6a6f30853a160db042f38e34b656373035d349c53104073d7e04717d34f6",
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
