"""Fitting and rendering speed of splatcodec's native core against a plain PyTorch implementation.

Measured in one run on one image (default: Kodak kodim23, 768x512, 10k Gaussians):

* ms per fitting iteration, splatcodec vs ``benchmarks/torch_baseline.py`` (same model, same start
  Gaussians, same learning rates), and the ratio;
* wall time to reach 30 dB and 33 dB (training PSNR, float image) for both, including splatcodec's
  initialisation; the PyTorch run is capped at ``--torch-cap`` seconds;
* render time at 10k and 50k Gaussians next to Pillow's JPEG decode of the same image;
* peak memory (RSS high-water mark) of a 50k-Gaussian fit, measured in a fresh process.

    python benchmarks/fit_speed.py [--image kodim23] [--threads 0] [--json out.json]

Speed targets (issue 3): >= 20x per iteration, kodim23 to 33 dB in <= 10 s, <= 300 MB at 50k.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
KODAK = REPO.parent / "shared" / "data" / "kodak"
sys.path.insert(0, str(REPO))

import splatcodec as sc  # noqa: E402
from splatcodec import _native  # noqa: E402


def load(name: str) -> np.ndarray:
    path = Path(name) if Path(name).is_file() else KODAK / f"{name}.png"
    if not path.is_file():
        sys.exit(f"image not found: {path}")
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def splatcodec_per_iteration(image: np.ndarray, gaussians: int, iterations: int, threads: int) -> float:
    """Seconds per iteration, with the one-off initialisation (a 0-iteration fit) subtracted."""
    init = sc.fit(image, gaussians, 0, threads=threads, return_stats=True).stats.seconds
    run = sc.fit(image, gaussians, iterations, threads=threads, return_stats=True).stats.seconds
    return (run - init) / iterations


def splatcodec_time_to(image: np.ndarray, gaussians: int, target: float, threads: int) -> tuple[float, int]:
    # The default 2000-iteration schedule, stopped at the target (as the PyTorch run below).
    stats = sc.fit(image, gaussians, target_psnr=target, threads=threads, return_stats=True).stats
    if not stats.reached_target:
        return float("inf"), stats.iterations
    return stats.seconds, stats.iterations


def torch_run(image: np.ndarray, gaussians: int, threads: int, timed_iterations: int, cap_seconds: float,
              targets: tuple[float, ...]) -> dict:
    """ms/iteration over `timed_iterations` steps, then keeps stepping until every target is reached or
    the cap runs out; records the wall time at which each target PSNR was first reached."""
    import torch

    from torch_baseline import TorchFitter

    config = sc.FitOptions(num_gaussians=gaussians).native_config(image.shape + (() if image.ndim == 3 else (1,)),
                                                                 threads)
    start_params = _native.core().initial_gaussians(image.astype(np.float32) / 255.0, config)
    defaults = sc.FitOptions()
    same_schedule = dict(threads=threads, iterations=defaults.iterations, init_params=start_params,
                         lr_xy=defaults.lr_xy, lr_chol=defaults.lr_chol, lr_color=defaults.lr_color,
                         lr_final_ratio=defaults.lr_final_ratio, min_chol=defaults.min_chol)
    fitter = TorchFitter(image, gaussians, **same_schedule)
    fitter.step()  # warm-up (allocator, thread pool)
    per_step = median_seconds(fitter.step, timed_iterations)

    fitter = TorchFitter(image, gaussians, **same_schedule)
    reached: dict[float, float] = {}
    steps = 0
    start = time.perf_counter()
    while len(reached) < len(targets) and time.perf_counter() - start < cap_seconds:
        loss = fitter.step()
        steps += 1
        psnr = -10.0 * np.log10(max(loss, 1e-12))  # loss is the MSE before this step's update
        for target in targets:
            if target not in reached and psnr >= target:
                reached[target] = time.perf_counter() - start
    return {"seconds_per_iteration": per_step, "reached": reached, "steps": steps,
            "torch_threads": torch.get_num_threads()}


def peak_memory_mb(image_name: str, gaussians: int, iterations: int, threads: int) -> tuple[float, float]:
    """(peak RSS of the whole process, growth of the peak during the fit), in MB, in a fresh process."""
    code = f"""
import sys; sys.path.insert(0, {str(REPO)!r}); sys.path.insert(0, {str(REPO / 'benchmarks')!r})
from fit_speed import load
import splatcodec as sc
def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM'):
            return int(line.split()[1]) / 1024
