"""Section ``decode``: splatcodec decode (parse, entropy, render) against Pillow at about the same file size."""
from __future__ import annotations

import datetime
import hashlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

import splatcodec as sc

from .. import rd
from ..common import KODAK_DIR as KODAK
from ..common import machine_description
from ..rd.codecs import package_digest
from .settings import Settings
from .util import fmt, load_image, md_table, median_ms, threads_used


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
            sc.info(data, coded_bits=True)
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

