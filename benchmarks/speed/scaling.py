"""Section ``scaling``: fitting and rendering cost against the Gaussian count and the image size."""
from __future__ import annotations

from typing import Any

import numpy as np

import splatcodec as sc

from .. import fit_speed
from . import machine
from .batch import cuda_fit
from .settings import Settings
from .util import (
    fmt,
    growth,
    jpeg_decode_ms,
    load_image,
    md_table,
    median_ms,
    resize_crop,
    threads_used,
)


def scaling_row(image: np.ndarray, gaussians: int, settings: Settings, cuda: Any) -> dict[str, Any]:
    threads = threads_used(settings.threads)
    h, w = image.shape[:2]
    per_iteration, init, splats = fit_speed.splatcodec_fit_timing(image, gaussians, settings.scaling_iterations,
                                                                  threads, settings.scaling_repeats)
    row: dict[str, Any] = {
        "width": w, "height": h, "megapixels": w * h / 1e6, "gaussians": gaussians,
        "init_ms": init * 1e3, "ms_per_iteration": per_iteration * 1e3,
        "render_ms": median_ms(lambda: sc.render(splats, threads=threads), max(3, settings.repeats // 2)),
        "jpeg_decode_ms": jpeg_decode_ms(image, max(5, settings.repeats))}
    if not settings.skip_torch:
        try:
            make = fit_speed.torch_fitter_factory(image, gaussians, threads)
            row["torch_ms_per_iteration"] = fit_speed.torch_seconds_per_iteration(make, settings.torch_iterations) * 1e3
            # NaN when the iterations were not resolved (see fit_speed.splatcodec_fit_timing)
            row["torch_ratio"] = row["torch_ms_per_iteration"] / row["ms_per_iteration"]
        except ImportError:
            pass
    if cuda is not None:
        k = settings.scaling_iterations
        zero = cuda_fit(cuda, [image], gaussians, 0, 1)[1][0]["seconds"]
        full = cuda_fit(cuda, [image], gaussians, k, 1)[1][0]["seconds"]
        row["gpu_ms_per_iteration"] = max(full - zero, 0.0) / k * 1e3
    return row


def section_scaling(settings: Settings) -> dict[str, Any]:
    try:
        label, base = load_image(settings.scaling_image, settings.scaling_crop)
    except SystemExit as exc:
        print(f"skipped: {exc}")
        return {"skipped": str(exc)}
    # Warm-up: the first fit of a process pays for thread-pool start and page faults (it showed as a 65 ms
    # initialisation at 1k Gaussians against 10 ms at 4k).
    fit_speed.splatcodec_fit_timing(base[:64, :64], 64, 2, threads_used(settings.threads), 1)
    cuda, _ = machine.cuda_module()
    if cuda is not None:
        cuda_fit(cuda, [base[:32, :32]], 16, 5, 1)  # context creation
    k = settings.scaling_iterations
    print(f"ms per iteration = (fit of {k} iterations - fit of 0 iterations) / {k}, the fit's own clock"
          + (f", median of {settings.scaling_repeats}" if settings.scaling_repeats > 1 else "")
          + "; init = the 0-iteration fit (content-adaptive initialisation); render = uint8 render of the fitted "
          "Gaussians at the fitted size, median.")
    print("baselines: PyTorch (benchmarks/torch_baseline.py, same start Gaussians) ms per iteration; "
          "Pillow decode of a q90 JPEG of the same picture. growth = log-log slope against the previous row "
          "(cost ~ size^growth).\n")
    has_torch, has_gpu = not settings.skip_torch, cuda is not None

    def table(rows: list[dict[str, Any]], per_key: str, per_label: str) -> str:
        headers = ["size", "Gaussians", "init ms", "ms/iteration", per_label, "growth"]
        headers += ["PyTorch ms/iteration", "PyTorch / splatcodec"] if has_torch else []
        headers += ["GPU ms/iteration"] if has_gpu else []
        headers += ["render ms", "render growth", "JPEG decode ms"]
        lines = []
        for r in rows:
            cells = [f"{r['width']}x{r['height']}", r["gaussians"], r["init_ms"], r["ms_per_iteration"], r[per_key],
                     fmt(r["growth"], 2)]
            if has_torch:
                cells += [r.get("torch_ms_per_iteration"), fmt(r.get("torch_ratio")) + "x"]
            if has_gpu:
                cells += [r.get("gpu_ms_per_iteration")]
            cells += [r["render_ms"], fmt(r["render_growth"], 2), r["jpeg_decode_ms"]]
            lines.append(cells)
        return md_table(headers, lines)

    by_gaussians = []
    prev = None
    for n in settings.scaling_gaussians:
        row = scaling_row(base, n, settings, cuda)
        row["ms_per_iteration_per_1k_gaussians"] = row["ms_per_iteration"] / (n / 1000)
        row["growth"] = growth(prev and (prev["gaussians"], prev["ms_per_iteration"]), (n, row["ms_per_iteration"]))
        row["render_growth"] = growth(prev and (prev["gaussians"], prev["render_ms"]), (n, row["render_ms"]))
        by_gaussians.append(row)
        prev = row
    print(f"### Cost against the number of Gaussians ({label}, {base.shape[1]}x{base.shape[0]})\n")
    print(table(by_gaussians, "ms_per_iteration_per_1k_gaussians", "ms/iteration per 1k Gaussians"))

    by_size = []
    prev = None
    for w, h in settings.scaling_sizes:
        image = resize_crop(base, w, h)
        n = max(1, round(w * h / settings.pixels_per_gaussian))
        row = scaling_row(image, n, settings, cuda)
        row["upscaled"] = w > base.shape[1] or h > base.shape[0]
        row["ms_per_iteration_per_megapixel"] = row["ms_per_iteration"] / row["megapixels"]
        row["render_ms_per_megapixel"] = row["render_ms"] / row["megapixels"]
        row["growth"] = growth(prev and (prev["megapixels"], prev["ms_per_iteration"]),
                               (row["megapixels"], row["ms_per_iteration"]))
        row["render_growth"] = growth(prev and (prev["megapixels"], prev["render_ms"]),
                                      (row["megapixels"], row["render_ms"]))
        by_size.append(row)
        prev = row
    print(f"\n### Cost against the image size, one Gaussian per {settings.pixels_per_gaussian:g} pixels "
          f"(centre crops of {label}; larger sizes upscaled, bicubic)\n")
    print(table(by_size, "ms_per_iteration_per_megapixel", "ms/iteration per megapixel"))
    return {"image": label, "iterations": k, "repeats": settings.scaling_repeats,
            "threads": threads_used(settings.threads), "pixels_per_gaussian": settings.pixels_per_gaussian,
            "by_gaussians": by_gaussians, "by_size": by_size}

