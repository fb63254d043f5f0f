#!/usr/bin/env python3
"""Rate-distortion benchmark: splatcodec against Pillow's JPEG, WebP, AVIF and (optionally) JPEG XL.

For every codec and every point of its quality sweep, each image of a folder is encoded and decoded; we
record the real encoded size (bpp = 8 * bytes / pixels), PSNR and MS-SSIM on 8-bit RGB, and encode/decode
wall time. Per-image results are cached on disk, so an interrupted run resumes where it stopped.

Outputs (under ``--out``, default ``benchmarks/results/<dataset>``):

* ``json/<codec>.json``: CompressAI-style curves (``name``, ``description``, ``results`` with parallel
  lists ``bpp``, ``psnr-rgb``, ``ms-ssim-rgb``, ``encoding_time``, ``decoding_time`` and the swept
  parameter). Following CompressAI, bpp/PSNR/MS-SSIM are means over images; times are the median over
  images, in milliseconds (each image's time is itself the median of ``--repeats`` runs).
* ``per_image.csv`` and ``summary.csv``.
* ``rd.png``: PSNR and MS-SSIM (dB) vs bpp with the published GaussianImage / GaussianImage++ anchors.
* A printed BD-rate / BD-PSNR table (``bjontegaard``, pchip) of splatcodec against every other codec,
  plus a sanity table of every codec against JPEG 4:2:0, and a per-image table: at each of
  splatcodec's rate points, how many images beat JPEG 4:2:0 at the same bpp, by how much on average and
  at worst.

splatcodec is benchmarked only when ``splatcodec.encode(image, quality=...) -> bytes`` and
``splatcodec.decode(data) -> ndarray`` exist; otherwise the run says so and covers the reference codecs.

Usage: ``python benchmarks/rd.py [DATASET] [--jobs N] [--codecs a,b] ...`` (see ``--help``). ``main(argv)``
is the entry point for a CLI wrapper.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import hashlib
import importlib
import importlib.metadata
import io
import json
import os
import platform
import re
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # so that `python benchmarks/rd.py` finds the in-tree package
    sys.path.insert(0, str(REPO_ROOT))



def _load_metrics() -> tuple[Callable[..., float], Callable[..., float], str]:
    """splatcodec's psnr/ms_ssim; if the package itself fails to import (mid-development, or a broken
    native build), load its pure-numpy metrics module alone so the reference codecs still run."""
    try:
        from splatcodec.metrics import ms_ssim, psnr

        return ms_ssim, psnr, ""
    except Exception as exc:
        import types

        pkg = types.ModuleType("_splatcodec_metrics_only")
        pkg.__path__ = [str(REPO_ROOT / "splatcodec")]  # a bare package: its __init__ is not run
        sys.modules[pkg.__name__] = pkg
        mod = importlib.import_module(f"{pkg.__name__}.metrics")
        return mod.ms_ssim, mod.psnr, f"import splatcodec failed ({type(exc).__name__}: {exc}); metrics loaded alone"


ms_ssim, psnr, METRICS_NOTE = _load_metrics()

DEFAULT_DATASET = REPO_ROOT / ".." / "shared" / "data" / "kodak"
DEFAULT_RESULTS = REPO_ROOT / "benchmarks" / "results"
IMAGE_SUFFIXES = {".png", ".ppm", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".webp"}

#: Published results, drawn on the plot as points; they were NOT re-run here (numbers as quoted in issue 5).
PUBLISHED_ANCHORS: dict[str, list[tuple[float, float]]] = {
    "GaussianImage (published)": [(0.15, 25.0), (0.43, 27.4), (1.0, 29.7)],
    "GaussianImage++ (published)": [(1.08, 31.1)],
}

SPLAT = "splatcodec"
BD_ANCHOR_SANITY = "jpeg-420"


# --------------------------------------------------------------------------------------------- codecs


class Codec:
    """A codec under test: a name, a swept parameter with default values, encode and decode.

    Instances are pickled into worker processes, so they hold only plain data and import lazily.
    """

    # Subclasses are dataclasses that define these fields (no class-level defaults here: a dataclass
    # would take an inherited class attribute as a field default).
    name: str
    label: str
    param: str
    default_values: tuple[float, ...]
    #: Expensive encoders (fitting) are timed from a single encode instead of ``--repeats``.
    expensive_encode: bool = False

    def available(self) -> tuple[bool, str]:
        """Whether this codec can run here, and why not."""
        return True, ""

    def version(self) -> str:
        """Library versions; part of the cache key and of the JSON description."""
        return ""

    def settings(self) -> dict[str, Any]:
        """Fixed encoder options; part of the cache key and of the JSON description."""
        return {}

    def encode(self, image: np.ndarray, value: float) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> np.ndarray:
        raise NotImplementedError

    def description(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.settings().items())
        return f"{self.label}; {self.version()}; swept over {self.param}" + (f"; {opts}" if opts else "")


@dataclass
class PillowCodec(Codec):
    """A format Pillow can write and read, with fixed options and a swept ``quality``."""

    name: str
    label: str
    format: str
    options: dict[str, Any]
    default_values: tuple[float, ...]
    version_fn: Callable[[], str] | None = field(default=None, repr=False)
    module: str | None = None  # plugin to import first (JPEG XL)
    param: str = "quality"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["version_fn"] = None  # lambdas do not pickle; workers never need the version
        return state

    def _load_plugin(self) -> None:
        if self.module:
            importlib.import_module(self.module)

    def available(self) -> tuple[bool, str]:
        try:
            self._load_plugin()
        except ImportError as exc:
            return False, f"{self.module} not installed ({exc})"
        Image.init()
        if self.format not in Image.SAVE or self.format not in Image.OPEN:
            return False, f"this Pillow build cannot write and read {self.format}"
        return True, ""

    def version(self) -> str:
        import PIL

        extra = self.version_fn() if self.version_fn else ""
        return f"Pillow {PIL.__version__}" + (f", {extra}" if extra else "")

    def settings(self) -> dict[str, Any]:
        return dict(self.options)

    def encode(self, image: np.ndarray, value: float) -> bytes:
        self._load_plugin()
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format=self.format, quality=int(value), **self.options)
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        self._load_plugin()
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))


@dataclass
class SplatCodec(Codec):
    """splatcodec through its public API: ``encode(image, **{param: value}, **kwargs)`` and ``decode``."""

    param: str = "quality"
    kwargs: dict[str, Any] = field(default_factory=dict)
    # On Kodak (codec of 2026-11-25) quality 18/40/60/80 gave about 0.07/0.20/0.54/1.36 bpp, nearly
    # independent of the image and geometric in quality, so these seven points span ~0.1-1.5 bpp.
    default_values: tuple[float, ...] = (26, 35, 44, 53, 62, 72, 82)
    name: str = SPLAT
    label: str = "splatcodec"
    expensive_encode: bool = True
    #: Pin the source digest used in the cache key (to summarise a finished run after the tree changed).
    source_digest: str | None = None

    def available(self) -> tuple[bool, str]:
        try:
            mod = importlib.import_module("splatcodec")
        except Exception as exc:  # a broken native extension must not stop the reference codecs
            return False, f"import splatcodec failed: {type(exc).__name__}: {exc}"
        missing = [f for f in ("encode", "decode") if not hasattr(mod, f)]
        if missing:
            return False, "splatcodec has no " + " / ".join(f"{f}()" for f in missing) + " yet"
        return True, ""

    def version(self) -> str:
        mod = importlib.import_module("splatcodec")
        return f"splatcodec {getattr(mod, '__version__', '?')} (source {self.source_digest or _package_digest(mod)})"

    def settings(self) -> dict[str, Any]:
        return dict(self.kwargs)

    def encode(self, image: np.ndarray, value: float) -> bytes:
        import splatcodec

        value = int(value) if self.param == "num_gaussians" else float(value)
        data = splatcodec.encode(image, **{self.param: value}, **self.kwargs)
        return bytes(data)

    def decode(self, data: bytes) -> np.ndarray:
        import splatcodec

        return np.asarray(splatcodec.decode(data))


def _package_digest(mod: Any) -> str:
    """Short hash of a package's source and native files, so a changed codec invalidates the cache."""
    h = hashlib.sha1()
    for base in getattr(mod, "__path__", []):
        for p in sorted(Path(base).rglob("*")):
            if p.suffix in {".py", ".so", ".pyd"} and "__pycache__" not in p.parts:
                h.update(str(p.relative_to(base)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()[:12]


def _pil_feature(name: str) -> str:
    from PIL import features

    try:
        v = features.version(name)
    except ValueError:
        v = None
    return f"{name} {v}" if v else ""


def _avif_versions() -> str:
    try:
        from PIL import AvifImagePlugin

        return f"libavif {AvifImagePlugin._avif.libavif_version} ({AvifImagePlugin._avif.codec_versions()})"
    except Exception:
        return _pil_feature("avif")


def _dist_version(dist: str) -> str:
    try:
        return f"{dist} {importlib.metadata.version(dist)}"
    except importlib.metadata.PackageNotFoundError:
        return ""


def reference_codecs() -> list[Codec]:
    """The reference codecs and their default sweeps.

    Sweeps were chosen so that the mean over Kodak spans about 0.1-1.5 bpp (JPEG cannot go much below
    0.15 bpp, JPEG XL below ~0.15). Every encoder is pinned to one thread so timings compare per core.
    Settings aim at each codec's good practice, not its fastest mode: JPEG with optimised Huffman
    tables, WebP method 6, AVIF 4:4:4 (slightly better than 4:2:0 in RGB PSNR at equal bpp) at libaom
    speed 6 (Pillow's default; slower speeds cost several times the time), JPEG XL at effort 7 (default).
    """
    jpeg_q = (2, 5, 10, 15, 20, 30, 40, 55, 70, 80)
    return [
        PillowCodec("jpeg-420", "JPEG 4:2:0", "JPEG", {"subsampling": "4:2:0", "optimize": True},
                    jpeg_q, lambda: _pil_feature("libjpeg_turbo") or _pil_feature("jpg")),
        PillowCodec("jpeg-444", "JPEG 4:4:4", "JPEG", {"subsampling": "4:4:4", "optimize": True},
                    jpeg_q, lambda: _pil_feature("libjpeg_turbo") or _pil_feature("jpg")),
        PillowCodec("webp", "WebP", "WEBP", {"method": 6}, (0, 5, 10, 20, 30, 45, 60, 75, 85, 90),
                    lambda: _pil_feature("webp")),
        PillowCodec("avif", "AVIF 4:4:4", "AVIF", {"subsampling": "4:4:4", "speed": 6, "max_threads": 1},
                    (10, 20, 30, 40, 50, 55, 60, 65, 70, 75), _avif_versions),
        PillowCodec("jxl", "JPEG XL", "JXL", {"effort": 7, "num_threads": 1},
                    (1, 10, 20, 30, 40, 50, 60, 70, 80, 85), lambda: _dist_version("pillow-jxl-plugin"),
                    module="pillow_jxl"),
    ]


# ------------------------------------------------------------------------------------- measurement


def list_images(folder: Path, limit: int | None = None) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    if not folder.is_dir():
        raise SystemExit(f"dataset folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise SystemExit(f"no images in {folder}")
    return files[:limit] if limit else files


def load_rgb(path: Path) -> np.ndarray:
    """An image as HxWx3 uint8 RGB (alpha dropped, palette/grey expanded)."""
    with Image.open(path) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB")))


def _median_ms(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter_ns()
        out = fn()
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return statistics.median(times), out


@dataclass(frozen=True)
class Task:
    """One (codec, rate point, image) measurement and where its result is cached."""

    codec: Codec
    value: float
    image: str
    image_sha: str
    cache_file: str
    repeats: int


def run_task(task: Task) -> dict[str, Any]:
    """Encode and decode one image at one rate point, measure, and write the cache file."""
    img = load_rgb(Path(task.image))
    h, w = img.shape[:2]
    enc_repeats = 1 if task.codec.expensive_encode else task.repeats
    enc_ms, data = _median_ms(lambda: task.codec.encode(img, task.value), enc_repeats)
    if not isinstance(data, (bytes, bytearray)) or len(data) == 0:
        raise RuntimeError(f"{task.codec.name} encode returned {type(data).__name__} of length {len(data)}")
    dec_ms, rec = _median_ms(lambda: task.codec.decode(data), task.repeats)
    rec = np.asarray(rec)
    if rec.shape != img.shape or rec.dtype != np.uint8:
        raise RuntimeError(f"{task.codec.name} decoded {rec.shape} {rec.dtype}, expected {img.shape} uint8")
    row = {
        "codec": task.codec.name,
        "param": task.codec.param,
        "value": task.value,
        "image": Path(task.image).name,
        "image_sha256": task.image_sha,
        "width": w,
        "height": h,
        "bytes": len(data),
        "bpp": 8.0 * len(data) / (w * h),
        "psnr": psnr(img, rec),
        "ms_ssim": ms_ssim(img, rec) if min(h, w) > 160 else float("nan"),
        "enc_ms": enc_ms,
        "dec_ms": dec_ms,
    }
    _atomic_write_json(Path(task.cache_file), row)
    return row


def _atomic_write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, allow_nan=True))
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _value_tag(value: float) -> str:
    return f"{value:g}".replace("/", "_")


def codec_cache_dir(out: Path, codec: Codec) -> Path:
    """Cache folder keyed by everything that changes results: codec, settings and library versions."""
    key = json.dumps([codec.name, codec.param, codec.settings(), codec.version()], sort_keys=True, default=str)
    return out / "cache" / codec.name / hashlib.sha1(key.encode()).hexdigest()[:12]


def _read_cache(path: Path, image_sha: str) -> dict[str, Any] | None:
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return row if row.get("image_sha256") == image_sha else None


class _Progress:
    """A progress bar on stderr (click's when available), or nothing when quiet."""

    def __init__(self, total: int, label: str, quiet: bool) -> None:
        self._bar = None
        if quiet or total == 0:
            return
        try:
            import click

            self._bar = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True,
                                          show_eta=True, item_show_func=lambda s: s)
            self._bar.__enter__()
        except ImportError:  # click is a dependency of the CLI, but keep the harness usable without it
            self._bar = None

    def update(self, item: str) -> None:
        if self._bar is not None:
            self._bar.update(1, item)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def measure(tasks: Sequence[Task], jobs: int, quiet: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """Run tasks (in ``jobs`` processes when > 1) and return their rows plus error messages."""
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    bar = _Progress(len(tasks), "encode/decode", quiet)

    def tag(t: Task) -> str:
        return f"{t.codec.name} {t.codec.param}={t.value:g} {Path(t.image).name}"

    try:
        if jobs <= 1:
            for t in tasks:
                try:
                    rows.append(run_task(t))
                except Exception as exc:  # one failing point must not lose the rest of a long run
                    errors.append(f"{tag(t)}: {type(exc).__name__}: {exc}")
                bar.update(tag(t))
        else:
            with cf.ProcessPoolExecutor(max_workers=jobs) as pool:
                futures = {pool.submit(run_task, t): t for t in tasks}
                for fut in cf.as_completed(futures):
                    t = futures[fut]
                    try:
                        rows.append(fut.result())
                    except Exception as exc:
                        errors.append(f"{tag(t)}: {type(exc).__name__}: {exc}")
                    bar.update(tag(t))
    finally:
        bar.close()
    return rows, errors


# ----------------------------------------------------------------------------------------- summary


@dataclass
class Curve:
    """One codec's RD curve: per rate point, means over images (times: medians)."""

    codec: Codec
    n_images: int
    values: list[float] = field(default_factory=list)
    bpp: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    ms_ssim: list[float] = field(default_factory=list)
    enc_ms: list[float] = field(default_factory=list)
    dec_ms: list[float] = field(default_factory=list)
    incomplete: list[float] = field(default_factory=list)

    def to_compressai(self, dataset: str) -> dict[str, Any]:
        desc = (f"{self.codec.description()}. Dataset {dataset} ({self.n_images} images). bpp, psnr-rgb "
                f"and ms-ssim-rgb are means over images; encoding_time and decoding_time are medians over "
                f"images in milliseconds. Reference encoders are pinned to one thread; splatcodec runs with its encode() "
                f"defaults plus the options listed.")
        return {
            "name": self.codec.label,
            "description": desc,
            "results": {
                self.codec.param: self.values,
                "bpp": self.bpp,
                "psnr-rgb": self.psnr,
                "ms-ssim-rgb": self.ms_ssim,
                "encoding_time": self.enc_ms,
                "decoding_time": self.dec_ms,
            },
        }


def summarize(codecs: Sequence[Codec], rows: Iterable[dict[str, Any]], n_images: int) -> dict[str, Curve]:
    """Group per-image rows into curves; a rate point missing any image is left out (and listed)."""
    by_point: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in rows:
        by_point.setdefault((r["codec"], float(r["value"])), []).append(r)
    curves: dict[str, Curve] = {}
    for codec in codecs:
        curve = Curve(codec, n_images)
        points = []
        for (name, value), rs in by_point.items():
            if name != codec.name:
                continue
            if len(rs) < n_images:
                curve.incomplete.append(value)
                continue
            points.append((
                value,
                float(np.mean([r["bpp"] for r in rs])),
                float(np.mean([r["psnr"] for r in rs])),
                float(np.mean([r["ms_ssim"] for r in rs])),
                float(np.median([r["enc_ms"] for r in rs])),
                float(np.median([r["dec_ms"] for r in rs])),
            ))
        for p in sorted(points, key=lambda p: p[1]):
            for lst, v in zip((curve.values, curve.bpp, curve.psnr, curve.ms_ssim, curve.enc_ms, curve.dec_ms), p):
                lst.append(v)
        curves[codec.name] = curve
    return curves


def msssim_db(v: float | np.ndarray) -> np.ndarray:
    """MS-SSIM on the usual dB scale, -10 log10(1 - MS-SSIM)."""
    return -10.0 * np.log10(np.maximum(1.0 - np.asarray(v, dtype=np.float64), 1e-12))


def _envelope(rate: Sequence[float], dist: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Points sorted by rate, keeping only those that raise quality (pchip needs a monotone curve)."""
    order = np.argsort(rate)
    r_out, d_out = [], []
    for i in order:
        if np.isfinite(dist[i]) and (not d_out or dist[i] > d_out[-1]):
            r_out.append(rate[i])
            d_out.append(dist[i])
    return np.asarray(r_out), np.asarray(d_out)


def clip_curve(c: Curve, lo: float, hi: float) -> Curve:
    """The same curve restricted to rate points with ``lo <= bpp <= hi``."""
    keep = [i for i, b in enumerate(c.bpp) if lo <= b <= hi]
    pick = lambda xs: [xs[i] for i in keep]  # noqa: E731
    return Curve(c.codec, c.n_images, pick(c.values), pick(c.bpp), pick(c.psnr), pick(c.ms_ssim),
                 pick(c.enc_ms), pick(c.dec_ms), list(c.incomplete))


def bd_metrics(anchor: Curve, test: Curve) -> dict[str, Any]:
    """BD-rate (%) and BD-PSNR (dB) of ``test`` against ``anchor`` (pchip), plus BD-rate on MS-SSIM dB.

    Negative BD-rate = ``test`` needs fewer bits at equal quality. Computed over the overlap of the two
    curves' quality ranges, which is reported along with any warning from ``bjontegaard``.
    """
    import bjontegaard as bd

    out: dict[str, Any] = {"anchor": anchor.codec.name, "test": test.codec.name}
    ra, da = _envelope(anchor.bpp, anchor.psnr)
    rt, dt = _envelope(test.bpp, test.psnr)
    out["psnr_overlap"] = (max(da.min(), dt.min()), min(da.max(), dt.max())) if len(da) and len(dt) else None
    notes = []
    for key, fn, (r1, d1, r2, d2) in (
        ("bd_rate", bd.bd_rate, (ra, da, rt, dt)),
        ("bd_psnr", bd.bd_psnr, (ra, da, rt, dt)),
        ("bd_rate_msssim", bd.bd_rate, (*_envelope(anchor.bpp, msssim_db(anchor.ms_ssim)),
                                        *_envelope(test.bpp, msssim_db(test.ms_ssim)))),
    ):
        if len(r1) < 2 or len(r2) < 2:
            out[key] = float("nan")
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                out[key] = float(fn(r1, d1, r2, d2, method="pchip", require_matching_points=False))
            except Exception as exc:  # e.g. curves that do not overlap at all
                out[key] = float("nan")
                notes.append(f"{key}: {exc}")
        for w in caught:
            m = re.search(r"overlap: '([\d.]+)'", str(w.message))
            notes.append(f"{key}: low overlap {float(m.group(1)):.0f}%" if m else f"{key}: {w.message}")
    out["notes"] = notes
    return out


def per_image_gains(rows: Iterable[dict[str, Any]], test: str, anchor: str) -> list[dict[str, Any]]:
    """Per rate point of ``test``: its PSNR minus ``anchor``'s on the same image at the same bpp.

    The anchor's per-image curve is interpolated in log bpp (over its monotone envelope); images whose
    anchor sweep does not reach the test's bpp are left out, so ``n`` can be below the image count. A
    BD-rate averages curves; this says how many images are actually better or worse at each rate.
    """
    by_image: dict[str, dict[str, list[tuple[float, float, float]]]] = {}  # (value, bpp, psnr)
    for r in rows:
        if r["codec"] in (test, anchor):
            by_image.setdefault(r["image"], {}).setdefault(r["codec"], []).append(
                (float(r["value"]), float(r["bpp"]), float(r["psnr"])))
    gains: dict[float, list[float]] = {}
    bpps: dict[float, list[float]] = {}
    for curves in by_image.values():
        if anchor not in curves or test not in curves:
            continue
        rate, dist = _envelope([b for _, b, _ in curves[anchor]], [p for _, _, p in curves[anchor]])
        if len(rate) < 2:
            continue
        for value, bpp, psnr in curves[test]:
            bpps.setdefault(value, []).append(bpp)
            if rate[0] <= bpp <= rate[-1]:
                ref = float(np.interp(np.log(bpp), np.log(rate), dist))
                gains.setdefault(value, []).append(psnr - ref)
    out = []
    for value in sorted(bpps):
        g = np.asarray(gains.get(value, []))
        out.append({"value": value, "bpp": float(np.mean(bpps[value])), "n": int(g.size),
                    "mean": float(g.mean()) if g.size else float("nan"),
                    "worst": float(g.min()) if g.size else float("nan"),
                    "best": float(g.max()) if g.size else float("nan"),
                    "wins": int((g > 0).sum())})
    return out


def format_per_image_table(title: str, gains: list[dict[str, Any]], param: str) -> str:
    """A Markdown table of :func:`per_image_gains`."""
    lines = [title, "", f"| {param} | mean bpp | images compared | mean dB | worst dB | best dB | images better |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for g in gains:
        lines.append(f"| {g['value']:g} | {g['bpp']:.3f} | {g['n']} | {g['mean']:+.2f} | {g['worst']:+.2f} | "
                     f"{g['best']:+.2f} | {g['wins']}/{g['n']} |")
    return "\n".join(lines)


def format_bd_table(title: str, rows: list[dict[str, Any]], curves: dict[str, Curve], key: str = "anchor") -> str:
    """A Markdown table of BD results, one row per ``row[key]`` codec (the anchor, or the test codec)."""
    lines = [title, "",
             f"| {'anchor' if key == 'anchor' else 'codec under test'} | BD-rate PSNR (%) | BD-PSNR (dB) | BD-rate MS-SSIM (%) | PSNR overlap (dB) | notes |",
             "|---|---:|---:|---:|---|---|"]
    for r in rows:
        ov = r["psnr_overlap"]
        ov_s = f"{ov[0]:.2f}-{ov[1]:.2f}" if ov and ov[0] < ov[1] else "none"
        note = "; ".join(r["notes"]).replace("|", "/")[:120]
        lines.append(f"| {curves[r[key]].codec.label} | {r['bd_rate']:+.1f} | {r['bd_psnr']:+.2f} | "
                     f"{r['bd_rate_msssim']:+.1f} | {ov_s} | {note} |")
    return "\n".join(lines)


def format_summary_table(curves: dict[str, Curve]) -> str:
    """Per codec and rate point: the means and medians, as Markdown."""
    lines = ["| codec | param | bpp | PSNR-RGB (dB) | MS-SSIM | MS-SSIM (dB) | enc ms | dec ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in curves.values():
        for i in range(len(c.bpp)):
            lines.append(f"| {c.codec.label} | {c.codec.param}={c.values[i]:g} | {c.bpp[i]:.3f} | "
                         f"{c.psnr[i]:.2f} | {c.ms_ssim[i]:.4f} | {float(msssim_db(c.ms_ssim[i])):.2f} | "
                         f"{c.enc_ms[i]:.1f} | {c.dec_ms[i]:.1f} |")
    return "\n".join(lines)


def plot_rd(curves: dict[str, Curve], path: Path, title: str, max_bpp: float = 1.6) -> None:
    """PSNR and MS-SSIM (dB) against bpp for every codec, with the published anchors as labelled points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    for c in curves.values():
        if not c.bpp:
            continue
        style = dict(lw=2.4, color="black", marker="o", zorder=5) if c.codec.name == SPLAT else dict(lw=1.3, marker=".")
        ax1.plot(c.bpp, c.psnr, label=c.codec.label, **style)
        ax2.plot(c.bpp, msssim_db(c.ms_ssim), label=c.codec.label, **style)
    for (name, pts), marker in zip(PUBLISHED_ANCHORS.items(), ("s", "D")):
        xs, ys = zip(*pts)
        ax1.plot(xs, ys, ls=":", marker=marker, ms=7, mfc="none", mew=1.5, color="tab:gray",
                 label=f"{name}, not re-run")
        for x, y in pts:
            ax1.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=(4, -11), fontsize=7, color="tab:gray")
    if SPLAT not in curves or not curves[SPLAT].bpp:
        ax1.text(0.98, 0.03, "splatcodec: not available in this run", transform=ax1.transAxes,
                 ha="right", va="bottom", fontsize=8, color="tab:red")
    ax1.set(xlabel="bits per pixel", ylabel="PSNR-RGB (dB)", xlim=(0, max_bpp), title="PSNR")
    ax2.set(xlabel="bits per pixel", ylabel="MS-SSIM (dB) = -10 log10(1 - MS-SSIM)", xlim=(0, max_bpp),
            title="MS-SSIM")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.autoscale(axis="y")
    ax1.legend(fontsize=7, loc="lower right" if SPLAT in curves and curves[SPLAT].bpp else "upper left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


CSV_FIELDS = ["codec", "param", "value", "image", "width", "height", "bytes", "bpp", "psnr", "ms_ssim",
              "enc_ms", "dec_ms"]


def write_outputs(out: Path, dataset: str, curves: dict[str, Curve], rows: list[dict[str, Any]]) -> None:
    """JSON per codec, per-image and summary CSVs. These describe this run only: JSON left by an earlier
    run (other codecs or images) is removed, since the cache can rebuild it cheaply."""
    (out / "json").mkdir(parents=True, exist_ok=True)
    for stale in (out / "json").glob("*.json"):
        stale.unlink()
    for name, c in curves.items():
        if c.bpp:
            (out / "json" / f"{name}.json").write_text(json.dumps(c.to_compressai(dataset), indent=2))
    with open(out / "per_image.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in sorted(rows, key=lambda r: (r["codec"], float(r["value"]), r["image"])):
            w.writerow(r)
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["codec", "label", "param", "value", "bpp", "psnr_rgb", "ms_ssim_rgb", "enc_ms_median",
                    "dec_ms_median", "n_images"])
        for c in curves.values():
            for i in range(len(c.bpp)):
                w.writerow([c.codec.name, c.codec.label, c.codec.param, c.values[i], f"{c.bpp[i]:.5f}",
                            f"{c.psnr[i]:.4f}", f"{c.ms_ssim[i]:.6f}", f"{c.enc_ms[i]:.3f}", f"{c.dec_ms[i]:.3f}",
                            c.n_images])


# -------------------------------------------------------------------------------------------- main


def _parse_values(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",") if v.strip())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rd.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", nargs="?", type=Path, default=DEFAULT_DATASET,
                   help="folder of images (default: ../shared/data/kodak relative to the repo root)")
    p.add_argument("--out", type=Path, help="output folder (default: benchmarks/results/<dataset name>)")
    p.add_argument("--codecs", help="comma-separated subset of: " + ", ".join(
        [c.name for c in reference_codecs()] + [SPLAT]) + " (default: all available)")
    p.add_argument("--values", action="append", default=[], metavar="CODEC=V1,V2,...",
                   help="override a codec's sweep, e.g. --values jpeg-420=10,50,90 (repeatable)")
    p.add_argument("--limit", type=int, help="use only the first N images")
    p.add_argument("--jobs", "-j", type=int, default=1,
                   help="worker processes (default 1; >1 makes timings contend for cores)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timing repeats per image (median); splatcodec encodes once (default 3)")
    p.add_argument("--splat-param", default="quality", choices=["quality", "target_bpp", "num_gaussians"],
                   help="splatcodec.encode keyword swept (default quality)")
    p.add_argument("--splat-kwargs", default="{}", help="JSON of extra splatcodec.encode keywords")
    p.add_argument("--splat-source", metavar="DIGEST",
                   help="use cached splatcodec results recorded under this source digest (printed at the start "
                        "of a run) instead of hashing the current tree")
    p.add_argument("--cached-only", action="store_true",
                   help="measure nothing; summarise what the cache already holds")
    p.add_argument("--bd-test", default=SPLAT, help="codec whose BD-rates are tabulated (default splatcodec)")
    p.add_argument("--bd-bpp", type=_parse_values, metavar="LO,HI",
                   help="use only rate points within this bpp range for BD metrics (default: all points)")
    p.add_argument("--plot", type=Path, help="RD plot path (default: <out>/rd.png)")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return p


def select_codecs(args: argparse.Namespace) -> tuple[list[Codec], list[str]]:
    """Available codecs with any sweep overrides applied, and messages about the unavailable ones."""
    splat = SplatCodec(param=args.splat_param, kwargs=json.loads(args.splat_kwargs), source_digest=args.splat_source)
    if args.splat_param == "target_bpp":
        splat.default_values = (0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5)
    elif args.splat_param == "num_gaussians":
        splat.default_values = (1000, 2500, 5000, 10000, 20000, 40000)
    all_codecs = [*reference_codecs(), splat]
    names = [c.name for c in all_codecs]
    wanted = [s.strip() for s in args.codecs.split(",")] if args.codecs else names
    unknown = set(wanted) - set(names)
    if unknown:
        raise SystemExit(f"unknown codec(s): {', '.join(sorted(unknown))}; known: {', '.join(names)}")
    overrides = {}
    for spec in args.values:
        name, _, vals = spec.partition("=")
        if name not in names or not vals:
            raise SystemExit(f"bad --values {spec!r}; expected CODEC=V1,V2,...")
        overrides[name] = _parse_values(vals)
    chosen, messages = [], []
    for c in all_codecs:
        if c.name not in wanted:
            continue
        ok, why = c.available()
        if not ok:
            messages.append(f"{c.name}: UNAVAILABLE - {why}; skipped")
            continue
        if c.name in overrides:
            c.default_values = overrides[c.name]
        chosen.append(c)
    return chosen, messages


def machine_description() -> str:
    """One line about the machine, for the report."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns a process exit status (1 if any measurement failed)."""
    args = build_parser().parse_args(argv)
    dataset = args.dataset.resolve()
    images = list_images(dataset, args.limit)
    out = (args.out or DEFAULT_RESULTS / dataset.name).resolve()
    codecs, messages = select_codecs(args)
    print(f"dataset: {dataset} ({len(images)} images); output: {out}")
    print(f"machine: {machine_description()}")
    if METRICS_NOTE:
        print(f"note: {METRICS_NOTE}")
    for c in codecs:
        print(f"  {c.name}: {c.param} in {', '.join(f'{v:g}' for v in c.default_values)}  [{c.version()}]")
    for m in messages:
        print(f"  {m}")
    if args.jobs > 1:
        print(f"note: --jobs {args.jobs}: encode/decode times are measured under contention")
    if not codecs:
        print("no codec available")
        return 1

    shas = {p: _sha256(p) for p in images}
    tasks, cached_rows = [], []
    for c in codecs:
        cdir = codec_cache_dir(out, c)
        for v in c.default_values:
            for p in images:
                cf_path = cdir / _value_tag(v) / f"{p.stem}.json"
                row = _read_cache(cf_path, shas[p])
                if row is not None:
                    cached_rows.append(row)
                else:
                    tasks.append(Task(c, float(v), str(p), shas[p], str(cf_path), args.repeats))
    if args.cached_only:
        print(f"{len(cached_rows)} measurements cached, {len(tasks)} missing (--cached-only: not run)")
        tasks = []
    else:
        print(f"{len(cached_rows)} measurements cached, {len(tasks)} to run")
    new_rows, errors = measure(tasks, args.jobs, args.quiet)
    rows = cached_rows + new_rows
    curves = summarize(codecs, rows, len(images))

    write_outputs(out, dataset.name, curves, rows)
    print()
    print(format_summary_table(curves))
    for c in curves.values():
        if c.incomplete:
            print(f"warning: {c.codec.name} points with missing images left out: {c.incomplete}")

    bd_curves = dict(curves)
    if args.bd_bpp:
        lo, hi = args.bd_bpp
        bd_curves = {k: clip_curve(v, lo, hi) for k, v in curves.items()}
        print(f"\nBD metrics use only rate points within {lo:g}-{hi:g} bpp")
    bd_curves = {k: v for k, v in bd_curves.items() if len(v.bpp) >= 2}
    print()
    if args.bd_test in bd_curves:
        t = bd_curves[args.bd_test]
        rows_bd = [bd_metrics(a, t) for k, a in bd_curves.items() if k != args.bd_test]
        print(format_bd_table(f"BD metrics of {t.codec.label} against each codec (negative BD-rate = "
                              f"{t.codec.label} smaller at equal quality; pchip):", rows_bd, bd_curves))
    else:
        why = next((m for m in messages if m.startswith(args.bd_test + ":")), "no curve in this run")
        print(f"BD table for {args.bd_test}: NOT COMPUTED - {why}")
    if args.bd_test in curves and BD_ANCHOR_SANITY in curves and args.bd_test != BD_ANCHOR_SANITY:
        gains = per_image_gains(rows, args.bd_test, BD_ANCHOR_SANITY)
        print()
        print(format_per_image_table(
            f"Per image: {curves[args.bd_test].codec.label} PSNR minus {curves[BD_ANCHOR_SANITY].codec.label} "
            f"PSNR at the same bpp (interpolated in log bpp; images outside the anchor's sweep left out):",
            gains, curves[args.bd_test].codec.param))
    if BD_ANCHOR_SANITY in bd_curves and args.bd_test != BD_ANCHOR_SANITY:
        anchor = bd_curves[BD_ANCHOR_SANITY]
        rows_bd = [bd_metrics(anchor, c) for k, c in bd_curves.items() if k != BD_ANCHOR_SANITY]
        print()
        print(format_bd_table(f"Sanity check: each codec against {anchor.codec.label} (negative BD-rate = "
                              f"smaller than {anchor.codec.label} at equal quality; pchip):", rows_bd, bd_curves,
                              key="test"))

    if not args.no_plot:
        plot_path = (args.plot or out / "rd.png").resolve()
        plot_rd(curves, plot_path, f"{dataset.name}: {len(images)} images")
        print(f"\nplot: {plot_path}")
    print(f"json: {out / 'json'}; csv: {out / 'per_image.csv'}, {out / 'summary.csv'}")
    if errors:
        print(f"\n{len(errors)} measurement(s) FAILED (not cached, will be retried):", file=sys.stderr)
        for e in errors[:20]:
            print(f"  {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
