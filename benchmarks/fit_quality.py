"""Fitting-algorithm ablations on real images, at equal iteration and Gaussian budgets.

1. Initialisation: uniform grid ("structured"), content-adaptive kd-split, random — PSNR after the same
   number of iterations.
2. Densification: error-guided densification after luminance pruning (refilling to N) against pruning
   alone, at equal final Gaussian count (the prune-only run starts with more Gaussians, chosen so that
   it ends with the count the densified run ends with).

    python -m benchmarks.fit_quality [--images kodim23,kodim01,kodim05] [--gaussians 10000] [--iterations 300]
"""
from __future__ import annotations

import argparse

import numpy as np

import splatcodec as sc

from .common import load_image

PRUNE = dict(prune_every=50, prune_threshold=0.02, prune_until=0.6)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="kodim23,kodim01,kodim05")
    parser.add_argument("--gaussians", type=int, default=10000)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    names = args.images.split(",")
    n, iters, threads = args.gaussians, args.iterations, args.threads

    print(f"# initialisation: PSNR (dB, float) after {iters} iterations, {n} Gaussians")
    print(f"{'image':10s} {'grid':>8s} {'adaptive':>9s} {'random':>8s}")
    init_rows = []
    for name in names:
        image = load_image(name)
        row = [sc.fit(image, n, iters, init=init, threads=threads, return_stats=True).stats.final_psnr
               for init in ("grid", "adaptive", "random")]
        init_rows.append(row)
        print(f"{name:10s} {row[0]:8.2f} {row[1]:9.2f} {row[2]:8.2f}", flush=True)
    mean = np.mean(init_rows, axis=0)
    print(f"{'mean':10s} {mean[0]:8.2f} {mean[1]:9.2f} {mean[2]:8.2f}")

    print(f"\n# densification vs pruning alone at equal final count ({iters} iterations, {PRUNE})")
    print(f"{'image':10s} {'final N':>8s} {'densify':>8s} {'prune-only':>11s} {'(start N)':>10s}")
    for name in names:
        image = load_image(name)
        dense = sc.fit(image, n, iters, densify=True, threads=threads, return_stats=True, **PRUNE).stats
        # Search the prune-only start count whose final count matches (pruning is monotone in it).
        lo, hi = dense.gaussians_final, 3 * n
        best = None
        for _ in range(8):
            start = (lo + hi) // 2
            stats = sc.fit(image, start, iters, threads=threads, return_stats=True, **PRUNE).stats
            if best is None or abs(stats.gaussians_final - dense.gaussians_final) < abs(
                    best[1].gaussians_final - dense.gaussians_final):
                best = (start, stats)
            if stats.gaussians_final < dense.gaussians_final:
                lo = start + 1
            elif stats.gaussians_final > dense.gaussians_final:
                hi = start - 1
            else:
                break
            if lo > hi:
                break
        start, prune_only = best
        print(f"{name:10s} {dense.gaussians_final:8d} {dense.final_psnr:8.2f} {prune_only.final_psnr:11.2f} "
              f"{start:>10d} (prune-only ends with {prune_only.gaussians_final})", flush=True)


if __name__ == "__main__":
    main()
