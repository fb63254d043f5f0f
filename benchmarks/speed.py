#!/usr/bin/env python3
"""Speed of splatcodec: decoding against Pillow's codecs, encoding, batched fitting, scaling, and the
fitting core against a PyTorch baseline, each measured next to its baseline in the same run.

Sections (all by default, in this order; name some to run only those):

* ``codecs``: encode and decode time per Kodak image at each rate point, and splatcodec / reference time
  ratios at equal bpp, from ``benchmarks.rd``'s results (its ``json/<codec>.json``: median ms per
  image). Each reference codec's time is interpolated (log-time over log-bpp) at splatcodec's bpp.
  Needs an benchmarks.rd run; without one the section says so and is skipped.
* ``decode``: direct decode timing, no benchmarks.rd needed. A few Kodak images are encoded once with
  splatcodec (``--quality``, ``--effort``; the ``.gsplat`` bytes are cached under ``--out``, so reruns
  are fast) and ``splatcodec.decode`` is timed split into parse + entropy decode (+ dequantise) and
  render, against Pillow decoding JPEG 4:2:0 / WebP / AVIF files of about the same size (each codec's
  quality found by bisection on the file size; benchmarks.rd's encoder settings). Medians of ``--repeats``.
* ``batch``: batched fitting throughput at the GaussianVision setting (224x224 Flickr8k photos, 400
  and 1600 Gaussians, 2000 iterations): ``fit_batch`` on the CPU, ``splatcodec._core_cuda.fit_batch``
  when that module imports and sees a GPU, the PyTorch baseline's per-iteration time at the same
  setting, and the published figure (12.8M images at 400 Gaussians in ~25.6 GPU-hours).
* ``scaling``: ms per fitting iteration, initialisation and render time against the number of
  Gaussians (one Kodak image) and against the image size at a fixed Gaussian density, with the
  log-log growth between rows; PyTorch per-iteration and Pillow JPEG decode time as baselines.
* ``fit``: ``benchmarks.fit_speed`` (ms per iteration and time to 30/33 dB against the PyTorch
  baseline ``benchmarks/torch_baseline.py``, render time, peak memory).

    python -m benchmarks.speed [SECTION ...] [--quick] [--json OUT] [--threads N] [--skip-torch]

``--quick`` shrinks every section to tiny images and iteration counts (seconds in all; the smoke test
runs it): its numbers check the harness, they say nothing about speed. Tables print as Markdown.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib
import io
import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

import splatcodec as sc
from splatcodec import _native

from . import fit_speed, rd
from .common import FLICKR_DIR as FLICKR
from .common import KODAK_DIR as KODAK
from .common import RESULTS_DIR, cpu_name, load_image as load_named_image, machine_description, median_seconds
from .rd.codecs import package_digest

DEFAULT_RD_RESULTS = RESULTS_DIR / "kodak"
DEFAULT_OUT = RESULTS_DIR / "speed"
SPLAT = "splatcodec"
SECTIONS = ("codecs", "decode", "batch", "scaling", "fit")
ISA_BY_LANES = {4: "SSE2 (portable build)", 8: "AVX2", 16: "AVX-512"}

#: GaussianVision (published, not re-run): 12.8M images at 400 Gaussians in ~25.6 GPU-hours, batch 4096.
PAPER = {"images": 12.8e6, "gpu_hours": 25.6, "gaussians": 400, "batch": 4096}
PAPER["ms_per_image"] = PAPER["gpu_hours"] * 3600e3 / PAPER["images"]
PAPER["images_per_s"] = 1e3 / PAPER["ms_per_image"]


# ------------------------------------------------------------------------------------------ settings


@dataclass
class Settings:
    """Every size and count the sections use; ``quick()`` is the smoke-test scale."""

    threads: int = 0
    skip_torch: bool = False
    # decode
    decode_images: tuple[str, ...] = ("kodim01", "kodim15", "kodim23")
    decode_crop: int = 0  # >0: centre crop of this size (quick mode)
    quality: float = 60
    effort: int = 4
    repeats: int = 7
    decode_codecs: tuple[str, ...] = ("jpeg-420", "webp", "avif")
    reencode: bool = False
    # batch
    batch_count: int = 8
    batch_size: int = 224
    batch_gaussians: tuple[int, ...] = (400, 1600)
    batch_iterations: int = 2000
    cuda_count: int = 256
    cuda_streams: int = 0  # 0: the module's default
    torch_iterations: int = 3
    # scaling
    scaling_image: str = "kodim23"
    scaling_crop: int = 0
    scaling_gaussians: tuple[int, ...] = (1000, 4000, 16000, 64000)
    scaling_sizes: tuple[tuple[int, int], ...] = ((128, 128), (256, 256), (512, 512), (768, 512), (1536, 1024))
    pixels_per_gaussian: float = 40.0
    scaling_iterations: int = 100
    scaling_repeats: int = 3
    # fit (fit_speed.measure keyword arguments; its defaults when empty)
    fit: dict[str, Any] = field(default_factory=dict)
    fit_crop: int = 0

    @classmethod
    def quick(cls, threads: int = 0, skip_torch: bool = False) -> "Settings":
        return cls(threads=threads, skip_torch=skip_torch, decode_images=("kodim23",), decode_crop=64,
                   effort=1, repeats=3, batch_count=2, batch_size=48, batch_gaussians=(40, 160),
                   batch_iterations=10, cuda_count=4, torch_iterations=2, scaling_crop=64,
                   scaling_gaussians=(50, 200), scaling_sizes=((32, 32), (64, 64)), scaling_iterations=20,
                   scaling_repeats=3,
                   fit=dict(gaussians=100, iterations=20, torch_iterations=2, torch_cap=2.0, targets=(20.0, 25.0),
                            render_counts=(100, 400), render_iterations=5, memory_gaussians=400,
                            memory_iterations=5), fit_crop=64)


# ------------------------------------------------------------------------------------------ helpers


def median_ms(function: Callable[[], Any], repeats: int) -> float:
    return median_seconds(function, repeats) * 1e3


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: numbers to ``digits`` significant digits (no exponent below 1e6), None as n/a."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude >= 6:
        return f"{value:.{digits - 1}e}"
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:.{decimals}f}"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """Markdown table; ``align`` is one character per column, 'l' or 'r' (default: first left)."""
    align = align or "l" + "r" * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def growth(prev: tuple[float, float] | None, cur: tuple[float, float]) -> float | None:
    """Log-log slope between two (size, time) points: time grows as size^slope."""
    if prev is None or prev[0] <= 0 or cur[0] <= 0 or prev[1] <= 0 or cur[1] <= 0 or prev[0] == cur[0]:
        return None
    return math.log(cur[1] / prev[1]) / math.log(cur[0] / prev[0])


def json_safe(value: Any) -> Any:
    """Non-finite floats become None (JSON has no inf/nan); tuples lists; numpy scalars Python ones."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def threads_used(threads: int) -> int:
    return threads or os.cpu_count() or 1


