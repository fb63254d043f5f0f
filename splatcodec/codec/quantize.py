"""Quantization of Gaussians: attribute transforms, per-image ranges, canonical order, progressive groups.

Attributes and their quantized form (every value is an unsigned integer ``q`` in ``[0, 2**bits)``
mapped linearly onto a per-image ``[lo, hi]`` range stored as float32 in the file):

* position ``x``, ``y``: fixed point over the centres' bounding box, ``pos_bits`` each;
* covariance, from the Cholesky factor ``L = [[a, 0], [c, b]]`` made canonical with ``a, b > 0``
  (``L`` and ``L diag(+-1, +-1)`` give the same covariance): ``log a``, ``log b`` (``scale_bits``)
  and the shear ``asinh(c / b)`` (``shear_bits``). The error that matters for the rendered Gaussian
  is ``L^-1 dL``, whose entries are ``da/a``, ``db/b`` and ``dc/b - (c/b) da/a``; logs make the
  scale steps relative, and since the off-diagonal term already carries ``(c/b)`` times the scale
  error, the shear step may grow with ``|c/b|`` too: asinh is linear near 0 and logarithmic in the
  tails (fits have a few very sheared Gaussians that would otherwise coarsen everyone's step).
* colour: RGB is rotated to YCbCr (BT.601 matrix, no offsets: colours are additive) so chroma can
  take fewer bits; grayscale is stored as is.

Canonical order: Gaussians are split into importance-ordered groups (the first group alone gives a
coarse image; see ``decode(max_gaussians=...)``) and, inside a group, sorted by the Morton code of
their quantized position. Sorting makes the order implicit, so the Morton codes can be stored as
gaps, which recovers the ``log2(n!)`` bits an arbitrary order would waste.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidInputError
from ..splats import Splats

COLOR_GRAY = 0
COLOR_YCBCR = 1

# BT.601 luma/chroma rotation without offsets (the decoder applies the exact float64 inverse).
_RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114],
                          [-0.168735892, -0.331264108, 0.5],
                          [0.5, -0.418687589, -0.081312411]])
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)

#: Smallest Cholesky diagonal the quantizer represents (pixels); smaller ones are degenerate anyway.
MIN_SCALE = 1e-3
#: Plausibility bounds on the stored ranges (both encoder and decoder enforce them, so decoded
#: Gaussians stay far from float32 overflow): |x|, |y| <= POS_BOUND_FACTOR * max(width, height),
#: |log scale| <= MAX_ABS_LOG_SCALE, |shear| <= MAX_ABS_SHEAR, |colour| <= MAX_ABS_COLOR.
POS_BOUND_FACTOR = 16
MAX_ABS_LOG_SCALE = 20.0
MAX_ABS_SHEAR = 20.0  # of asinh(c / b)
MAX_ABS_COLOR = 1e3
#: Attribute order inside the file (after x and y): see ATTRIBUTE_NAMES for the colour names.
GEOMETRY_ATTRIBUTES = ("log_a", "log_b", "shear")


@dataclass(frozen=True)
class BitDepths:
    """Bits per quantized attribute. ``color`` has one entry per stored channel (Y, Cb, Cr or gray)."""

    pos: int = 14
    scale: int = 7
    shear: int = 7
    color: tuple[int, ...] = (7, 6, 6)

    def validate(self, channels: int) -> None:
        for name, value in (("pos", self.pos), ("scale", self.scale), ("shear", self.shear)):
            if not 1 <= value <= 16:
                raise InvalidInputError(f"{name} bit depth must be in 1..16, got {value}")
        if len(self.color) != channels or not all(1 <= b <= 16 for b in self.color):
            raise InvalidInputError(f"need {channels} colour bit depths in 1..16, got {self.color}")

    def for_channels(self, channels: int) -> "BitDepths":
        """Same depths with the colour tuple fitted to ``channels`` (gray keeps the luma depth)."""
        color = self.color if len(self.color) == channels else (self.color[0],) * channels if channels == 1 \
            else (self.color[0],) * 3
        return BitDepths(self.pos, self.scale, self.shear, tuple(color))


@dataclass
class Quantized:
    """Gaussians in canonical order as integer symbols plus everything needed to dequantize them."""

    width: int
    height: int
    color_space: int
    bits: BitDepths
    #: (2 + 3 + C, 2) float32 [lo, hi] per attribute: x, y, log_a, log_b, shear, colours.
    ranges: np.ndarray
    #: Number of Gaussians in each progressive group, in file order.
    group_sizes: list[int]
    qx: np.ndarray = field(repr=False)
    qy: np.ndarray = field(repr=False)
    #: (N, 3 + C) int64 symbols: log_a, log_b, shear, colours.
    qattr: np.ndarray = field(repr=False)

    @property
    def num_gaussians(self) -> int:
        return int(self.qx.size)

    def attribute_bits(self) -> list[int]:
        return [self.bits.scale, self.bits.scale, self.bits.shear, *self.bits.color]


def morton_encode(qx: np.ndarray, qy: np.ndarray, bits: int) -> np.ndarray:
    """Interleave the bits of ``qx`` (even positions) and ``qy`` (odd positions)."""
    code = np.zeros(qx.shape, np.uint64)
    qx = qx.astype(np.uint64)
    qy = qy.astype(np.uint64)
    for k in range(bits):
        code |= ((qx >> np.uint64(k)) & np.uint64(1)) << np.uint64(2 * k)
        code |= ((qy >> np.uint64(k)) & np.uint64(1)) << np.uint64(2 * k + 1)
    return code


def morton_decode(code: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    code = code.astype(np.uint64)
    qx = np.zeros(code.shape, np.uint64)
    qy = np.zeros(code.shape, np.uint64)
    for k in range(bits):
        qx |= ((code >> np.uint64(2 * k)) & np.uint64(1)) << np.uint64(k)
        qy |= ((code >> np.uint64(2 * k + 1)) & np.uint64(1)) << np.uint64(k)
    return qx.astype(np.int64), qy.astype(np.int64)


def importance(splats: Splats) -> np.ndarray:
    """Visual weight of each Gaussian: |luma of colour| times its area (det L), the L1 mass it adds."""
    col = np.abs(splats.color.astype(np.float64))
    luma = col[:, 0] if splats.channels == 1 else col @ np.array([0.2126, 0.7152, 0.0722])
    area = np.abs(splats.chol[:, 0].astype(np.float64) * splats.chol[:, 2])
    return luma * np.maximum(area, MIN_SCALE ** 2)


def group_sizes_for(n: int, levels: int) -> list[int]:
    """Progressive group sizes: each group doubles the Gaussians decoded so far (n/2^(L-1), same, x2...)."""
    if levels <= 1 or n < 2 ** levels:
        return [n] if n else []
    sizes = []
    remaining = n
    for k in range(levels - 1):
        half = remaining // 2
        sizes.append(remaining - half)
        remaining = half
    sizes.append(remaining)
    return sizes[::-1]


def _geometry(splats: Splats) -> np.ndarray:
    """(N, 3) float64 log a, log b, asinh(c/b) with the sign-canonical Cholesky factor."""
    a = splats.chol[:, 0].astype(np.float64)
    c = splats.chol[:, 1].astype(np.float64)
    b = splats.chol[:, 2].astype(np.float64)
    c = c * np.where(a < 0, -1.0, 1.0)
    a = np.maximum(np.abs(a), MIN_SCALE)
    b = np.maximum(np.abs(b), MIN_SCALE)
    return np.stack([np.log(a), np.log(b), np.arcsinh(c / b)], axis=1)


def _colors(splats: Splats) -> tuple[int, np.ndarray]:
    col = splats.color.astype(np.float64)
    if splats.channels == 1:
        return COLOR_GRAY, col
    return COLOR_YCBCR, col @ _RGB_TO_YCBCR.T


def _range_of(values: np.ndarray, clip: float) -> tuple[float, float]:
    if values.size == 0:
        return 0.0, 0.0
    if clip > 0 and values.size > 100:
        lo, hi = np.quantile(values, [clip, 1.0 - clip])
    else:
        lo, hi = values.min(), values.max()
    return float(np.float32(lo)), float(np.float32(hi))


def check_ranges(ranges: np.ndarray, width: int, height: int) -> str | None:
    """Why ``ranges`` are not acceptable, or None. Shared by the encoder and the decoder."""
    if not np.isfinite(ranges).all() or (ranges[:, 1] < ranges[:, 0]).any():
        return "ranges are not finite or not ordered"
    bounds = [POS_BOUND_FACTOR * max(width, height)] * 2 + [MAX_ABS_LOG_SCALE] * 2 + [MAX_ABS_SHEAR]
    bounds += [MAX_ABS_COLOR] * (ranges.shape[0] - 5)
    if (np.abs(ranges).max(axis=1) > np.array(bounds)).any():
        return "ranges are implausibly large (Gaussians far off the image, or huge scales or colours)"
    return None


def _to_symbols(values: np.ndarray, lo: float, hi: float, bits: int) -> np.ndarray:
    levels = (1 << bits) - 1
    if hi <= lo:
        return np.zeros(values.shape, np.int64)
    q = np.rint((values - lo) * (levels / (hi - lo)))
    return np.clip(q, 0, levels).astype(np.int64)


def from_symbols(q: np.ndarray, lo: float, hi: float, bits: int) -> np.ndarray:
    """Dequantize (float64). The one place that defines the reconstruction points."""
    levels = (1 << bits) - 1
    return lo + q.astype(np.float64) * ((hi - lo) / levels)


def quantize(splats: Splats, bits: BitDepths, levels: int = 4, shear_clip: float = 1e-3,
             geometry_ranges: np.ndarray | None = None, groups: list[int] | None = None,
             ranges: np.ndarray | None = None) -> Quantized:
    """Quantize ``splats`` and put them in canonical (group, Morton) order.

    ``groups`` gives the progressive group sizes when the Gaussians are already in group order
    (e.g. fitted coarse to fine); otherwise ``levels`` doubling groups are cut by :func:`importance`.
    ``geometry_ranges`` (the first 5 rows of an earlier :attr:`Quantized.ranges`) reuses that grid for
    x, y and the covariance, so Gaussians whose geometry was already dequantized re-quantize exactly.
    ``ranges`` fixes every attribute's range (e.g. the 1.1 grid of ``priors.fixed_ranges``); values
    outside are clipped.
    """
    bits = bits.for_channels(splats.channels)
    bits.validate(splats.channels)
    if not (np.isfinite(splats.xy).all() and np.isfinite(splats.chol).all() and np.isfinite(splats.color).all()):
        raise InvalidInputError("cannot encode Gaussians with non-finite parameters")
    xy = splats.xy.astype(np.float64)
    geom = _geometry(splats)
    space, col = _colors(splats)
    columns = [xy[:, 0], xy[:, 1], geom[:, 0], geom[:, 1], geom[:, 2], *col.T]
    clips = [0.0, 0.0, 0.0, 0.0, shear_clip] + [0.0] * col.shape[1]
    if ranges is not None:
        ranges = np.array(ranges, np.float32).reshape(len(columns), 2)
    else:
        ranges = np.array([_range_of(v, c) for v, c in zip(columns, clips)], np.float32).reshape(-1, 2)
    if geometry_ranges is not None:
        ranges[:5] = np.asarray(geometry_ranges, np.float32)[:5]
    problem = check_ranges(ranges, splats.width, splats.height)
    if problem:
        raise InvalidInputError(f"cannot encode these Gaussians: {problem}")
    depth = [bits.pos, bits.pos, bits.scale, bits.scale, bits.shear, *bits.color]
    syms = [_to_symbols(v, float(r[0]), float(r[1]), d) for v, r, d in zip(columns, ranges, depth)]

    n = splats.num_gaussians
    if groups is not None:
        sizes = [int(g) for g in groups if g > 0]
        if sum(sizes) != n:
            raise InvalidInputError(f"group sizes {groups} do not add up to {n} Gaussians")
        order_by_importance = np.arange(n)
    else:
        sizes = group_sizes_for(n, levels)
        order_by_importance = np.argsort(-importance(splats), kind="stable")
    code = morton_encode(syms[0], syms[1], bits.pos)
    order = []
    start = 0
    for size in sizes:
        members = order_by_importance[start:start + size]
        order.append(members[np.lexsort((members, code[members]))])
        start += size
    perm = np.concatenate(order) if order else np.zeros(0, np.int64)
    return Quantized(splats.width, splats.height, space, bits, ranges, sizes,
                     syms[0][perm], syms[1][perm], np.stack(syms[2:], axis=1)[perm])


def dequantize(q: Quantized, count: int | None = None) -> Splats:
    """Float Gaussians from (the first ``count`` of) ``q``."""
    n = q.num_gaussians if count is None else count
    r = q.ranges.astype(np.float64)
    x = from_symbols(q.qx[:n], r[0, 0], r[0, 1], q.bits.pos)
    y = from_symbols(q.qy[:n], r[1, 0], r[1, 1], q.bits.pos)
    attr_bits = q.attribute_bits()
    attrs = [from_symbols(q.qattr[:n, k], r[2 + k, 0], r[2 + k, 1], attr_bits[k]) for k in range(len(attr_bits))]
    a = np.exp(attrs[0])
    b = np.exp(attrs[1])
    c = np.sinh(attrs[2]) * b
    col = np.stack(attrs[3:], axis=1)
    if q.color_space == COLOR_YCBCR:
        col = col @ _YCBCR_TO_RGB.T
    return Splats(np.stack([x, y], axis=1), np.stack([a, c, b], axis=1), col, q.width, q.height)
