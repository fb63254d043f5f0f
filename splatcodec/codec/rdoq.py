"""Rate-distortion optimised quantization (RDOQ) of small images on the 1.1 grid.

Plain quantization rounds every attribute to its nearest grid value. Under the 1.1 file's trained
tables (contexts included) a neighbouring value is often much cheaper, and on a tiny image a single
Gaussian's rounding error is visible in the PSNR. :func:`optimise` therefore revisits every
Gaussian of an already quantized :class:`~.quantize.Quantized` and moves single symbols by one grid
step where that lowers ``D + lambda R``:

* ``D``: squared error of the rendered image (float, before the decoder's 8-bit clip) against the
  target, summed over pixels and channels, in image units / 255; the render is the core's model
  (``I(p) = sum c exp(-q/2)``, cut off at 3 sigma; docs/codec.md) evaluated like the renderer (float32
  weights, float64 sums), so the change of ``D`` of a move is exact up to float rounding.
* ``R``: the bits the 1.1 coder spends on the Gaussian's attribute row under the built-in (or dataset)
  priors, contexts included, and for a position move the Morton gap bits of its group; the ideal
  cost ``-log2 p``, which the range coder meets to a fraction of a bit per file.
* ``lambda = LAMBDA_SCALE * D / R`` at the starting point: the slope of the codec's own
  rate-distortion curve. With PSNR growing by ``s`` dB per doubling of the file, ``-dD/dR =
  D s ln 10 / (10 R ln 2)``; s ~ 4.6 dB on CIFAR-10 gives ~1.5 D / R.

Each move is accepted only when it lowers ``D + lambda R``, so the result never costs more than plain
rounding under that measure (tests/test_rdoq.py). The Gaussian count and the grid are unchanged: the
output is a valid 1.1 quantization of the same image, re-sorted into canonical (Morton) order.
Measurements: docs/codec.md, "Small images: format 1.1".
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .. import _native
from .colors import footprints, pixel_centres
from .priors import CONTEXTS, Priors, context, ref_index
from .quantize import _YCBCR_TO_RGB, COLOR_YCBCR, Quantized, morton_encode
from .rangecoder import TABLE_BITS

#: ``lambda = LAMBDA_SCALE * D / R`` (see the module docstring; chosen on CIFAR-10 training images).
LAMBDA_SCALE = 1.5
#: Passes over all Gaussians.
SWEEPS = 3
#: Largest image (pixels) the encoder applies :func:`optimise` to (the tiny images of
#: ``fit_strategy.TINY_IMAGE_PIXELS``, on which it was measured).
MAX_PIXELS = 64 * 64


class _Costs:
    """-log2 p of every symbol under ``priors``, per (attribute, context, depth)."""

    def __init__(self, priors: Priors, depths: list[int]) -> None:
        self.priors = priors
        self.depths = depths
        self.cache: dict[tuple, np.ndarray] = {}

    def table(self, k: int, ctx: int) -> np.ndarray:
        key = (k, ctx)
        cost = self.cache.get(key)
        if cost is None:
            freq = np.asarray(self.priors.table(k, ctx, self.depths[k]).freq, np.float64)
            cost = self.cache[key] = TABLE_BITS - np.log2(freq)
        return cost

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """Bits of every attribute row of ``rows`` (M, 3 + C) (log a, log b, shear, colours)."""
        refs: list[np.ndarray] = []
        total = np.zeros(rows.shape[0])
        for k in range(rows.shape[1]):
            total += self.matrix(k)[context(k, refs), rows[:, k]]
            refs.append(ref_index(rows[:, k], self.depths[k]))
        return total

    def row_changes(self, rows: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """(M, 2 K) change of :meth:`rows` when attribute ``j`` of each row of ``rows`` (M, K) alone
        becomes ``cand[:, 2 j]`` or ``cand[:, 2 j + 1]`` (symbols on the grid)."""
        m, k = rows.shape
        trials = np.repeat(rows[None], 2 * k + 1, axis=0)  # (the rows, then every move; row; attribute)
        moves = np.arange(2 * k)
        trials[1 + moves, :, moves // 2] = cand.T
        bits = self.rows(trials.reshape(-1, k)).reshape(2 * k + 1, m)
        return (bits[1:] - bits[0]).T

    def matrix(self, k: int) -> np.ndarray:
        """(contexts, symbols) bits of attribute ``k``."""
        key = ("matrix", k)
        cost = self.cache.get(key)
        if cost is None:
            cost = self.cache[key] = np.stack([self.table(k, c) for c in range(CONTEXTS[k])])
        return cost

    def gap_costs(self, pos_bits: int, count: int) -> np.ndarray:
        """Bits of the gap length symbols ``0 ..= 2 pos_bits`` in a group of ``count`` Gaussians."""
        key = ("gap", pos_bits, count.bit_length())
        cost = self.cache.get(key)
        if cost is None:
            table = self.priors.gap_table(pos_bits, count)
            cost = self.cache[key] = TABLE_BITS - np.log2(np.asarray(table.freq, np.float64))
        return cost

    def gaps(self, codes: list[int], pos_bits: int) -> float:
        """Bits of a group's Morton codes as sorted gaps (length symbol + raw bits below the top one)."""
        cost = self.gap_costs(pos_bits, len(codes)).tolist()
        total = 0.0
        previous = 0
        for code in sorted(codes):
            length = (code - previous).bit_length()
            total += cost[length] + max(length - 1, 0)
            previous = code
        return total


