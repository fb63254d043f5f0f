"""CPU time of small-image encodes and of their rate-distortion optimised quantization (codec/rdoq.py).

    python -m benchmarks.rdoq_speed              # 20 CIFAR-10 training images + 5 Flickr8k 64x64 crops
    python -m benchmarks.rdoq_speed --images 2   # 2 images per CIFAR class (20), 5 crops

Every image is encoded once with ``splatcodec.encode(image, num_gaussians=N, threads=1)`` (effort 4,
the defaults); process time is measured around the whole encode and, by wrapping ``rdoq.optimise``,
around the RDOQ call inside it. Printed per set: mean encode CPU ms, mean RDOQ ms, mean PSNR of the
decoded image and mean bytes. CIFAR-10 *training* images (from the 501st of each class) and Flickr8k
files 0.. (the priors' training split), so no benchmark image is looked at.
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

import splatcodec as sc
from splatcodec.codec import rdoq

from .small_data import FLICKR_TRAIN, center_crop, cifar_paths, flickr_paths, load_rgb


def measure(images: list[np.ndarray], num_gaussians: int) -> dict[str, float]:
    """Mean encode CPU ms, RDOQ CPU ms, PSNR (dB) and bytes of encoding every image at ``num_gaussians``."""
    optimise = rdoq.optimise
    rdoq_seconds: list[float] = []

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return optimise(*args, **kwargs)
        finally:
            rdoq_seconds.append(time.process_time() - start)

    encode_seconds, psnrs, sizes = [], [], []
    rdoq.optimise = timed
    try:
        for image in images:
            start = time.process_time()
            data, stats = sc.encode(image, num_gaussians=num_gaussians, threads=1, return_stats=True)
            encode_seconds.append(time.process_time() - start)
            psnrs.append(stats.psnr)
            sizes.append(len(data))
    finally:
        rdoq.optimise = optimise
    return {"encode_ms": 1e3 * float(np.mean(encode_seconds)), "rdoq_ms": 1e3 * sum(rdoq_seconds) / len(images),
            "psnr": float(np.mean(psnrs)), "bytes": float(np.mean(sizes))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2, help="CIFAR-10 training images per class")
    parser.add_argument("--crops", type=int, default=5, help="Flickr8k 64x64 centre crops")
    args = parser.parse_args(argv)
    cifar = [load_rgb(p) for p in cifar_paths("train", args.images, offset=500)]
    crops = [center_crop(p, 64) for p in flickr_paths(FLICKR_TRAIN[:args.crops])]
    sets = [(f"CIFAR-10 train 32x32 ({len(cifar)})", cifar, 32),
            (f"Flickr8k 64x64 crops ({len(crops)})", crops, 32),
            (f"Flickr8k 64x64 crops ({len(crops)})", crops, 128)]
    print(f"{'images':32} {'N':>4} {'encode ms':>10} {'RDOQ ms':>8} {'PSNR dB':>8} {'bytes':>7}")
    for name, images, n in sets:
        m = measure(images, n)
        print(f"{name:32} {n:4d} {m['encode_ms']:10.1f} {m['rdoq_ms']:8.2f} {m['psnr']:8.3f} {m['bytes']:7.1f}")


if __name__ == "__main__":
    main()
