"""Small images: splatcodec against WebP / JPEG / AVIF on CIFAR-10, and 1.1 against 1.0 on Flickr8k crops.

    python -m benchmarks.small_images                 # 200 CIFAR-10 test images, 12 Flickr8k crops
    python -m benchmarks.small_images --quick         # smoke test (seconds)

Part 1, CIFAR-10 *test* images (32x32, 20 per class): every codec runs each setting on every image;
a setting's point is (mean bytes, mean PSNR over the images), and PSNR at a target mean size is
interpolated between settings linearly in log(bytes). Pillow: WebP (method 6), JPEG (4:2:0) and AVIF
(speed 0) where this Pillow has it; splatcodec: Gaussian counts at effort 4, one thread per encode,
with the defaults (one group, rate-distortion optimised quantization on the tiny-image depths) and,
as the ablation, ``plain()``: plain rounding on the depths used above 64x64 (still one group).

Part 2, 224x224 centre crops of Flickr8k files 250..499 (never used for priors): each crop at
400/900/1600 Gaussians with this encoder and with today's 1.0 path (``--legacy`` switches: 1.0 grid,
1.0 file, the effort-4 schedule of splatcodec 435fde6); bytes saved at equal PSNR (the 1.0 curve of
the same crop interpolated in log bytes), PSNR, and encode CPU seconds (process time, one thread).

Part 3, dataset throughput: ``encode_batch`` of the first CIFAR-10 *test* images (default 1,000,
100 per class) at 32 Gaussians on ``--threads`` threads (default 2), extrapolated to 10,000 images
against the 5-minute target, next to Pillow's WebP (method 6, quality 10: about the same bytes)
encoding the same images in the same run on one thread.
"""
from __future__ import annotations

import argparse
import io
import os
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
from PIL import Image, features

from splatcodec.codec import api, encoder, fit_strategy, formats
from splatcodec.metrics import psnr

from .small_data import FLICKR_TEST, center_crop, cifar_paths, flickr_paths, load_rgb

SPLAT_COUNTS = (8, 12, 16, 24, 32, 40, 48, 64, 80, 96)
TARGET_BYTES = (150, 250, 400)
FLICKR_COUNTS = (400, 900, 1600)


def _pillow(fmt: str, **opts) -> Callable[[np.ndarray, int], tuple[int, np.ndarray]]:
    def run(image: np.ndarray, quality: int) -> tuple[int, np.ndarray]:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, fmt, quality=quality, **opts)
        data = buf.getvalue()
        with Image.open(io.BytesIO(data)) as im:
            return len(data), np.asarray(im.convert("RGB"))
    return run


def _splat(effort: int, rdoq: bool = True) -> Callable[[np.ndarray, int], tuple[int, np.ndarray]]:
    def run(image: np.ndarray, count: int) -> tuple[int, np.ndarray]:
        if rdoq:
            data = api.encode(image, num_gaussians=count, effort=effort, threads=1)
        else:
            with plain():
                data = api.encode(image, num_gaussians=count, effort=effort, threads=1)
        return len(data), api.decode(data)
    return run


@contextmanager
def plain() -> Iterator[None]:
    """The encoder without rate-distortion optimised quantization: plain rounding, the 1.1 depths of
    images above 64x64, the Adam colour refit and the full fit schedule (the encoder of 295a1ae with
    ``levels=1``)."""
    saved = (fit_strategy.RDOQ_SCALE, formats.TINY_MAX_PIXELS, fit_strategy.LS_COLORS, fit_strategy.CG_COLORS,
             fit_strategy.TINY_SCHEDULE)
    fit_strategy.RDOQ_SCALE = 0.0
    formats.TINY_MAX_PIXELS = 0
    fit_strategy.LS_COLORS = fit_strategy.CG_COLORS = False
    fit_strategy.TINY_SCHEDULE = False
    try:
        yield
    finally:
        (fit_strategy.RDOQ_SCALE, formats.TINY_MAX_PIXELS, fit_strategy.LS_COLORS, fit_strategy.CG_COLORS,
         fit_strategy.TINY_SCHEDULE) = saved