image = load({image_name!r}); sc.render  # imports done, image loaded
sc.fit(image[:16, :16], 4, 1)  # loads the extension and OpenMP runtime
before = hwm()
sc.fit(image, {gaussians}, {iterations}, threads={threads})
print(hwm(), hwm() - before)
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    total, growth = map(float, out.split())
    return total, growth


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="kodim23", help="Kodak name (kodim01..24) or a path")
    parser.add_argument("--gaussians", type=int, default=10000)
    parser.add_argument("--iterations", type=int, default=200, help="iterations timed for splatcodec")
    parser.add_argument("--torch-iterations", type=int, default=5, help="iterations timed for PyTorch")
    parser.add_argument("--torch-cap", type=float, default=300.0,
                        help="seconds the PyTorch time-to-PSNR run may take")
    parser.add_argument("--threads", type=int, default=0, help="threads for both (0: all cores)")
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    threads = args.threads or os.cpu_count() or 1
    image = load(args.image)
    height, width = image.shape[:2]
    lanes = _native.core().SIMD_LANES
    out: dict = {"image": args.image, "width": width, "height": height, "gaussians": args.gaussians,
                 "threads": threads, "cpu": _cpu_name(), "simd_lanes": lanes}
    print(f"# fit_speed: {args.image} {width}x{height}, {args.gaussians} Gaussians, {threads} threads, "
          f"{out['cpu']}, native core built for {lanes}-float SIMD "
          f"({ {4: 'portable SSE2', 8: 'AVX2', 16: 'AVX-512'}.get(lanes, '?') })")

    ours = splatcodec_per_iteration(image, args.gaussians, args.iterations, threads)
    out["splatcodec_ms_per_iteration"] = ours * 1e3
    print(f"splatcodec   {ours * 1e3:9.2f} ms/iteration")
    targets = (30.0, 33.0)
    for target in targets:
        seconds, iters = splatcodec_time_to(image, args.gaussians, target, threads)
        out[f"splatcodec_seconds_to_{target:.0f}dB"] = seconds
        print(f"splatcodec   {seconds:9.2f} s to {target:.0f} dB ({iters} iterations, init included)")

    if not args.skip_torch:
        sys.path.insert(0, str(REPO / "benchmarks"))
        torch = torch_run(image, args.gaussians, threads, args.torch_iterations, args.torch_cap, targets)
        out["torch_ms_per_iteration"] = torch["seconds_per_iteration"] * 1e3
        out["speedup_per_iteration"] = torch["seconds_per_iteration"] / ours
        print(f"PyTorch      {torch['seconds_per_iteration'] * 1e3:9.2f} ms/iteration "
              f"({torch['torch_threads']} torch threads)")
        print(f"ratio        {out['speedup_per_iteration']:9.1f}x per iteration (PyTorch / splatcodec)")
        for target in targets:
            seconds = torch["reached"].get(target, float("inf"))
            out[f"torch_seconds_to_{target:.0f}dB"] = seconds
            ours_t = out[f"splatcodec_seconds_to_{target:.0f}dB"]
            shown = f"{seconds:9.2f} s" if np.isfinite(seconds) else f" > {args.torch_cap:.0f} s (cap)"
            print(f"PyTorch      {shown} to {target:.0f} dB; ratio {seconds / ours_t:.1f}x")

    # Rendering: fitted 10k and 50k Gaussians vs Pillow decoding a JPEG of the same image.
    for count in (10000, 50000):
        splats = sc.fit(image, count, 100, threads=threads)
        seconds = median_seconds(lambda: sc.render(splats, threads=threads), 7)
        out[f"render_ms_{count // 1000}k"] = seconds * 1e3
        print(f"render       {seconds * 1e3:9.2f} ms at {count // 1000}k Gaussians ({width}x{height}, uint8)")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90)
    jpeg = buffer.getvalue()

    def decode_jpeg() -> None:
        with Image.open(io.BytesIO(jpeg)) as im:
            im.load()

    seconds = median_seconds(decode_jpeg, 15)
    out["pillow_jpeg_decode_ms"] = seconds * 1e3
    print(f"Pillow JPEG  {seconds * 1e3:9.2f} ms decode (quality 90, {len(jpeg) * 8 / (width * height):.2f} bpp)")

    total, growth = peak_memory_mb(args.image, 50000, 50, threads)
    out["fit_50k_peak_rss_mb"] = total
    out["fit_50k_peak_growth_mb"] = growth
    print(f"memory       {total:9.1f} MB peak RSS of a 50k-Gaussian fit ({growth:.1f} MB above the "
          "process before the fit)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
