"""GPU (splatcodec._core_cuda) vs CPU (splatcodec._core) speed, measured in one run on one image
(default: Kodak kodim23, 768x512):

* render time (host arrays in and out, so uploads/downloads included) at 10k and 50k Gaussians;
* render_backward time at 10k Gaussians;
* ms per fitting iteration at 10k Gaussians (initialisation subtracted) and the ratio;
* wall time to reach 30 dB and 33 dB (training PSNR), initialisation included;
* throughput of a batch of 16 crops (128x128, 600 Gaussians, 300 iterations) fitted with 1 and with 4
  concurrent streams.

    python -m benchmarks.cuda_speed [--image kodim23] [--threads 0] [--skip-cpu] [--json out.json]

Needs splatcodec._core_cuda built (SPLATCODEC_CUDA=1, see docs/cuda.md) and a GPU.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from splatcodec import _core

from .common import load_image, median_seconds

try:
    from splatcodec import _core_cuda
except ImportError as exc:
    sys.exit(f"splatcodec._core_cuda is not built ({exc}); see docs/cuda.md")


def load(name: str) -> np.ndarray:
    """A Kodak name or a path as float32 RGB in [0, 1] (the native modules' input)."""
    return np.ascontiguousarray(load_image(name), np.float32) / 255.0


def config(n: int, iterations: int, target: float = 0.0, threads: int = 0) -> "_core.FitConfig":
    c = _core.FitConfig()
    c.num_gaussians = n
    c.iterations = iterations
    c.target_psnr = target
    c.threads = threads
    return c


def fit_seconds(module, image: np.ndarray, cfg, threads: int) -> dict:
    (_, stats), = module.fit_batch([image], [cfg], [None], threads)
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="kodim23")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for the CPU core (0: all)")
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--skip-cpu", action="store_true", help="GPU figures only")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if _core_cuda.device_count() <= 0:
        sys.exit("no CUDA device")
    image = load(args.image)
    h, w = image.shape[:2]
    results: dict = {"image": args.image, "width": w, "height": h}
    backends = [("gpu", _core_cuda)] + ([] if args.skip_cpu else [("cpu", _core)])

    # Warm-up (CUDA context creation, first allocations).
    init10k = np.asarray(_core.initial_gaussians(image, config(10000, 0)))
    _core_cuda.render(init10k, w, h)

    for n in (10000, 50000):
        params = np.asarray(_core.initial_gaussians(image, config(n, 0)))
        for name, module in backends:
            t = median_seconds(lambda: module.render(params, w, h, args.threads), 5)
            results[f"render_{n // 1000}k_ms_{name}"] = 1e3 * t
    grad_image = np.random.default_rng(0).normal(size=image.shape).astype(np.float32)
    for name, module in backends:
        t = median_seconds(lambda: module.render_backward(init10k, w, h, grad_image, args.threads), 5)
        results[f"backward_10k_ms_{name}"] = 1e3 * t

    for name, module in backends:
        init = fit_seconds(module, image, config(10000, 0), args.threads)["seconds"]
        run = fit_seconds(module, image, config(10000, args.iterations), args.threads)
        results[f"fit_ms_per_iteration_{name}"] = 1e3 * (run["seconds"] - init) / args.iterations
        results[f"fit_{args.iterations}it_psnr_{name}"] = run["final_psnr"]
        for target in (30.0, 33.0):
            stats = fit_seconds(module, image, config(10000, 5000, target), args.threads)
            results[f"time_to_{target:.0f}dB_s_{name}"] = stats["seconds"] if stats["reached_target"] else None
            results[f"iterations_to_{target:.0f}dB_{name}"] = stats["iterations"]
    if "fit_ms_per_iteration_cpu" in results:
        results["fit_speedup_gpu_vs_cpu"] = results["fit_ms_per_iteration_cpu"] / results["fit_ms_per_iteration_gpu"]

    crops = [np.ascontiguousarray(image[y:y + 128, x:x + 128]) for y in range(0, h - 127, 128)
             for x in range(0, w - 127, 128)][:16]
    cfgs = [config(600, 300) for _ in crops]
    for streams in (1, 4):
        t = median_seconds(lambda: _core_cuda.fit_batch(crops, cfgs, [None] * len(crops), streams), 1)
        results[f"batch_{len(crops)}crops_s_gpu_{streams}streams"] = t

    width = max(len(k) for k in results)
    for k, v in results.items():
        print(f"{k:<{width}}  {v:.3f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
