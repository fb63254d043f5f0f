"""Section ``batch``: batched fitting throughput at the GaussianVision setting, CPU and GPU, against the paper."""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
from PIL import Image

import splatcodec as sc

from .. import fit_speed
from ..common import FLICKR_DIR as FLICKR
from . import machine
from .settings import PAPER, Settings
from .util import md_table, threads_used


def load_square(count: int, size: int) -> list[np.ndarray]:
    """The first ``count`` Flickr8k photos, centre-cropped to a square and resized to size x size (bicubic)."""
    paths = sorted(FLICKR.glob("*.jpg"))[:count]
    if len(paths) < count:
        raise FileNotFoundError(f"need {count} images in {FLICKR}, found {len(paths)}")
    images = []
    for path in paths:
        with Image.open(path) as im:
            im = im.convert("RGB")
            side = min(im.size)
            left, top = (im.width - side) // 2, (im.height - side) // 2
            im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
            images.append(np.asarray(im))
    return images


def cuda_fit(module: Any, images: Sequence[np.ndarray], gaussians: int, iterations: int,
             streams: int) -> tuple[float, list[dict[str, Any]]]:
    """(wall seconds, stats dicts) of one ``_core_cuda.fit_batch`` call with the default fit options."""
    from splatcodec.images import to_float_image

    arrays = [to_float_image(im) for im in images]
    configs = [sc.FitOptions(num_gaussians=gaussians, iterations=iterations).native_config(a.shape, 0)
               for a in arrays]
    start = time.perf_counter()
    raw = module.fit_batch(arrays, configs, [None] * len(arrays), streams)
    seconds = time.perf_counter() - start
    return seconds, [stats for _, stats in raw]


def section_batch(settings: Settings) -> dict[str, Any]:
    size, iterations, threads = settings.batch_size, settings.batch_iterations, settings.threads
    try:
        images = load_square(settings.batch_count, size)
    except FileNotFoundError as exc:
        print(f"skipped: {exc}")
        return {"skipped": str(exc)}
    print(f"{len(images)} Flickr8k photos, centre square resized to {size}x{size}, {iterations} iterations, "
          f"default fit options; CPU: fit_batch on {threads_used(threads)} threads (one image per thread)")
    print(f"published reference (GaussianVision, not re-run): {PAPER['images'] / 1e6:.1f}M images at "
          f"{PAPER['gaussians']} Gaussians in ~{PAPER['gpu_hours']} GPU-hours = {PAPER['ms_per_image']:.1f} ms "
          f"per image amortised ({PAPER['images_per_s']:.0f} images/s), batch {PAPER['batch']}\n")
    result: dict[str, Any] = {"settings": {"count": len(images), "size": size, "iterations": iterations,
                                           "threads": threads_used(threads)},
                              "paper": dict(PAPER), "cpu": [], "cuda": None, "torch": None}
    rows = []
    for gaussians in settings.batch_gaussians:
        start = time.perf_counter()
        fits = sc.fit_batch(images, gaussians, iterations, threads=threads, return_stats=True)
        seconds = time.perf_counter() - start
        entry = {"gaussians": gaussians, "images_per_s": len(images) / seconds,
                 "ms_per_image": seconds / len(images) * 1e3,
                 "mean_psnr": float(np.mean([f.stats.final_psnr for f in fits]))}
        entry["vs_paper"] = entry["ms_per_image"] / PAPER["ms_per_image"]
        result["cpu"].append(entry)
        rows.append([f"splatcodec CPU ({threads_used(threads)} threads)", gaussians, len(images),
                     entry["images_per_s"], entry["ms_per_image"], f"{entry['mean_psnr']:.2f}",
                     f"{entry['vs_paper']:.3g}x"])

    module, why = machine.cuda_module()
    if module is None:
        result["cuda"] = {"skipped": why}
        print(f"GPU: skipped ({why})")
    else:
        try:
            gpu_images = load_square(settings.cuda_count, size)
        except FileNotFoundError as exc:
            gpu_images = images
            print(f"GPU: {exc}; using the CPU batch of {len(images)}")
        cuda_fit(module, gpu_images[:1], settings.batch_gaussians[0], 5, 1)  # context creation, allocations
        result["cuda"] = {"count": len(gpu_images), "streams": settings.cuda_streams, "name": machine.gpu_name(), "runs": []}
        for gaussians in settings.batch_gaussians:
            seconds, stats = cuda_fit(module, gpu_images, gaussians, iterations, settings.cuda_streams)
            entry = {"gaussians": gaussians, "images_per_s": len(gpu_images) / seconds,
                     "ms_per_image": seconds / len(gpu_images) * 1e3,
                     "mean_psnr": float(np.mean([s["final_psnr"] for s in stats]))}
            entry["vs_paper"] = entry["ms_per_image"] / PAPER["ms_per_image"]
            result["cuda"]["runs"].append(entry)
            rows.append([f"splatcodec GPU ({result['cuda']['name']}, streams "
                         f"{settings.cuda_streams or 'default'})", gaussians, len(gpu_images), entry["images_per_s"],
                         entry["ms_per_image"], f"{entry['mean_psnr']:.2f}", f"{entry['vs_paper']:.3g}x"])

    if settings.skip_torch:
        result["torch"] = {"skipped": "--skip-torch"}
    else:
        try:
            result["torch"] = []
            for gaussians in settings.batch_gaussians:
                make = fit_speed.torch_fitter_factory(images[0], gaussians, threads_used(threads))
                per_iteration = fit_speed.torch_seconds_per_iteration(make, settings.torch_iterations)
                ms = per_iteration * iterations * 1e3
                entry = {"gaussians": gaussians, "ms_per_iteration": per_iteration * 1e3, "ms_per_image": ms,
                         "images_per_s": 1e3 / ms, "vs_paper": ms / PAPER["ms_per_image"]}
                result["torch"].append(entry)
                rows.append([f"PyTorch baseline, CPU ({threads_used(threads)} threads; extrapolated from "
                             f"{settings.torch_iterations} timed iterations)", gaussians, 1, entry["images_per_s"],
                             entry["ms_per_image"], "", f"{entry['vs_paper']:.3g}x"])
        except ImportError as exc:
            result["torch"] = {"skipped": f"torch not installed ({exc})"}
    rows.append([f"GaussianVision paper (published, GPU, batch {PAPER['batch']})", PAPER["gaussians"],
                 int(PAPER["images"]), PAPER["images_per_s"], PAPER["ms_per_image"], "", "1x"])
    print(md_table(["fitter", "Gaussians", "images", "images/s", "ms per image", "mean PSNR dB",
                    "ms per image / paper's"], rows))
    return result

