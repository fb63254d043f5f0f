"""Quick rate-distortion check against Pillow's JPEG on a few images (the full benchmark is benchmarks/rd.py).

    python -m splatcodec.codec.rdcheck ../shared/data/kodak/kodim23.png --quality 40 60 75 --threads 1

For every image and quality it prints the real file size in bpp, PSNR (8-bit RGB), JPEG's PSNR at the
same bpp (interpolated in log-bpp over Pillow qualities 5..95), the bits per Gaussian by attribute,
and the time taken.
"""
from __future__ import annotations

import argparse
import io
import time

import numpy as np
from PIL import Image

from ..image_io import read_image
from ..metrics import psnr
from . import api


def jpeg_psnr_at(pixels: np.ndarray, bpp: float) -> float:
    """PSNR of Pillow JPEG (default 4:2:0) at ``bpp``, interpolated in log(bpp); NaN outside its range."""
    points = []
    for q in range(5, 96, 5):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG", quality=q)
        back = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
        points.append((8 * buf.tell() / (pixels.shape[0] * pixels.shape[1]), psnr(back, pixels)))
    rates, quality = zip(*sorted(points))
    if not rates[0] <= bpp <= rates[-1]:
        return float("nan")
    return float(np.interp(np.log(bpp), np.log(rates), quality))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+")
    parser.add_argument("--quality", type=float, nargs="+", default=[40, 60, 75])
    parser.add_argument("--effort", type=int, default=api.DEFAULT_EFFORT)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"{'image':<14}{'q':>5}{'N':>7}{'bpp':>8}{'PSNR':>8}{'JPEG':>8}{'gain':>7}{'b/G':>7}{'s':>7}  bits/Gaussian")
    for path in args.images:
        pixels, _ = read_image(path)
        for q in args.quality:
            start = time.perf_counter()
            data, st = api.encode(pixels, q, effort=args.effort, threads=args.threads, return_stats=True)
            elapsed = time.perf_counter() - start
            ref = jpeg_psnr_at(pixels, st.bpp)
            parts = " ".join(f"{k}={v:.2f}" for k, v in st.bits_per_gaussian.items())
            print(f"{path.rsplit('/', 1)[-1]:<14}{q:>5.0f}{st.num_gaussians:>7}{st.bpp:>8.3f}{st.psnr:>8.2f}{ref:>8.2f}"
                  f"{st.psnr - ref:>+7.2f}{8 * st.bytes / st.num_gaussians:>7.1f}{elapsed:>7.0f}  {parts}", flush=True)


if __name__ == "__main__":
    main()
