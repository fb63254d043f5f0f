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
        "kodim23/quality": "e5dd1f24ce3ffff19c463aff50aa431aa7738a8cee81182281745e97eca01d9b",
        "kodim23/target_bpp": "3b1bff59f27f19b9c094250e17905d81e3eb7c093f21ff564eae6054995274c2",
        "kodim23/target_psnr": "e45fb641274dfd5759249961cb741635f6ac0715c55c94bb7240cbccd8a23ac5",
        "kodim23/q40_levels1_meta": "bf1e5b7e794de336dc652770c2e49ea433e1358f7a4ddfbfd83ccb19ba9e1545",
        "kodim01/quality": "4ba675d5b9746b2125228bc1e1b5fbc2ce6c5d1b567a3bb67b3c248502906530",
        "kodim01/target_bpp": "280d2994508ce8cdae6c851f81bdf853e21f27b598db2703e2ceae659d96001e",
        "kodim01/target_psnr": "45e219b6f77c7aafae33bf7b01120319a6649579062bbbae9d36325fc425a94a",
        "kodim01/q40_levels1_meta": "eb622a9010cad4873a000ecf87a41f34934396ee8a1056443a2e698eb93b465d",
    },
    "x86-64-v3": {
        "kodim23/quality": "f6980918ef0c4eb8a72a0a5f8daf22f77c81ab788a6902e088be44f79793afa1",
        "kodim23/target_bpp": "e5d62519f55a593ef236a300b66c3417c4799a36b25b34545cffec28eca83c49",
        "kodim23/target_psnr": "e8ec5c06f716f420b5ae7abc4bf4815778e6fde8416f7fb7032363fca76b4b1a",
        "kodim23/q40_levels1_meta": "a92ef593724a914ffa499674027308c00eb7441b279cf9bc86c94933b9b9d651",
        "kodim01/quality": "191b9b36371b6760beb4a05d58287129228f25858f49fbe59c40800f7686b98f",
        "kodim01/target_bpp": "b58c635419e4ae05cf8a829a460393b357f6053704739caa396d4eea83397e45",
        "kodim01/target_psnr": "09d6205d036a5147cca23adf038e55285fc994f560cd2992cc54f8d7e4cfcd68",
        "kodim01/q40_levels1_meta": "6f849a8ef9266e74025dd977350b742de933ec7fd925ef2635a47473417e0e10",
    },
    "x86-64-v4": {
        "kodim23/quality": "1c40dad71e5bc3def25b6716ea7a4c86828a8332d2c9cb96248c0adedbe91a00",
        "kodim23/target_bpp": "1b6b81e62cbac94c5ab2c6d140cf225d5febf48e948afd4c27e80e4bfd06c7c8",
        "kodim23/target_psnr": "6bf84c18880c35ea2049d1deba7af9b8b42a6f6b6d3894759e3c6ec950b63d05",
        "kodim23/q40_levels1_meta": "2d06b5a3637c1cbc173a62413b2ab1dcd7b9929d20c441ec38c482a240281ee4",
        "kodim01/quality": "d7cd7a182fa48a0b2c8a95e05c7d5306b17fb72514fddb52b90eeb44bb441bc7",
        "kodim01/target_bpp": "593f9b3dd82942f1d86baf178376884df19c3ea6be41a92be0232d36419fb2ee",
        "kodim01/target_psnr": "dee86cbf2721574c0e1adc72afaaec27857058595e72347dbb934cdadb6e5e2a",
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