def codecs(quick: bool) -> dict[str, tuple[Callable, tuple[int, ...]]]:
    q = (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90) if not quick else (10, 50)
    counts = SPLAT_COUNTS if not quick else (16, 32)
    out = {"splatcodec": (_splat(4), counts), "splatcodec plain rounding": (_splat(4, rdoq=False), counts),
           "WebP m6": (_pillow("WEBP", method=6), q),
           "JPEG": (_pillow("JPEG"), tuple(max(v, 1) for v in q))}
    if features.check("avif"):
        out["AVIF"] = (_pillow("AVIF", speed=0), q)
    return out


def curve(points: list[tuple[float, float]], target: float) -> float:
    """PSNR at ``target`` mean bytes from (mean bytes, mean PSNR) points (NaN outside the range)."""
    pts = sorted(points)
    xs = np.log([p[0] for p in pts])
    ys = np.array([p[1] for p in pts])
    t = np.log(target)
    if not xs[0] <= t <= xs[-1]:
        return float("nan")
    return float(np.interp(t, xs, ys))


def cifar(count_per_class: int, quick: bool) -> None:
    paths = cifar_paths("test", count_per_class)
    images = [load_rgb(p) for p in paths]
    print(f"## CIFAR-10 test, {len(images)} images (32x32): mean bytes / mean PSNR per setting")
    table: dict[str, list[tuple[float, float]]] = {}
    for name, (run, values) in codecs(quick).items():
        start = time.process_time()
        for v in values:
            sizes, quality = [], []
            for img in images:
                size, out = run(img, v)
                sizes.append(size)
                quality.append(psnr(out, img))
            table.setdefault(name, []).append((float(np.mean(sizes)), float(np.mean(quality))))
        cpu = (time.process_time() - start) / (len(values) * len(images))
        pts = ", ".join(f"{v}: {b:.0f} B {p:.2f} dB" for v, (b, p) in zip(values, table[name]))
        print(f"{name:19s} {cpu * 1e3:7.1f} ms CPU/encode+decode | {pts}")
    print()
    print("| codec | " + " | ".join(f"PSNR at {t} B" for t in TARGET_BYTES) + " |")
    print("|---|" + "---:|" * len(TARGET_BYTES))
    for name, pts in table.items():
        print(f"| {name} | " + " | ".join(f"{curve(pts, t):.2f}" for t in TARGET_BYTES) + " |")
    print()


@contextmanager
def legacy() -> Iterator[None]:
    """Today's (435fde6) encoder: 1.0 grid and file, fixed effort-4 schedule with the Adam colour refit,
    4 progressive groups."""
    saved = (formats.COMPACT_MAX_PIXELS, fit_strategy.SCALED_SCHEDULE, fit_strategy.CG_COLORS,
             encoder.SMALL_IMAGE_PIXELS)
    formats.COMPACT_MAX_PIXELS = 0
    fit_strategy.SCALED_SCHEDULE = fit_strategy.CG_COLORS = False
    encoder.SMALL_IMAGE_PIXELS = 0
    try:
        yield
    finally:
        (formats.COMPACT_MAX_PIXELS, fit_strategy.SCALED_SCHEDULE, fit_strategy.CG_COLORS,
         encoder.SMALL_IMAGE_PIXELS) = saved


def _encode(image: np.ndarray, count: int, effort: int) -> tuple[int, float, float]:
    start = time.process_time()
    data, stats = api.encode(image, num_gaussians=count, effort=effort, threads=1, return_stats=True)
    return len(data), stats.psnr, time.process_time() - start


def old_bytes_at(points, quality: float) -> float:
    """Bytes of the old curve at PSNR ``quality``: log(bytes) linear in PSNR between the two nearest
    points (extrapolated past the ends, by at most a fraction of a dB in practice)."""
    pts = sorted((p, np.log(b)) for b, p, _ in points)
    ps, lb = np.array([q for q, _ in pts]), np.array([v for _, v in pts])
    k = int(np.clip(np.searchsorted(ps, quality), 1, len(ps) - 1))
    slope = (lb[k] - lb[k - 1]) / (ps[k] - ps[k - 1])
    return float(np.exp(lb[k - 1] + slope * (quality - ps[k - 1])))


