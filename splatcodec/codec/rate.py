"""Rate mapping: what the 0-100 ``quality`` knob means (a Gaussian count and per-attribute bit depths).

Nothing here fits or codes; the encoder (:mod:`.encoder`) and the rate search (:mod:`.rate_search`)
ask this module how many Gaussians and how many bits a quality stands for. The table and the density
curve were chosen on Kodak crops (docs/codec.md, "Rate control").
"""
from __future__ import annotations

import math

from ..validation import check_number
from .quantize import BitDepths

#: Quality used when no rate option is given (docs/codec.md).
DEFAULT_QUALITY = 75


def check_quality(quality: float) -> float:
    """``quality`` as a float in [0, 100]; anything else is an :class:`InvalidInputError`."""
    return check_number("quality", quality, minimum=0, maximum=100)


def gaussians_for_quality(quality: float, pixels: int) -> int:
    """Gaussian count for ``quality``: density grows geometrically from 1/1500 to 1/15 per pixel."""
    q = check_quality(quality) / 100.0
    density = math.exp(math.log(1 / 1500) + q * math.log(100))
    return max(16, int(round(density * pixels)))


#: (lowest quality, scale bits, shear bits, colour bits (Y, Cb, Cr), extra position bits), chosen on
#: Kodak crops by comparing PSNR at equal rate (see docs/codec.md); monotone in quality.
DEPTH_TABLE = (
    (0, 6, 6, (7, 6, 6), 5),
    (30, 7, 7, (8, 6, 6), 5),
    (60, 7, 7, (8, 7, 7), 6),
    (85, 8, 8, (9, 7, 7), 6),
)


def position_bits(num_gaussians: int, width: int, height: int, extra: int) -> int:
    """Bits per coordinate: enough to resolve the mean Gaussian spacing, plus ``extra`` bits below it.

    The useful position precision is a fraction of a Gaussian's size, which scales with the spacing
    sqrt(W H / N); a fixed bit count would be too coarse for dense fits and waste bits on sparse ones.
    """
    spacing = math.sqrt(width * height / max(num_gaussians, 1))
    coarse = max(0, math.ceil(math.log2(max(width, height) / spacing)))
    return int(min(16, max(6, coarse + extra)))


def bits_for_quality(quality: float, channels: int, num_gaussians: int = 10_000, width: int = 768,
                     height: int = 512) -> BitDepths:
    """Bit depths for ``quality`` (non-decreasing in quality at a fixed size and Gaussian count)."""
    q = check_quality(quality)
    row = [r for r in DEPTH_TABLE if q >= r[0]][-1]
    _, scale, shear, color, extra = row
    return BitDepths(pos=position_bits(num_gaussians, width, height, extra), scale=scale, shear=shear,
                     color=color[:1] if channels == 1 else color)


__all__ = ["DEFAULT_QUALITY", "DEPTH_TABLE", "bits_for_quality", "check_quality", "gaussians_for_quality",
           "position_bits"]
