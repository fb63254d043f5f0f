"""Running a rate-distortion sweep: one task per (codec, rate point, image), cached on disk per task so an
interrupted run resumes, optionally in worker processes."""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..common import REPO_ROOT, atomic_write_json, load_rgb, timed_median
from .codecs import Codec


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
    img = load_rgb(task.image)
    h, w = img.shape[:2]
    enc_repeats = 1 if task.codec.expensive_encode else task.repeats
    enc_s, data = timed_median(lambda: task.codec.encode(img, task.value), enc_repeats)
    if not isinstance(data, (bytes, bytearray)) or len(data) == 0:
        raise RuntimeError(f"{task.codec.name} encode returned {type(data).__name__} of length {len(data)}")
    dec_s, rec = timed_median(lambda: task.codec.decode(data), task.repeats)
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
        "enc_ms": enc_s * 1e3,
        "dec_ms": dec_s * 1e3,
    }
    atomic_write_json(Path(task.cache_file), row)
    return row



def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def value_tag(value: float) -> str:
    return f"{value:g}".replace("/", "_")


def codec_cache_dir(out: Path, codec: Codec) -> Path:
    """Cache folder keyed by everything that changes results: codec, settings and library versions."""
    key = json.dumps([codec.name, codec.param, codec.settings(), codec.version()], sort_keys=True, default=str)
    return out / "cache" / codec.name / hashlib.sha1(key.encode()).hexdigest()[:12]


def read_cache(path: Path, image_sha: str) -> dict[str, Any] | None:
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

