"""Batched fitting throughput at the GaussianVision setting: 224x224 images, 400 and 1600 Gaussians,
2000 iterations, images per second with ``fit_batch`` (parallel across images).

Images: the first ``--count`` Flickr8k photos of ``../shared/data/flickr8k_500``, centre-cropped to a
square and resized to 224x224 with Pillow (bicubic). The paper fits 12.8M images at 400 Gaussians in
~25.6 GPU-hours, about 7 ms per image amortised at batch 4096 on a GPU; this is the CPU figure.

    python benchmarks/batch_throughput.py [--count 8] [--iterations 2000] [--threads 0]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
FLICKR = REPO.parent / "shared" / "data" / "flickr8k_500" / "images"
sys.path.insert(0, str(REPO))

import splatcodec as sc  # noqa: E402


def load_224(count: int) -> list[np.ndarray]:
    paths = sorted(FLICKR.glob("*.jpg"))[:count]
    if len(paths) < count:
        sys.exit(f"need {count} images in {FLICKR}, found {len(paths)}")
    images = []
    for path in paths:
        with Image.open(path) as im:
            im = im.convert("RGB")
            side = min(im.size)
            left, top = (im.width - side) // 2, (im.height - side) // 2
            im = im.crop((left, top, left + side, top + side)).resize((224, 224), Image.BICUBIC)
            images.append(np.asarray(im))
    return images


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=8, help="images in the batch")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    images = load_224(args.count)
    threads = args.threads or os.cpu_count() or 1
    print(f"# batch_throughput: {args.count} Flickr8k images at 224x224, {args.iterations} iterations, "
          f"{threads} threads, native core built for {sc._native.core().SIMD_LANES}-float SIMD")
    for gaussians in (400, 1600):
        start = time.perf_counter()
        results = sc.fit_batch(images, gaussians, args.iterations, threads=threads, return_stats=True)
        seconds = time.perf_counter() - start
        psnr = np.mean([r.stats.final_psnr for r in results])
        print(f"{gaussians:5d} Gaussians: {args.count / seconds:6.2f} images/s "
              f"({seconds / args.count * 1e3:7.1f} ms per image), mean PSNR {psnr:.2f} dB")


if __name__ == "__main__":
    main()
