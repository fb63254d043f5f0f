"""What every benchmark shares: where the data is, loading images, timing, describing the machine.

Benchmarks run from a source checkout (``python -m benchmarks.<tool>`` in the repository root), so the
in-tree ``splatcodec`` is the one measured.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Real images beside the repository (see ../shared/data/README.md); never copied into the project.
DATA_DIR = REPO_ROOT.parent / "shared" / "data"
KODAK_DIR = DATA_DIR / "kodak"
FLICKR_DIR = DATA_DIR / "flickr8k_500" / "images"
CIFAR_TEST_DIR = DATA_DIR / "cifar10_test"
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
IMAGE_SUFFIXES = {".png", ".ppm", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".webp"}

T = TypeVar("T")


def list_images(folder: Path, limit: int | None = None) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (exits with a message if there are none)."""
    if not folder.is_dir():
        raise SystemExit(f"dataset folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise SystemExit(f"no images in {folder}")
    return files[:limit] if limit else files


def load_rgb(path: Path | str) -> np.ndarray:
    """An image file as contiguous HxWx3 uint8 RGB (alpha dropped, palette/grey expanded)."""
    with Image.open(path) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB")))


def load_image(name: str, crop: int = 0) -> np.ndarray:
    """A Kodak image by name (``kodim23``) or any image by path; ``crop`` > 0 takes a centre square."""
    path = Path(name) if Path(name).is_file() else KODAK_DIR / f"{name}.png"
    if not path.is_file():
        raise SystemExit(f"image not found: {path}")
    image = load_rgb(path)
    if crop:
        h, w = image.shape[:2]
        top, left = (h - crop) // 2, (w - crop) // 2
        image = np.ascontiguousarray(image[top:top + crop, left:left + crop])
    return image


def timed_median(function: Callable[[], T], repeats: int) -> tuple[float, T]:
    """(median wall seconds over ``repeats`` calls (at least one), the last call's result)."""
    times, out = [], None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        out = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out  # type: ignore[return-value]


def median_seconds(function: Callable[[], Any], repeats: int) -> float:
    """Median wall seconds of ``repeats`` calls."""
    return timed_median(function, repeats)[0]


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_description() -> str:
    """One line about the machine, for every report."""
    return (f"{cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write JSON through a temporary file and a rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, allow_nan=True))
    os.replace(tmp, path)


def require_data(path: Path) -> Path:
    """``path`` if it exists, else exit naming the shared data it should come from."""
    if not path.exists():
        sys.exit(f"benchmark data missing: {path} (expected in ../shared/data relative to the repository root)")
    return path