def flickr(count: int, counts: tuple[int, ...], effort: int) -> None:
    paths = flickr_paths(FLICKR_TEST)[:count]
    print(f"## Flickr8k crops 224x224, {len(paths)} images (files {FLICKR_TEST.start}..): this encoder vs today's")
    rows: dict[int, list[tuple]] = {n: [] for n in counts}
    for path in paths:
        image = center_crop(path)
        new = {n: _encode(image, n, effort) for n in counts}
        with legacy():
            old = {n: _encode(image, n, effort) for n in counts}
        for n in counts:
            b, p, t = new[n]
            ob, op, ot = old[n]
            rows[n].append((b, p, t, ob, op, ot, b / old_bytes_at(old.values(), p) - 1))
    print("| Gaussians | 1.0 bytes | 1.0 PSNR | 1.0 CPU s | new bytes | new PSNR | new CPU s | bytes at equal PSNR |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, r in rows.items():
        a = np.array(r, dtype=float)
        eq = np.nanmean(a[:, 6]) * 100 if np.isfinite(a[:, 6]).any() else float("nan")
        print(f"| {n} | {a[:, 3].mean():.0f} | {a[:, 4].mean():.2f} | {a[:, 5].mean():.2f} | {a[:, 0].mean():.0f} "
              f"| {a[:, 1].mean():.2f} | {a[:, 2].mean():.2f} | {eq:+.1f} % |")
    print()


def throughput(count: int, threads: int) -> None:
    per_class = max(1, count // 10)
    images = [load_rgb(p) for p in cifar_paths("test", per_class)]
    print(f"## Dataset throughput: {len(images)} CIFAR-10 test images at 32 Gaussians, encode_batch on "
          f"{threads} threads")
    api.encode(images[0], num_gaussians=32, threads=1)  # warm-up: imports, priors tables
    wall, cpu = time.perf_counter(), time.process_time()
    files = api.encode_batch(images, num_gaussians=32, threads=threads)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    webp = _pillow("WEBP", method=6)
    start = time.perf_counter()
    webp_bytes = [webp(image, 10)[0] for image in images]
    webp_wall = time.perf_counter() - start
    minutes = wall / len(images) * 10_000 / 60
    print(f"splatcodec: {wall:.1f} s wall, {len(images) / wall:.1f} images/s, {cpu / len(images) * 1e3:.1f} ms CPU "
          f"per image, mean {np.mean([len(f) for f in files]):.0f} B -> 10,000 images in {minutes:.2f} min "
          f"(target 5 min: {'met' if minutes <= 5 else 'NOT met'})")
    print(f"WebP m6 q10, one thread: {webp_wall / len(images) * 1e3:.2f} ms per image, mean "
          f"{np.mean(webp_bytes):.0f} B; splatcodec per image and core is "
          f"{wall * threads / webp_wall:.0f}x slower\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 CIFAR images, 1 small crop")
    parser.add_argument("--per-class", type=int, default=20, help="CIFAR-10 test images per class")
    parser.add_argument("--flickr", type=int, default=12, help="Flickr8k crops")
    parser.add_argument("--effort", type=int, default=4)
    parser.add_argument("--throughput-images", type=int, default=1000, help="CIFAR-10 images of part 3")
    parser.add_argument("--threads", type=int, default=2, help="encode_batch threads of part 3")
    parser.add_argument("--skip", choices=["cifar", "flickr", "throughput"], action="append", default=[])
    args = parser.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# splatcodec small-image benchmark; load average {load:.1f}; Pillow {Image.__version__}\n")
    if "cifar" not in args.skip:
        cifar(1 if args.quick else args.per_class, args.quick)
    if "flickr" not in args.skip:
        if args.quick:
            flickr(1, (100, 200), 1)
        else:
            flickr(args.flickr, FLICKR_COUNTS, args.effort)
    if "throughput" not in args.skip:
        throughput(20 if args.quick else args.throughput_images, args.threads)


if __name__ == "__main__":
    main()
