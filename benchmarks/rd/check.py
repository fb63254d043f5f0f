"""A quick rate-distortion check of a few images against JPEG 4:2:0, for fresh encodes (the full
benchmark is ``python -m benchmarks.rd``).

    python -m benchmarks.rd.check ../shared/data/kodak/kodim23.png --quality 40 60 75 --threads 1

For every image and quality it prints the real file size in bpp, PSNR (8-bit RGB), JPEG's PSNR at the
same bpp (interpolated in log bpp over the same JPEG sweep and settings as the full benchmark), the
bits per Gaussian by attribute, and the encode time.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ..common import load_rgb
from .codecs import reference_codecs
from .report import envelope
from .run import psnr

JPEG = "jpeg-420"


def jpeg_psnr_at(pixels: np.ndarray, bpp: float) -> float:
    """PSNR of the benchmark's JPEG 4:2:0 at ``bpp``, interpolated in log bpp; NaN outside its sweep."""
    codec = next(c for c in reference_codecs() if c.name == JPEG)
    rates, quality = [], []
    for q in codec.default_values:
        data = codec.encode(pixels, q)
        rates.append(8 * len(data) / (pixels.shape[0] * pixels.shape[1]))
        quality.append(psnr(pixels, codec.decode(data)))
    rate, dist = envelope(rates, quality)
    if len(rate) < 2 or not rate[0] <= bpp <= rate[-1]:
        return float("nan")
    return float(np.interp(np.log(bpp), np.log(rate), dist))


def main(argv: Sequence[str] | None = None) -> int:
    import splatcodec

    parser = argparse.ArgumentParser(prog="python -m benchmarks.rd.check", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--quality", type=float, nargs="+", default=[40, 60, 75])
    parser.add_argument("--effort", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"{'image':<14}{'q':>5}{'N':>7}{'bpp':>8}{'PSNR':>8}{'JPEG':>8}{'gain':>7}{'b/G':>7}{'s':>7}  bits/Gaussian")
    for path in args.images:
        pixels = load_rgb(path)
        for q in args.quality:
            start = time.perf_counter()
            _, st = splatcodec.encode(pixels, q, effort=args.effort, threads=args.threads, return_stats=True)
            elapsed = time.perf_counter() - start
            ref = jpeg_psnr_at(pixels, st.bpp)
            parts = " ".join(f"{k}={v:.2f}" for k, v in st.bits_per_gaussian.items())
            print(f"{path.name:<14}{q:>5.0f}{st.num_gaussians:>7}{st.bpp:>8.3f}{st.psnr:>8.2f}{ref:>8.2f}"
                  f"{st.psnr - ref:>+7.2f}{8 * st.bytes / st.num_gaussians:>7.1f}{elapsed:>7.1f}  {parts}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
