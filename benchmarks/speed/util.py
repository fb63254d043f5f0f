"""Timing, table formatting, JSON cleaning and image helpers shared by the speed sections."""
from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from ..common import load_image as load_named_image
from ..common import median_seconds


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
