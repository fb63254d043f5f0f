#!/usr/bin/env python3
"""Smoke test of an installed splatcodec wheel, run from outside the source tree.

Checks that the package imported is the installed one (not a source checkout), that every native
module the build should contain is in it and loads (the ISA variants on x86-64), then encodes and
decodes a real image, through the API and the ``splatcodec`` command, and opens the result with the
Pillow plugin.

    python wheel_smoke.py IMAGE [--expect-isa-variants]
"""
from __future__ import annotations

import argparse
import os
import pathlib
import platform
import subprocess
import sys
import tempfile


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("image", type=pathlib.Path)
    parser.add_argument("--expect-isa-variants", action="store_true",
                        help="fail unless the x86-64-v3 and v4 core modules are in the wheel")
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    import splatcodec
    from splatcodec import _native

    package = pathlib.Path(splatcodec.__file__).resolve().parent
    assert "site-packages" in package.parts, f"imported splatcodec from {package}, not an installed wheel"
    modules = sorted(p.name.split(".")[0] for p in package.glob("_core*.so"))
    print("installed at", package)
    print("native modules:", ", ".join(modules))
    expected = ["_core"] + (["_core_x86_64_v3", "_core_x86_64_v4"] if args.expect_isa_variants else [])
    missing = [m for m in expected if m not in modules]
    assert not missing, f"missing native modules: {missing}"
    report = _native.isa_report()
    print(_native.describe())
    for level, status in report.items():  # built in this wheel: usable here, or honestly not supported
        assert status in ("loaded", "ok") or "not supported by this CPU" in status, f"{level}: {status}"

    with Image.open(args.image) as im:
        pixels = np.asarray(im.convert("RGB"))[:128, :192]
    data = splatcodec.encode(pixels, quality=50, effort=1)
    decoded = splatcodec.decode(data)
    quality = splatcodec.psnr(decoded, pixels)
    print(f"encode/decode {pixels.shape[1]}x{pixels.shape[0]}: {len(data)} bytes, {quality:.2f} dB")
    assert decoded.shape == pixels.shape and quality > 20

    with tempfile.TemporaryDirectory() as tmp:
        src, dst, out = (os.path.join(tmp, n) for n in ("in.png", "x.gsplat", "out.png"))
        Image.fromarray(pixels).save(src)
        for command in (["encode", src, "-o", dst, "-q", "40", "-e", "1"], ["decode", dst, "-o", out]):
            subprocess.run(["splatcodec", *command], check=True)
        splatcodec.register_pillow()
        with Image.open(dst) as im:
            assert im.format == "GSPLAT" and im.size == (pixels.shape[1], pixels.shape[0])
            np.testing.assert_array_equal(np.asarray(im), np.asarray(Image.open(out)))
    print(f"wheel smoke test passed ({platform.machine()}, Python {platform.python_version()})")


if __name__ == "__main__":
    sys.exit(main())
