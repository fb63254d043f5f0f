"""Every safety limit of the package, in one place (docs/limits.md states what they allow).

Two kinds of numbers live here:

* **Hard maxima** of the native core (``NATIVE_MAX_*``): what it can represent at all (pixel centres
  stay exact in float32 up to 2^16 per side). The core exports the same numbers (``_core.MAX_SIDE``
  ...) and a test compares them. The ``.gsplat`` format uses the same side maximum, so every file a
  writer may produce is one the decoder can render.
* **Default limits** (``DEFAULT_*``), configurable per call, that keep hostile or absurd inputs from
  taking unbounded memory or time: pixels of an input or output image, Gaussians per file and per
  byte of file, Gaussian-tile entries of a render (12 bytes each) and its work in pixel evaluations,
  counted in 16-column chunks as the widest SIMD build evaluates them.

Every public entry (``fit``, ``fit_batch``, ``render``, ``render_float``, ``encode``, ``decode``,
``info``, the CLI) takes its defaults from here; ``max_pixels=None`` lifts the configurable limits
(never the hard maxima).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import LimitExceededError
from .validation import check_int, check_number

#: Largest width or height anywhere (the core, the format, renders at another size).
MAX_DIMENSION = 1 << 16
#: Hard maxima of the native core (same values as ``_core.MAX_PIXELS`` / ``_core.MAX_GAUSSIANS``).
NATIVE_MAX_PIXELS = 1 << 31
NATIVE_MAX_GAUSSIANS = 1 << 28

#: Default pixel limit of every image in or out (fit, encode, render, decode): 2^25 px (8K UHD fits).
DEFAULT_MAX_PIXELS = 1 << 25
#: Default Gaussian-count limit of a file; decoding allocates roughly 150 bytes per Gaussian.
DEFAULT_MAX_GAUSSIANS = 2_000_000
#: Gaussians a file may declare per byte of its length (plus GAUSSIAN_ALLOWANCE): real encodes spend
#: ~50 bits per Gaussian (docs/codec.md; 4 bits at this cap); a few hundred bytes declaring millions
#: of identical Gaussians is a decompression bomb.
DEFAULT_MAX_GAUSSIANS_PER_BYTE = 2
GAUSSIAN_ALLOWANCE = 4096
#: Bytes a file may take per declared Gaussian (plus BYTES_ALLOWANCE for metadata such as ICC
#: profiles): ~10x what real encodes use, so junk appended to a stream cannot make the parser's
#: memory grow beyond what the declared Gaussians need.
DEFAULT_MAX_BYTES_PER_GAUSSIAN = 64
BYTES_ALLOWANCE = 16 << 20
#: Default cap on a render's Gaussian-tile entries (12 bytes each: 192 MiB at the cap). Kodak files
#: at the highest quality use ~2e5; an 8K image with the full 2M Gaussians ~1e7.
DEFAULT_MAX_TILE_ENTRIES = 1 << 24
#: Default cap on a render's work: pixels evaluated, counted in 16-column chunks (what the 16-lane
#: build evaluates; narrower builds evaluate no more). Kodak files need ~2e7; ~4.3e9 is a few
#: seconds per core on this project's reference machine (benchmarks/decode_limits.py).
DEFAULT_MAX_RENDER_WORK = 1 << 32


def check_limit(name: str, value: Any) -> int | None:
    """``value`` if it is None or a positive integer, else :class:`InvalidInputError` (a NaN or a
    string must not switch a limit off)."""
    if value is None:
        return None
    return check_int(name, value, minimum=1)


@dataclass(frozen=True)
class Limits:
    """Safety limits applied while reading and rendering (``None`` disables one)."""

    max_pixels: int | None = DEFAULT_MAX_PIXELS
    max_gaussians: int | None = DEFAULT_MAX_GAUSSIANS
    max_render_work: float | None = DEFAULT_MAX_RENDER_WORK
    max_tile_entries: int | None = DEFAULT_MAX_TILE_ENTRIES
    max_gaussians_per_byte: float | None = DEFAULT_MAX_GAUSSIANS_PER_BYTE
    max_bytes_per_gaussian: float | None = DEFAULT_MAX_BYTES_PER_GAUSSIAN

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_gaussians", "max_tile_entries"):
            object.__setattr__(self, name, check_limit(name, getattr(self, name)))
        for name in ("max_render_work", "max_gaussians_per_byte", "max_bytes_per_gaussian"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, check_number(name, getattr(self, name), positive=True))

    @classmethod
    def for_decode(cls, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                   gaussian_limit: int | None = DEFAULT_MAX_GAUSSIANS) -> "Limits":
        """The decoder's limits: ``max_pixels=None`` lifts the pixel and render limits,
        ``gaussian_limit=None`` the Gaussian count and the count-to-file-size ratios."""
        max_pixels = check_limit("max_pixels", max_pixels)
        gaussian_limit = check_limit("gaussian_limit", gaussian_limit)
        pixels = {} if max_pixels is not None else dict(max_render_work=None, max_tile_entries=None)
        counts = {} if gaussian_limit is not None else dict(max_gaussians_per_byte=None,
                                                              max_bytes_per_gaussian=None)
        return cls(max_pixels=max_pixels, max_gaussians=gaussian_limit, **pixels, **counts)

    def check_pixels(self, width: int, height: int, what: str = "image") -> None:
        if self.max_pixels is not None and width * height > self.max_pixels:
            raise LimitExceededError(
                f"{what} of {width}x{height} = {width * height} pixels exceeds the limit of "
                f"{self.max_pixels} (pass max_pixels=None or a larger value to allow it)")
        if width > MAX_DIMENSION or height > MAX_DIMENSION:
            raise LimitExceededError(f"{what} of {width}x{height} pixels exceeds the largest side, "
                                     f"{MAX_DIMENSION} (whatever the limits)")

    def check_gaussians(self, count: int, file_bytes: int | None = None) -> None:
        if self.max_gaussians is not None and count > self.max_gaussians:
            raise LimitExceededError(
                f"{count} Gaussians exceed the limit of {self.max_gaussians} "
                f"(pass gaussian_limit=None or a larger value to allow it)")
        if file_bytes is not None and self.max_gaussians_per_byte is not None and \
                count > GAUSSIAN_ALLOWANCE + self.max_gaussians_per_byte * file_bytes:
            raise LimitExceededError(
                f"{count} Gaussians in a file of {file_bytes} bytes is more than "
                f"{self.max_gaussians_per_byte:g} per byte (a decompression bomb?); "
                "pass gaussian_limit=None to allow it")
        if file_bytes is not None and self.max_bytes_per_gaussian is not None and \
                file_bytes > BYTES_ALLOWANCE + self.max_bytes_per_gaussian * count:
            raise LimitExceededError(
                f"a file of {file_bytes} bytes for {count} Gaussians is more than "
                f"{self.max_bytes_per_gaussian:g} bytes per Gaussian; pass gaussian_limit=None to allow it")

    def native_budget(self) -> dict[str, int | float]:
        """The render budget as the native calls take it (0: unlimited)."""
        return {"max_entries": int(self.max_tile_entries or 0), "max_work": float(self.max_render_work or 0)}
