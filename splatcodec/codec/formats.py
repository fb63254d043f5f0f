"""Encoder side of the format choice: which grid to quantize on, and 1.0 or 1.1 bytes.

Images up to :data:`COMPACT_MAX_PIXELS` are quantized on the fixed 1.1 grid (``priors.fixed_ranges``)
with :func:`compact_depths`; the same quantized Gaussians are then written both as a compact 1.1
file and as a 1.0 file (1.0 can carry any ranges), and the smaller is kept: both decode to exactly
the same Gaussians. Larger images keep the 1.0 per-image grid and the 1.0 file (unchanged encoder
behaviour at Kodak size). Measurements: docs/codec.md, "Small images".
"""
from __future__ import annotations

import numpy as np

from . import bitstream, compact, rdoq
from .priors import MAX_ATTRIBUTE_BITS, Priors, fixed_ranges
from .quantize import BitDepths, Quantized

#: Largest image (pixels) quantized on the 1.1 grid; Kodak (393,216 px) stays on 1.0.
COMPACT_MAX_PIXELS = 1 << 18
#: Extra bits over the 1.0 depth table on the 1.1 grid: its fixed ranges are wider than a typical
#: per-image range, and the step, not the range, sets both the error and the cost.
SCALE_EXTRA_BITS = 0
CHROMA_EXTRA_BITS = 1
POS_EXTRA_BITS = 0
SHEAR_EXTRA_BITS = 0
LUMA_EXTRA_BITS = 0
#: Images of at most TINY_MAX_PIXELS pixels (those whose encodes run the rate-distortion optimised
#: quantization of :mod:`.rdoq`) use these extra bits instead, as (position, scale, shear, luma,
#: chroma): with RDOQ choosing among the grid values, coarser grids win (CIFAR-10 training images,
#: docs/codec.md, "Small images").
TINY_MAX_PIXELS = rdoq.MAX_PIXELS
TINY_EXTRA_BITS = (-1, -1, -1, -1, 0)


def compact_grid(width: int, height: int, count: int, channels: int, metadata) -> np.ndarray | None:
    """The 1.1 grid for this encode, or None when the file will be 1.0 anyway."""
    if width * height > COMPACT_MAX_PIXELS or metadata:
        return None
    return fixed_ranges(width, height, count, channels)


def compact_depths(bits: BitDepths, pixels: int | None = None) -> BitDepths:
    """Depths from the quality table moved to the 1.1 grid (capped at the 1.1 maximum, at least 1);
    ``pixels``: the image's pixel count (images of at most :data:`TINY_MAX_PIXELS` get
    :data:`TINY_EXTRA_BITS`)."""
    if pixels is not None and pixels <= TINY_MAX_PIXELS:
        pos, scale, shear, luma, chroma = TINY_EXTRA_BITS
    else:
        pos, scale, shear, luma, chroma = (POS_EXTRA_BITS, SCALE_EXTRA_BITS, SHEAR_EXTRA_BITS, LUMA_EXTRA_BITS,
                                           CHROMA_EXTRA_BITS)

    def clamp(value: int, cap: int = MAX_ATTRIBUTE_BITS) -> int:
        return max(1, min(cap, value))

    color = tuple(clamp(c + (chroma if k else luma)) for k, c in enumerate(bits.color))
    return BitDepths(clamp(bits.pos + pos, 16), clamp(bits.scale + scale), clamp(bits.shear + shear), color)


def write_best(q: Quantized, metadata: dict | None, priors: Priors | None = None) -> tuple[bytes, dict[str, float]]:
    """The smaller of the 1.0 (1.2 where it pays) and (where ``q`` allows it) 1.1 files of ``q``, and its
    bits per stream.

    ``priors``: dataset priors for the 1.1 file (it then names them and needs them to decode).
    """
    small = None
    if not metadata and compact.can_write(q) is None:
        try:
            small, cost = compact.write(q, priors)
        except ValueError:  # too many Gaussians for the bytes (degenerate fits): keep 1.0
            pass
        if small is not None:
            small_bits = dict(cost.bits)
            small_bits["header+models"] = 8.0 * len(small) - cost.total
            if len(small) < bitstream.size_lower_bound(q):  # no 1.0 file can be as small: skip writing one
                return small, small_bits
    # Where a 1.1 file exists the 1.0-layout file is written without 1.2's predictions: the 1.1 file
    # is the smaller one on every measured small image anyway (docs/codec.md, "Context modelling"),
    # the prediction search would cost small encodes time, and size_lower_bound bounds 1.0 files only.
    data, stats = bitstream.write(q, metadata, predict=small is None)
    if small is not None and len(small) < len(data):
        return small, small_bits
    return data, dict(stats.bits)