@functools.lru_cache(maxsize=8)
def _costs(priors: Priors, depths: tuple[int, ...]) -> _Costs:
    """The :class:`_Costs` of ``priors`` (by identity) at ``depths``, kept for the next images: building
    its tables costs more than the rest of a small image's :func:`optimise`."""
    return _Costs(priors, list(depths))


@dataclass
class _Problem:
    """What :func:`optimise` and :func:`objective` start from (:func:`_setup`)."""

    q: Quantized
    target: np.ndarray  # (H, W, C) float64, image units / 255
    sym: np.ndarray  # (N, 5 + C) int64 symbols: x, y, log a, log b, shear, colours
    lo: np.ndarray  # (5 + C,) value of symbol 0
    step: np.ndarray  # (5 + C,) value change of one step
    top: np.ndarray  # (5 + C,) largest symbol
    to_rgb: np.ndarray  # (C, C): RGB = to_rgb @ stored colour
    costs: _Costs

    def native_args(self, sym: np.ndarray) -> tuple:
        """The arguments the native ``rdoq_distortion`` and ``rdoq_sweep`` start with, for symbols ``sym``."""
        return self.target, sym, self.lo, self.step, self.to_rgb

    def distortion(self) -> float:
        """D of the symbols ``sym`` (module docstring), in numpy."""
        h, w = self.q.height, self.q.width
        vals = self.lo + self.sym * self.step
        weights = footprints(*vals[:, :5].T, *pixel_centres(w, h)).astype(np.float64)
        error = self.target.reshape(h * w, -1) - weights.T @ (vals[:, 5:] @ self.to_rgb.T)
        return float((error ** 2).sum())

    def rate(self) -> float:
        """R of the symbols ``sym`` (module docstring)."""
        q = self.q
        rate = float(self.costs.rows(self.sym[:, 2:]).sum())
        codes = morton_encode(self.sym[:, 0], self.sym[:, 1], q.bits.pos).astype(np.int64).tolist()
        start = 0
        for size in q.group_sizes:
            rate += self.costs.gaps(codes[start:start + size], q.bits.pos)
            start += size
        return rate