def load_image(name: str, crop: int = 0) -> tuple[str, np.ndarray]:
    """(label, RGB uint8 array) of a Kodak name or a path; ``crop`` > 0 takes a centre square."""
    label = Path(name).stem + (f"[{crop}x{crop} crop]" if crop else "")
    return label, load_named_image(name, crop)


def resize_crop(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """A centre crop of ``image`` at width x height; upscaled first (bicubic) where it is too small."""
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    if scale > 1:
        w, h = math.ceil(w * scale), math.ceil(h * scale)
        image = np.asarray(Image.fromarray(image).resize((w, h), Image.BICUBIC))
    top, left = (h - height) // 2, (w - width) // 2
    return np.ascontiguousarray(image[top:top + height, left:left + width])


def jpeg_decode_ms(image: np.ndarray, repeats: int, quality: int = 90) -> float:
    """Pillow's decode of a JPEG of ``image`` (q90, 4:2:0): the render-time baseline of a picture."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    data = buffer.getvalue()

    def decode() -> None:
        with Image.open(io.BytesIO(data)) as im:
            im.load()

    return median_ms(decode, repeats)


def cuda_module() -> tuple[Any, str]:
    """(splatcodec._core_cuda, "") when it imports and has a device, else (None, why not)."""
    try:
        _native.core()  # sets the OpenMP wait policy before any native library loads
        module = importlib.import_module("splatcodec._core_cuda")
    except ImportError as exc:
        return None, f"splatcodec._core_cuda not built ({exc}); see docs/cuda.md"
    try:
        count = module.device_count()
    except Exception as exc:  # noqa: BLE001 - a broken driver is a reason to skip, not to fail
        return None, f"device_count() failed: {exc}"
    if count <= 0:
        return None, "splatcodec._core_cuda imports but sees no CUDA device"
    return module, ""


def gpu_name() -> str:
    try:
        import subprocess

        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "CUDA device"
    except (OSError, IndexError, Exception):  # noqa: BLE001
        return "CUDA device"


def machine_info(threads: int) -> dict[str, Any]:
    """The machine and the native modules loaded, for every section's header and the JSON."""
    info: dict[str, Any] = {"description": machine_description(), "cpu": cpu_name(),
                            "logical_cpus": os.cpu_count(), "threads": threads_used(threads)}
    try:
        core = _native.core()
        lanes = int(getattr(core, "SIMD_LANES", 0))
        info["native_module"] = Path(core.__file__).name
        info["simd_lanes"] = lanes
        isa = getattr(_native, "isa", None)
        info["isa"] = str(isa()) if callable(isa) else ISA_BY_LANES.get(lanes, f"{lanes}-float SIMD")
    except Exception as exc:  # noqa: BLE001
        info["native_module"] = f"unavailable ({exc})"
    module, why = cuda_module()
    info["cuda"] = {"available": module is not None}
    if module is not None:
        info["cuda"].update(devices=int(module.device_count()), name=gpu_name())
    else:
        info["cuda"]["reason"] = why
    try:
        import PIL

        info["pillow"] = PIL.__version__
    except ImportError:  # pragma: no cover
        pass
    return info


def machine_line(info: dict[str, Any]) -> str:
    cuda = info["cuda"]
    gpu = f"GPU: {cuda['name']} x{cuda['devices']}" if cuda["available"] else "no GPU path"
    return (f"machine: {info['description']}; {info['threads']} threads used; native core "
            f"{info.get('native_module')} (ISA {info.get('isa', '?')}, {info.get('simd_lanes', '?')}-float SIMD "
            f"kernels); {gpu}; Pillow {info.get('pillow', '?')}")


# ------------------------------------------------------------------------------------------ codecs


def load_curves(results: Path) -> dict[str, dict[str, Any]]:
    """CompressAI-style JSON documents written by benchmarks.rd, by codec file stem (empty if there are none)."""
    folder = results / "json"
    if not folder.is_dir():
        return {}
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def interp_at(bpp: float, curve_bpp: Sequence[float], values: Sequence[float]) -> float | None:
    """``values`` interpolated at ``bpp`` in log-log space; None outside the curve's bpp range."""
    x = np.log(np.asarray(curve_bpp, dtype=np.float64))
    y = np.log(np.asarray(values, dtype=np.float64))
    order = np.argsort(x)
    x, y = x[order], y[order]
    lx = np.log(bpp)
    if len(x) == 0 or lx < x[0] or lx > x[-1]:
        return None
    return float(np.exp(np.interp(lx, x, y)))


def timing_table(curves: dict[str, dict[str, Any]]) -> str:
    """Median encode/decode ms of every codec at each of its rate points, as Markdown."""
    rows = []
    for doc in curves.values():
        r = doc["results"]
        for b, e, d in zip(r["bpp"], r["encoding_time"], r["decoding_time"]):
            rows.append([doc["name"], f"{b:.3f}", f"{e:.1f}", f"{d:.1f}"])
    return md_table(["codec", "bpp", "encode ms", "decode ms"], rows)


def ratios(curves: dict[str, dict[str, Any]], test: str = SPLAT) -> list[dict[str, Any]]:
    """splatcodec time / reference time at each splatcodec rate point (None outside a reference's sweep)."""
    t = curves[test]["results"]
    out = []
    for b, e, d in zip(t["bpp"], t["encoding_time"], t["decoding_time"]):
        for key, doc in curves.items():
            if key == test:
                continue
            r = doc["results"]
            re_ = interp_at(b, r["bpp"], r["encoding_time"])
            rd_ = interp_at(b, r["bpp"], r["decoding_time"])
            out.append({"bpp": b, "codec": key, "label": doc["name"],
                        "encode_ratio": None if re_ is None else e / re_,
                        "decode_ratio": None if rd_ is None else d / rd_})
    return out


def ratio_table(curves: dict[str, dict[str, Any]], test: str = SPLAT) -> str:
    """splatcodec time / reference time at splatcodec's bpp, for encode and decode, as Markdown."""
    refs = [k for k in curves if k != test]
    by_bpp: dict[float, dict[str, dict[str, Any]]] = {}
    for row in ratios(curves, test):
        by_bpp.setdefault(row["bpp"], {})[row["codec"]] = row
    rows = []
    for b, cells in by_bpp.items():
        line = [f"{b:.3f}"]
        for k in refs:
            c = cells[k]
            line.append("n/a (bpp outside its sweep)" if c["encode_ratio"] is None or c["decode_ratio"] is None
                        else f"{c['encode_ratio']:.3g}x / {c['decode_ratio']:.3g}x")
        rows.append(line)
    return md_table(["bpp"] + [f"{curves[k]['name']} enc / dec" for k in refs], rows, "r" * (len(refs) + 1))


def section_codecs(settings: Settings, rd_results: Path) -> dict[str, Any]:
    curves = load_curves(rd_results)
    if not curves:
        why = f"no benchmarks.rd results in {rd_results / 'json'}: run benchmarks.rd first (see docs/benchmarks.md)"
        print(f"skipped: {why}")
        return {"skipped": why}
    print(f"baseline: the reference codecs of the same benchmarks.rd run; timings from {rd_results / 'json'} "
          "(median ms per image, each the median of benchmarks.rd's repeats)\n")
    print(timing_table(curves))
    print()
    out: dict[str, Any] = {
        "source": str(rd_results / "json"),
        "codecs": {k: {"label": d["name"], "description": d.get("description", ""), "bpp": d["results"]["bpp"],
                       "encode_ms": d["results"]["encoding_time"], "decode_ms": d["results"]["decoding_time"]}
                   for k, d in curves.items()}}
    if SPLAT not in curves:
        print("splatcodec: no results in this folder (it was not benchmarked when benchmarks.rd ran); no ratios computed")
        out["ratios"] = None
        return out
    print("splatcodec time / reference time at the same bpp (>1 = splatcodec slower):\n")
    print(ratio_table(curves))
    out["ratios"] = ratios(curves)
    return out


# ------------------------------------------------------------------------------------------ decode


def _digest(image: np.ndarray) -> str:
    return hashlib.sha256(repr(image.shape).encode() + image.tobytes()).hexdigest()


def cached_encode(image: np.ndarray, label: str, settings: Settings, cache: Path) -> tuple[bytes, dict[str, Any]]:
    """splatcodec's encoding of ``image``, from ``cache`` when it holds one for the same pixels, quality,
    effort and threads-independent settings; otherwise encoded now and stored (bytes + a JSON sidecar)."""
    stem = f"{Path(label).stem.split('[')[0]}-{_digest(image)[:16]}-q{fmt(float(settings.quality))}-e{settings.effort}"
    path, meta_path = cache / f"{stem}.gsplat", cache / f"{stem}.json"
    source = package_digest(sc)
    if path.is_file() and meta_path.is_file() and not settings.reencode:
        data = path.read_bytes()
        meta = json.loads(meta_path.read_text())
        try:
            sc.info(data)
        except sc.FormatError as exc:  # written by an older, incompatible format version
            print(f"  cached {path.name} no longer parses ({exc}); re-encoding")
        else:
            meta["cached"] = True
            if meta.get("source_digest") != source:
                meta["note"] = "encoded by a different splatcodec source; --reencode to refresh"
            return data, meta
    print(f"  encoding {label} with splatcodec (quality {settings.quality}, effort {settings.effort}) ...",
          flush=True)
    start = time.perf_counter()
    data, stats = sc.encode(image, quality=settings.quality, effort=settings.effort, threads=settings.threads,
                            return_stats=True)
    seconds = time.perf_counter() - start
    meta = {"quality": settings.quality, "effort": settings.effort, "encode_seconds": seconds,
            "threads": threads_used(settings.threads), "gaussians": stats.num_gaussians,
            "splatcodec": sc.__version__, "source_digest": source,
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine_description()}
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    meta_path.write_text(json.dumps(meta, indent=2))
    meta["cached"] = False
    return data, meta


def quality_bounds(codec: rd.Codec) -> tuple[int, int]:
    return (1, 95) if getattr(codec, "format", "") == "JPEG" else (0, 100)


def match_size(codec: rd.Codec, image: np.ndarray, target_bytes: int) -> tuple[int, bytes]:
    """The codec's integer quality whose file is closest in size to ``target_bytes`` (bisection: file
    size grows with quality), and that file."""
    lo, hi = quality_bounds(codec)
    files: dict[int, bytes] = {}

    def encoded(q: int) -> bytes:
        if q not in files:
            files[q] = codec.encode(image, q)
        return files[q]

    if len(encoded(hi)) < target_bytes:
        return hi, files[hi]
    if len(encoded(lo)) >= target_bytes:
        return lo, files[lo]
    while hi - lo > 1:  # invariant: size(lo) < target <= size(hi)
        mid = (lo + hi) // 2
        if len(encoded(mid)) < target_bytes:
            lo = mid
        else:
            hi = mid
    best = min((lo, hi), key=lambda q: abs(len(files[q]) - target_bytes))
    return best, files[best]


def section_decode(settings: Settings, out: Path) -> dict[str, Any]:
    from splatcodec.codec.api import decode_splats

    codecs = {c.name: c for c in rd.reference_codecs()}
    refs = []
    for name in settings.decode_codecs:
        codec = codecs.get(name)
        if codec is None:
            raise SystemExit(f"unknown codec {name!r}; benchmarks.rd knows {', '.join(codecs)}")
        ok, why = codec.available()
        if ok:
            refs.append(codec)
        else:
            print(f"{codec.label}: unavailable ({why}); left out")
    repeats = settings.repeats
    threads = settings.threads
    print(f"splatcodec quality {settings.quality}, effort {settings.effort}; .gsplat cache {out / 'decode'}; "
          f"median of {repeats} decodes; render on {threads_used(threads)} threads (and on 1)")
    print("baseline: Pillow decode (open + decode + convert to an RGB array, as benchmarks.rd times it) of "
          + ", ".join(f"{c.label} ({', '.join(f'{k}={v}' for k, v in c.settings().items())})" for c in refs)
          + " at the quality whose file size is closest to splatcodec's\n")
    images = []
    for name in settings.decode_images:
        try:
            label, image = load_image(name, settings.decode_crop)
        except SystemExit as exc:
            print(f"  {name}: {exc}; skipped")
            continue
        h, w = image.shape[:2]
        data, meta = cached_encode(image, label, settings, out / "decode")
        splats = decode_splats(data)
        parse = median_ms(lambda: decode_splats(data), repeats)
        render = median_ms(lambda: sc.render(splats, threads=threads), repeats)
        render1 = median_ms(lambda: sc.render(splats, threads=1), repeats)
        total = median_ms(lambda: sc.decode(data), repeats)
        decoded = sc.decode(data)
        row: dict[str, Any] = {
            "image": label, "width": w, "height": h, "gaussians": splats.num_gaussians, "bytes": len(data),
            "bpp": 8 * len(data) / (w * h), "psnr": sc.psnr(decoded, image),
            "encode_seconds": meta["encode_seconds"], "encode_cached": meta["cached"],
            "parse_ms": parse, "render_ms": render, "render_1thread_ms": render1, "decode_ms": total,
            "references": {}}
        if meta.get("note"):
            row["note"] = meta["note"]
        for codec in refs:
            quality, ref_data = match_size(codec, image, len(data))
            ref_ms = median_ms(lambda: codec.decode(ref_data), max(repeats, 5))
            row["references"][codec.name] = {
                "label": codec.label, "quality": quality, "bytes": len(ref_data),
                "bpp": 8 * len(ref_data) / (w * h), "psnr": sc.psnr(codec.decode(ref_data), image),
                "decode_ms": ref_ms, "ratio": total / ref_ms, "ratio_1thread": (parse + render1) / ref_ms}
        images.append(row)
    if not images:
        why = f"no images found (looked in {KODAK})"
        print(f"skipped: {why}")
        return {"skipped": why}

    print(md_table(["image", "Gaussians", "bpp", "PSNR dB", "encode s", "parse+entropy ms", "render ms",
                    "render ms (1 thread)", "decode ms"],
                   [[r["image"] + (" *" if r.get("note") else ""), r["gaussians"], f"{r['bpp']:.3f}",
                     f"{r['psnr']:.2f}", fmt(r["encode_seconds"]) + (" (cached)" if r["encode_cached"] else ""),
                     r["parse_ms"], r["render_ms"], r["render_1thread_ms"], r["decode_ms"]] for r in images]))
    if any(r.get("note") for r in images):
        print("\n\\* cached file encoded by a different splatcodec source (decode speed still applies; "
              "--reencode to refresh)")
    print("\nPillow decode at about the same file size, and splatcodec decode / Pillow decode "
          "(>1 = splatcodec slower):\n")
    rows = []
    for r in images:
        for ref in r["references"].values():
            rows.append([r["image"], ref["label"], ref["quality"], f"{ref['bpp']:.3f}", f"{ref['psnr']:.2f}",
                         ref["decode_ms"], r["decode_ms"], f"{ref['ratio']:.3g}x", f"{ref['ratio_1thread']:.3g}x"])
    print(md_table(["image", "codec", "quality", "bpp", "PSNR dB", "decode ms", "splatcodec ms", "ratio",
                    "ratio, splatcodec on 1 thread"], rows))
    summary = {}
    for codec in refs:
        refs_of = [r["references"][codec.name] for r in images if codec.name in r["references"]]
        summary[codec.name] = {"ratio": statistics.median(x["ratio"] for x in refs_of),
                               "ratio_1thread": statistics.median(x["ratio_1thread"] for x in refs_of)}
    print("\nmedian ratio over images (all threads / 1 thread): "
          + ", ".join(f"{codecs[k].label} {v['ratio']:.3g}x / {v['ratio_1thread']:.3g}x" for k, v in summary.items()))
    return {"settings": {"quality": settings.quality, "effort": settings.effort, "repeats": repeats,
                         "threads": threads_used(threads), "codecs": [c.name for c in refs]},
            "images": images, "median_ratio": summary}


# ------------------------------------------------------------------------------------------ batch


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

    module, why = cuda_module()
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
        result["cuda"] = {"count": len(gpu_images), "streams": settings.cuda_streams, "name": gpu_name(), "runs": []}
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


# ------------------------------------------------------------------------------------------ scaling


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
    cuda, _ = cuda_module()
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


# ------------------------------------------------------------------------------------------ fit


def section_fit(settings: Settings, out: Path) -> dict[str, Any]:
    kwargs = dict(settings.fit)
    image_name = kwargs.pop("image", "kodim23")
    if settings.fit_crop:  # a crop, as a file: the memory measurement reloads it in a fresh process
        _, image = load_image(image_name, settings.fit_crop)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "fit_quick_crop.png"
        Image.fromarray(image).save(path)
        image_name = str(path)
    if settings.skip_torch:
        kwargs["skip_torch"] = True
    else:
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            print(f"PyTorch baseline: skipped (torch not installed: {exc})")
            kwargs["skip_torch"] = True
    print("baseline: benchmarks/torch_baseline.py (plain PyTorch, same model, same start Gaussians, same "
          "learning rates and schedule) and Pillow's JPEG decode of the same image; measured by "
          "benchmarks.fit_speed in this run:\n")
    figures = fit_speed.measure(image_name, threads=settings.threads, **kwargs)
    print()
    rows = [[k, v if not isinstance(v, float) else fmt(v, 4)] for k, v in figures.items()]
    print(md_table(["figure", "value"], rows, "lr"))
    return figures


# ------------------------------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="sections: " + ", ".join(SECTIONS))
    p.add_argument("sections", nargs="*", metavar="SECTION", help=f"any of {', '.join(SECTIONS)} (default: all)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and iteration counts (smoke test)")
    p.add_argument("--json", type=Path, help="write every figure to this JSON file")
    p.add_argument("--threads", type=int, default=0, help="threads for splatcodec and PyTorch (0: all cores)")
    p.add_argument("--skip-torch", action="store_true", help="leave out the PyTorch baseline")
    p.add_argument("--rd-results", type=Path, default=DEFAULT_RD_RESULTS,
                   help="benchmarks.rd output folder for the codecs section (default benchmarks/results/kodak)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="cache of encoded files (default benchmarks/results/speed)")
    g = p.add_argument_group("decode")
    g.add_argument("--images", help="comma-separated Kodak names or paths (default kodim01,kodim15,kodim23)")
    g.add_argument("--quality", type=float, help="splatcodec quality (default 60)")
    g.add_argument("--effort", type=int, help="splatcodec effort (default 4)")
    g.add_argument("--repeats", type=int, help="timed repeats, median (default 7)")
    g.add_argument("--codecs", help="benchmarks.rd codec names to compare with (default jpeg-420,webp,avif)")
    g.add_argument("--reencode", action="store_true", help="ignore the cached .gsplat files")
    g = p.add_argument_group("batch")
    g.add_argument("--batch-count", type=int, help="images in the CPU batch (default 8)")
    g.add_argument("--batch-iterations", type=int, help="iterations (default 2000)")
    g.add_argument("--cuda-count", type=int, help="images in the GPU batch (default 256)")
    g.add_argument("--cuda-streams", type=int, help="images fitted concurrently on the GPU (default: the module's)")
    g = p.add_argument_group("scaling")
    g.add_argument("--scaling-iterations", type=int, help="iterations timed per row (default 100)")
    return p


def settings_from(args: argparse.Namespace) -> Settings:
    s = Settings.quick(args.threads, args.skip_torch) if args.quick else Settings(args.threads, args.skip_torch)
    for attr, value in (("quality", args.quality), ("effort", args.effort), ("repeats", args.repeats),
                        ("batch_count", args.batch_count), ("batch_iterations", args.batch_iterations),
                        ("cuda_count", args.cuda_count), ("cuda_streams", args.cuda_streams),
                        ("scaling_iterations", args.scaling_iterations)):
        if value is not None:
            setattr(s, attr, value)
    if args.images:
        s.decode_images = tuple(args.images.split(","))
    if args.codecs:
        s.decode_codecs = tuple(args.codecs.split(","))
    s.reencode = args.reencode
    return s


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    chosen = [s for s in SECTIONS if s in args.sections] if args.sections else list(SECTIONS)
    settings = settings_from(args)
    machine = machine_info(settings.threads)
    report: dict[str, Any] = {"machine": machine, "quick": args.quick,
                              "date": datetime.datetime.now().isoformat(timespec="seconds"),
                              "settings": json_safe(asdict(settings)), "sections": {}, "section_seconds": {}}
    titles = {"codecs": "Encode and decode time at equal bpp (from benchmarks.rd's results)",
              "decode": "Decode time against Pillow at about the same file size",
              "batch": "Batched fitting throughput (GaussianVision setting)",
              "scaling": "Scaling of fitting and rendering cost",
              "fit": "Fitting core against the PyTorch baseline (benchmarks.fit_speed)"}
    if args.quick:
        print("(--quick: smoke-test sizes; these numbers say nothing about speed)\n")
    for name in chosen:
        print(f"## {titles[name]}\n\n{machine_line(machine)}")
        start = time.perf_counter()
        if name == "codecs":
            result = section_codecs(settings, args.rd_results)
        elif name == "decode":
            result = section_decode(settings, args.out)
        elif name == "batch":
            result = section_batch(settings)
        elif name == "scaling":
            result = section_scaling(settings)
        else:
            result = section_fit(settings, args.out)
        report["sections"][name] = json_safe(result)
        report["section_seconds"][name] = time.perf_counter() - start
        print(f"\n({name}: {report['section_seconds'][name]:.1f} s)\n", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(json_safe(report), indent=2, allow_nan=False))
        print(f"figures written to {args.json}")
    return report


if __name__ == "__main__":
    main()
