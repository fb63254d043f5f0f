"""Fitting and rendering speed of splatcodec's native core against a plain PyTorch implementation.

Measured in one run on one image (default: Kodak kodim23, 768x512, 10k Gaussians):

* ms per fitting iteration, splatcodec vs ``benchmarks/torch_baseline.py`` (same model, same start
  Gaussians, same learning rates), and the ratio;
* wall time to reach 30 dB and 33 dB (training PSNR, float image) for both, including splatcodec's
  initialisation; the PyTorch run is capped at ``--torch-cap`` seconds;
* render time at 10k and 50k Gaussians next to Pillow's JPEG decode of the same image;
* peak memory (RSS high-water mark) of a 50k-Gaussian fit, measured in a fresh process.

    python -m benchmarks.fit_speed [--image kodim23] [--threads 0] [--json out.json]

The same measurement is the ``fit`` section of ``benchmarks.speed`` (which calls :func:`measure`);
that script also covers decode speed against Pillow, batched throughput and scaling.

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

import splatcodec as sc
from splatcodec import _native

from .common import REPO_ROOT, cpu_name, load_image, median_seconds


def splatcodec_per_iteration(image: np.ndarray, gaussians: int, iterations: int, threads: int) -> float:
    """Seconds per iteration, with the one-off initialisation (a 0-iteration fit) subtracted."""
    return splatcodec_fit_timing(image, gaussians, iterations, threads)[0]


def splatcodec_fit_timing(image: np.ndarray, gaussians: int, iterations: int, threads: int,
                          repeats: int = 1) -> tuple[float, float, "sc.Splats"]:
    """(seconds per iteration over the first ``iterations``, seconds of the initialisation, the fitted
    Gaussians). The initialisation is timed as a 0-iteration fit and subtracted from the full one;
    each is the median of ``repeats`` fits (the fit's own clock, so Python overhead is excluded). When
    the difference does not resolve the iterations (tiny fits timed on a busy machine: the full fit
    measured no slower than the initialisation alone) the per-iteration time is NaN, "not measured",
    rather than a made-up zero."""
    init = statistics.median(sc.fit(image, gaussians, 0, threads=threads, return_stats=True).stats.seconds
                             for _ in range(repeats))
    runs = [sc.fit(image, gaussians, iterations, threads=threads, return_stats=True) for _ in range(repeats)]
    run = statistics.median(r.stats.seconds for r in runs)
    per_iteration = (run - init) / iterations if run > init else float("nan")
    return per_iteration, init, runs[0].splats


def splatcodec_time_to(image: np.ndarray, gaussians: int, target: float, threads: int) -> tuple[float, int]:
    # The default 2000-iteration schedule, stopped at the target (as the PyTorch run below).
    stats = sc.fit(image, gaussians, target_psnr=target, threads=threads, return_stats=True).stats
    if not stats.reached_target:
        return float("inf"), stats.iterations
    return stats.seconds, stats.iterations


def torch_fitter_factory(image: np.ndarray, gaussians: int, threads: int):
    """A function returning a fresh ``torch_baseline.TorchFitter`` started from splatcodec's own
    initial Gaussians, with the native fitter's default learning rates and schedule."""
    from .torch_baseline import TorchFitter

    config = sc.FitOptions(num_gaussians=gaussians).native_config(image.shape + (() if image.ndim == 3 else (1,)),
                                                                 threads)
    start_params = _native.core().initial_gaussians(image.astype(np.float32) / 255.0, config)
    defaults = sc.FitOptions()
    same_schedule = dict(threads=threads, iterations=defaults.iterations, init_params=start_params,
                         lr_xy=defaults.lr_xy, lr_chol=defaults.lr_chol, lr_color=defaults.lr_color,
                         lr_final_ratio=defaults.lr_final_ratio, min_chol=defaults.min_chol)
    return lambda: TorchFitter(image, gaussians, **same_schedule)


def torch_seconds_per_iteration(make_fitter, timed_iterations: int) -> float:
    """Median seconds of one PyTorch iteration, after one warm-up step (allocator, thread pool)."""
    fitter = make_fitter()
    fitter.step()
    return median_seconds(fitter.step, timed_iterations)


def torch_run(image: np.ndarray, gaussians: int, threads: int, timed_iterations: int, cap_seconds: float,
              targets: tuple[float, ...]) -> dict:
    """ms/iteration over `timed_iterations` steps, then keeps stepping until every target is reached or
    the cap runs out; records the wall time at which each target PSNR was first reached."""
    import torch

    make_fitter = torch_fitter_factory(image, gaussians, threads)
    per_step = torch_seconds_per_iteration(make_fitter, timed_iterations)

    fitter = make_fitter()
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
import sys; sys.path.insert(0, {str(REPO_ROOT)!r})
from benchmarks.common import load_image as load
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


def measure(image_name: str = "kodim23", gaussians: int = 10000, iterations: int = 200, threads: int = 0,
            torch_iterations: int = 5, torch_cap: float = 300.0, skip_torch: bool = False,
            targets: tuple[float, ...] = (30.0, 33.0), render_counts: tuple[int, ...] = (10000, 50000),
            render_iterations: int = 100, memory_gaussians: int = 50000, memory_iterations: int = 50) -> dict:
    """Runs every measurement of this module, prints it, and returns the figures as a dict.

    Times to a target that was not reached are ``inf``. ``image_name`` is a Kodak name or a path (the
    memory measurement reloads it in a fresh process).
    """
    threads = threads or os.cpu_count() or 1
    image = load_image(image_name)
    height, width = image.shape[:2]
    lanes = _native.core().SIMD_LANES
    out: dict = {"image": image_name, "width": width, "height": height, "gaussians": gaussians,
                 "threads": threads, "cpu": cpu_name(), "simd_lanes": lanes}
    print(f"# fit_speed: {image_name} {width}x{height}, {gaussians} Gaussians, {threads} threads, "
          f"{out['cpu']}, native core built for {lanes}-float SIMD "
          f"({ {4: 'portable SSE2', 8: 'AVX2', 16: 'AVX-512'}.get(lanes, '?') })")

    ours = splatcodec_per_iteration(image, gaussians, iterations, threads)
    out["splatcodec_ms_per_iteration"] = ours * 1e3
    print(f"splatcodec   {ours * 1e3:9.2f} ms/iteration")
    for target in targets:
        seconds, iters = splatcodec_time_to(image, gaussians, target, threads)
        out[f"splatcodec_seconds_to_{target:.0f}dB"] = seconds
        print(f"splatcodec   {seconds:9.2f} s to {target:.0f} dB ({iters} iterations, init included)")

    if not skip_torch:
        torch = torch_run(image, gaussians, threads, torch_iterations, torch_cap, targets)
        out["torch_ms_per_iteration"] = torch["seconds_per_iteration"] * 1e3
        out["torch_threads"] = torch["torch_threads"]
        out["speedup_per_iteration"] = torch["seconds_per_iteration"] / ours  # NaN if ours is NaN
        print(f"PyTorch      {torch['seconds_per_iteration'] * 1e3:9.2f} ms/iteration "
              f"({torch['torch_threads']} torch threads)")
        print(f"ratio        {out['speedup_per_iteration']:9.1f}x per iteration (PyTorch / splatcodec)")
        for target in targets:
            seconds = torch["reached"].get(target, float("inf"))
            out[f"torch_seconds_to_{target:.0f}dB"] = seconds
            ours_t = out[f"splatcodec_seconds_to_{target:.0f}dB"]
            shown = f"{seconds:9.2f} s" if np.isfinite(seconds) else f" > {torch_cap:.0f} s (cap)"
            print(f"PyTorch      {shown} to {target:.0f} dB; ratio {seconds / ours_t:.1f}x")

    # Rendering: fitted Gaussians vs Pillow decoding a JPEG of the same image.
    for count in render_counts:
        splats = sc.fit(image, count, render_iterations, threads=threads)
        seconds = median_seconds(lambda: sc.render(splats, threads=threads), 7)
        out[f"render_ms_{_count_tag(count)}"] = seconds * 1e3
        print(f"render       {seconds * 1e3:9.2f} ms at {_count_tag(count)} Gaussians ({width}x{height}, uint8)")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90)
    jpeg = buffer.getvalue()

    def decode_jpeg() -> None:
        with Image.open(io.BytesIO(jpeg)) as im:
            im.load()

    seconds = median_seconds(decode_jpeg, 15)
    out["pillow_jpeg_decode_ms"] = seconds * 1e3
    print(f"Pillow JPEG  {seconds * 1e3:9.2f} ms decode (quality 90, {len(jpeg) * 8 / (width * height):.2f} bpp)")

    total, growth = peak_memory_mb(image_name, memory_gaussians, memory_iterations, threads)
    tag = _count_tag(memory_gaussians)
    out[f"fit_{tag}_peak_rss_mb"] = total
    out[f"fit_{tag}_peak_growth_mb"] = growth
    print(f"memory       {total:9.1f} MB peak RSS of a {tag}-Gaussian fit ({growth:.1f} MB above the "
          "process before the fit)")
    return out


def _count_tag(count: int) -> str:
    """10000 -> '10k', 400 -> '400' (the keys of the figures)."""
    return f"{count // 1000}k" if count % 1000 == 0 else str(count)


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
    out = measure(args.image, args.gaussians, args.iterations, args.threads, args.torch_iterations,
                  args.torch_cap, args.skip_torch)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