def _setup(q: Quantized, target: np.ndarray, priors: Priors) -> _Problem:
    """The symbols, grid, colour matrix and rate model of ``q`` against ``target`` ((H, W) or (H, W, C))."""
    channels = len(q.bits.color)
    depths = q.attribute_bits()
    all_depths = [q.bits.pos, q.bits.pos, *depths]
    r = np.asarray(q.ranges, np.float64)
    top = np.array([(1 << d) - 1 for d in all_depths], np.int64)
    return _Problem(
        q=q, target=np.asarray(target, np.float64).reshape(q.height, q.width, channels),
        sym=np.concatenate([q.qx[:, None], q.qy[:, None], q.qattr], axis=1).astype(np.int64),
        lo=r[:, 0], step=(r[:, 1] - r[:, 0]) / top, top=top,
        to_rgb=_YCBCR_TO_RGB if q.color_space == COLOR_YCBCR else np.eye(channels),
        costs=_costs(priors, tuple(depths)))


def _canonical(q: Quantized, sym: np.ndarray) -> Quantized:
    """``q`` with the symbols ``sym`` (N, 5 + C), Morton-sorted inside each group (ties by index)."""
    codes = morton_encode(sym[:, 0], sym[:, 1], q.bits.pos).astype(np.int64)
    order = []
    start = 0
    for size in q.group_sizes:
        members = np.arange(start, start + size)
        order.append(members[np.lexsort((members, codes[members]))])
        start += size
    perm = np.concatenate(order)
    return Quantized(q.width, q.height, q.color_space, q.bits, q.ranges, list(q.group_sizes),
                     sym[perm, 0].copy(), sym[perm, 1].copy(), sym[perm, 2:].copy())


def optimise(q: Quantized, target: np.ndarray, priors: Priors, lambda_scale: float = LAMBDA_SCALE,
             sweeps: int | None = None) -> Quantized:
    """``q`` with single-step symbol moves that lower ``D + lambda R`` (module docstring).

    ``target``: the image (H, W) or (H, W, C) as floats in image units / 255 (``pixels / 255``).
    ``q`` must be quantized on the 1.1 grid (its ranges are used as they are). In every sweep each
    Gaussian in turn takes the best of its one-step moves (up or down in one attribute) if that
    lowers ``D + lambda R`` (the first of equals; none if a change is NaN). The attribute moves' rate
    changes are computed here for all Gaussians at the start of a sweep (a Gaussian's own row only
    changes by its own move); the sweep itself, with the footprint and colour changes and the
    position moves' Morton gap changes, runs in the native core (``rdoq_sweep``, src_cuda/rdoq_cpu.cpp).
    """
    sweeps = SWEEPS if sweeps is None else sweeps
    p = _setup(q, target, priors)
    if q.num_gaussians == 0 or lambda_scale < 0:
        return q
    distortion = _native.call("rdoq_distortion", *p.native_args(p.sym))  # as numpy's p.distortion(), faster
    lam = lambda_scale * distortion / max(p.rate(), 1.0)
    cols = p.sym.shape[1]
    move_cols = np.repeat(np.arange(cols), 2)  # move m: column m // 2 one step down (m even) or up
    gap_costs = np.stack([p.costs.gap_costs(q.bits.pos, size) for size in q.group_sizes])
    bounds = np.cumsum([0, *q.group_sizes]).astype(np.int64)
    sym = p.sym
    for _ in range(sweeps):
        cand = sym[:, move_cols] + np.tile([-1, 1], cols)  # (N, moves)
        valid = (cand >= 0) & (cand <= p.top[move_cols])
        d_rate = np.zeros(cand.shape)
        d_rate[:, 4:] = p.costs.row_changes(sym[:, 2:], np.clip(cand[:, 4:], 0, p.top[move_cols[4:]]))
        sym, moved = _native.call("rdoq_sweep", *p.native_args(sym), d_rate, valid, gap_costs, bounds, q.bits.pos,
                                  lam)
        if not moved:
            break
    return _canonical(q, sym)


def objective(q: Quantized, target: np.ndarray, priors: Priors) -> tuple[float, float]:
    """(D, R) of ``q`` as :func:`optimise` measures them, D in numpy (for tests and measurements)."""
    p = _setup(q, target, priors)
    return p.distortion(), p.rate()


__all__ = ["LAMBDA_SCALE", "MAX_PIXELS", "SWEEPS", "objective", "optimise"]
