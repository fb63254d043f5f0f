#!/usr/bin/env python3
"""Render time of the numba fallback next to the native core, on real decoded files.

A few Kodak images are encoded once (``--quality``, ``--effort``; the ``.gsplat`` bytes are cached
under ``--out``, so reruns skip the fits), their Gaussians decoded, and the same packed parameters
rendered by the native core in use (``splatcodec._native.describe()``), by the portable
baseline core (SSE2, the same arithmetic as numba's, no FMA) and by ``splatcodec.backends.numba_raster``, each at 1x and 2x the stored size, with the same thread count.
Each cell is the median of ``--repeats`` runs after one warm-up run; numba's one-off cost (loading
the cached kernel, or compiling it when the cache is cold) is printed separately, from a fresh
process. The images are checked equal (max |difference| printed) before any timing.

    python benchmarks/numba_render.py [--images kodim01,kodim23] [--threads N] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import splatcodec  # noqa: E402
from splatcodec import _native  # noqa: E402
from splatcodec.backends import numba_raster  # noqa: E402
from splatcodec.codec.api import decode_splats  # noqa: E402
from splatcodec.render import scaled_params  # noqa: E402

KODAK = ROOT.parent / "shared" / "data" / "kodak"


def encoded(name: str, quality: float, effort: int, out: Path) -> bytes:
    path = out / f"{name}_q{quality:g}_e{effort}.gsplat"
    if not path.exists():
        from PIL import Image

        with Image.open(KODAK / f"{name}.png") as im:
            pixels = np.asarray(im.convert("RGB"))
        path.write_bytes(splatcodec.encode(pixels, quality=quality, effort=effort))
    return path.read_bytes()


def median_ms(function, repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def first_call_seconds(data_path: Path) -> float:
    """Seconds of numba's first render in a fresh process (kernel load from the cache, or compile)."""
    code = ("import time, sys; sys.path.insert(0, %r); from splatcodec.backends import numba_raster as r; "
            "import numpy as np; p = np.ones((1, 8), np.float32); t = time.perf_counter(); "
            "r.render(p, 8, 8); print(time.perf_counter() - t)") % str(ROOT)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(result.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default="kodim01,kodim23")
    parser.add_argument("--quality", type=float, default=75)
    parser.add_argument("--effort", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="0: all cores (both renderers)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "cache" / "numba_render")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    print(_native.describe().splitlines()[0])
    print(f"cpus: {os.cpu_count()}, threads: {args.threads or 'all'}, load average: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"numba first render in a fresh process (cached kernel): {first_call_seconds(args.out):.2f} s\n")
    print("| image | Gaussians | output | native ms | baseline core ms | numba ms | numba / native | "
          "numba / baseline | max abs diff |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    ratios = []
    for name in args.images.split(","):
        splats = decode_splats(encoded(name, args.quality, args.effort, args.out))
        for factor in (1, 2):
            width, height = splats.width * factor, splats.height * factor
            params = scaled_params(splats, width, height)
            native = _native.call("render", params, width, height, args.threads)
            ours = numba_raster.render(params, width, height, args.threads)
            diff = float(np.abs(native - ours).max())
            t_native = median_ms(lambda: _native.call("render", params, width, height, args.threads), args.repeats)
            t_base = median_ms(lambda: _native._baseline().render(params, width, height, args.threads),
                               args.repeats)
            t_numba = median_ms(lambda: numba_raster.render(params, width, height, args.threads), args.repeats)
            ratios.append(t_numba / t_native)
            print(f"| {name} | {splats.num_gaussians} | {width}x{height} | {t_native:.1f} | {t_base:.1f} | "
                  f"{t_numba:.1f} | {t_numba / t_native:.2f}x | {t_numba / t_base:.2f}x | {diff:.2e} |")
    print(f"\ngeometric mean numba / native: {float(np.exp(np.mean(np.log(ratios)))):.2f}x")


if __name__ == "__main__":
    main()
