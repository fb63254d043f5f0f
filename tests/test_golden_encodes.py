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
        "kodim23/quality": "f6c6711ec55226f5222b370fa4f4a8ea7689e5ff2052acdd3586e07d93904dd0",
        "kodim23/target_bpp": "c492cf606c1b9c87228fc5054fb4f318e176a63b25c77ada7dbd435487c7dd88",
        "kodim23/target_psnr": "cb89cf7384148fe4872ade523bd5a0a457fc53b46d0e4c598d057414045d63ab",
        "kodim23/q40_levels1_meta": "1b2ca7d5f6d4cb56f73060f2b055c46ef750f127da9f2f43230402a154a3344e",
        "kodim01/quality": "a190f00c5339bb883cb35db50399f5224e43c442eaa43b985b21589cf137af43",
        "kodim01/target_bpp": "dfd9e9eb26679c2b1f9ad4482b068320d5d2a2b1fc63ebd3369c9768dd2dbe39",
        "kodim01/target_psnr": "cd1080b0014e6bf48880feb1b6c8c62c142e7fbee37a6fb76862c38b3bbee91d",
        "kodim01/q40_levels1_meta": "efec359394aedf2d4e2be53a7e71c9219195f8c171d4738992f560631675b699",
    },
    "x86-64-v4": {
        "kodim23/quality": "212ca674c58e09fd2b74848fe185b8c813f71b058a2751401f57ee7224df960d",
        "kodim23/target_bpp": "9e0da22b94a43e19e98a233a98249db00dba9f4ee32db2bf6b24a93d61d33b20",
        "kodim23/target_psnr": "28b4d360ca22d0363ef83286781a89bc7e6b412e3816d582e01b547777c80035",
        "kodim23/q40_levels1_meta": "250e17821959c3aeac0358eb23bf6be7ced0ca2450cd13954b057c8a703a4c5b",
        "kodim01/quality": "df3244c381dbacee684147bd1d79f1f9ffc79383599dbd4b416eff4a1dd547fa",
        "kodim01/target_bpp": "d4bf33e9512fd29109d222cad5cbdc21af920891fd56e33a4a684a60b81f1e16",
        "kodim01/target_psnr": "5c4761f8c58fbc09573d3d7fc0355665e9d279870dc64c01c41774b924bde066",
        "kodim01/q40_levels1_meta": "ebdb78ef5795bca22ab8ea1d19fdfd8b48327e724f6c4ee487041938b37fcd12",
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
